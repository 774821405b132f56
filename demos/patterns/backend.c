/* The backend every variant talks to: lib's HTTP server (the loop design, one
 * thread) in a process of its own, with faults injected through its
 * request-handler hook, and every request it reads written down in shared
 * memory. Its counts, not the clients', say what happened.
 *
 * The parent makes the shared memory (a memfd), writes the faults into it and
 * spawns this program again in its backend mode with the memfd as a file and a
 * pipe as its stdout, on which cl_server_serve prints its port. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "patterns.h"

/* ---- the backend's side ---- */

#define CAPACITY_MAX 1024

static uint64_t rng;
static uint64_t slot_free_ns[CAPACITY_MAX]; /* when each of the capacity's slots frees up */

static uint32_t tag_of(const char *target)
{
    const char *p = strstr(target, "tag=");
    return p == NULL ? 0 : (uint32_t)strtoul(p + 4, NULL, 10);
}

static bool draw(uint32_t per_mille)
{
    return per_mille > 0 && cl_splitmix64(&rng) % 1000 < per_mille;
}

/* [snippet occ] */
/* One record with a version, for optimistic concurrency: "/occ" reads the
 * version, "/occ?v=N" writes if the version is still N (and bumps it), else
 * answers 409. The body lives in a buffer of the connection's until it is sent. */
static char occ_body[1024][24];

static void occ(struct shared *s, const struct cl_http_req *req, struct cl_http_reply *r)
{
    const char *v = strstr(req->target, "v=");
    uint64_t now = atomic_load_explicit(&s->version, memory_order_relaxed);
    if (v != NULL && strtoull(v + 2, NULL, 10) != now) {
        r->status = 409; /* someone wrote since this client read */
        cl_server_count(&s->conflicts);
        return;
    }
    if (v != NULL)
        atomic_store_explicit(&s->version, ++now, memory_order_relaxed);
    char *body = occ_body[req->conn % 1024];
    r->body = body;
    r->body_len = (size_t)snprintf(body, sizeof occ_body[0], "%llu\n", (unsigned long long)now);
}
/* [end occ] */

bool faults_down(const struct faults *f, uint64_t since_ns)
{
    return since_ns >= f->down_at_ns && since_ns < f->down_at_ns + f->down_for_ns;
}

/* [snippet faults] */
/* The hook: on the loop's one thread, in the order requests were read, so a
 * FIFO queue is a table of when each slot frees up. */
static void faults(void *arg, const struct cl_http_req *req, struct cl_http_reply *r)
{
    struct shared *s = arg;
    const struct faults *f = &s->f;
    uint64_t t0 = atomic_load_explicit(&s->t0_ns, memory_order_acquire);
    uint64_t since = t0 != 0 && req->read_ns > t0 ? req->read_ns - t0 : 0;
    bool down = t0 != 0 && faults_down(f, since);
    r->work_ns = f->work_ns;
    if (strncmp(req->target, "/occ", 4) == 0) {
        occ(s, req, r);
    } else if (strncmp(req->target, "/missing", 8) == 0) {
        r->status = 404; /* the client's mistake: retrying it cannot help */
        cl_server_count(&s->client_errors);
    } else if (down) {
        r->status = 503;
        cl_server_count(&s->down_errors);
    } else if (draw(f->error_milli)) {
        r->status = 500;
        cl_server_count(&s->errors);
    } else if (draw(f->drop_milli)) {
        r->status = 0; /* close the connection, no reply */
        cl_server_count(&s->drops);
    } else {
        uint64_t service =
            f->switch_ns > 0 && since >= f->switch_ns ? f->latency2_ns : f->latency_ns;
        if (f->latency_uniform && service > 0)
            service = cl_splitmix64(&rng) % (2 * service + 1);
        uint64_t start = req->read_ns;
        if (f->capacity > 0) { /* the earliest free slot, after those queued before */
            uint32_t best = 0;
            for (uint32_t i = 1; i < f->capacity; i++)
                if (slot_free_ns[i] < slot_free_ns[best])
                    best = i;
            if (slot_free_ns[best] > start) {
                start = slot_free_ns[best];
                cl_server_count(&s->queued);
            }
            slot_free_ns[best] = start + service;
        }
        r->delay_ns = start + service - req->read_ns;
    }
    uint64_t n = atomic_fetch_add_explicit(&s->narrivals, 1, memory_order_relaxed);
    if (n < ARRIVALS_MAX)
        s->arrivals[n] = (struct arrival){req->read_ns, tag_of(req->target), (uint16_t)r->status};
}
/* [end faults] */

int backend_main(const char *spec)
{
    int fd;
    long parent;
    if (sscanf(spec, "%d %ld", &fd, &parent) != 2) {
        fprintf(stderr, "patterns-backend: bad spec '%s'\n", spec);
        return CL_EXIT_USAGE;
    }
    cl_child_die_with_parent((pid_t)parent);
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        perror("patterns-backend: mmap");
        return 1;
    }
    close(fd);
    rng = s->f.seed;
    struct cl_serve serve = {
        .opts = {.design = CL_SERVER_LOOP,
                 .handler = faults,
                 .handler_arg = s,
                 .max_connections = cl_server_max_connections(cl_server_raise_nofile()),
                 .drain_ns = s->f.drain_ns,
                 .counts = &s->counts},
        .name = "backend",
        .run = cl_server_run,
    };
    return cl_server_serve(&serve);
}

/* ---- the parent's side ---- */

static _Atomic(struct shared *) shown; /* for the watchdog's report */

void faults_from_flags(const struct cl_run *run, struct faults *f)
{
    *f = (struct faults){
        .latency_ns = (uint64_t)cl_param(run, LATENCY_MS) * 1000000,
        .latency_uniform = cl_param(run, LATENCY_DIST) == 1,
        .error_milli = (uint32_t)cl_param(run, ERROR_RATE),
        .drop_milli = (uint32_t)cl_param(run, DROP_RATE),
        .down_at_ns = (uint64_t)cl_param(run, DOWN_AT) * 1000000,
        .down_for_ns = (uint64_t)cl_param(run, DOWN_FOR) * 1000000,
        .capacity = (uint32_t)cl_param(run, CAPACITY),
        .work_ns = (uint64_t)cl_param(run, WORK_US) * 1000,
        .drain_ns = CL_MS(1000),
        .seed = run->opts->seed * 0x9e3779b97f4a7c15ull + 1,
    };
}

static uint16_t read_port(struct cl_run *run, int fd, pid_t pid)
{
    char line[128];
    size_t len = 0;
    uint64_t deadline = cl_now_ns() + CL_MS(5000);
    while (len < sizeof line - 1 && memchr(line, '\n', len) == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)((deadline - cl_now_ns()) / 1000000);
        if (cl_now_ns() >= deadline || poll(&p, 1, left > 0 ? left : 1) == 0)
            cl_refuse(run, "poll", ETIMEDOUT, "the backend (pid %d) did not say its port",
                      (int)pid);
        ssize_t got = read(fd, line + len, sizeof line - 1 - len);
        if (got <= 0)
            cl_refuse(run, "read", got == 0 ? EPIPE : errno, "the backend ended before listening");
        len += (size_t)got;
    }
    line[len] = '\0';
    unsigned port;
    if (sscanf(line, "listening 127.0.0.1:%u", &port) != 1)
        cl_fatal("patterns: the backend said '%s'", line);
    return (uint16_t)port;
}

void backend_start(struct cl_run *run, struct backend *b, const struct faults *f)
{
    int mfd = memfd_create("patterns-backend", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, sizeof(struct shared)) != 0)
        cl_refuse(run, "memfd_create", errno, "%zu bytes of shared memory", sizeof(struct shared));
    b->sh = mmap(NULL, sizeof *b->sh, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (b->sh == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "%zu bytes of shared memory", sizeof(struct shared));
    b->sh->f = *f;
    atomic_store_explicit(&shown, b->sh, memory_order_release);
    int out[2];
    CL_SYS(pipe2(out, O_CLOEXEC));
    int child_fd = mfd == 10 ? 11 : 10; /* dup2 onto another number clears close-on-exec */
    posix_spawn_file_actions_t fa;
    CL_PT(posix_spawn_file_actions_init(&fa));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, mfd, child_fd));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO));
    char spec[64];
    snprintf(spec, sizeof spec, "%d %ld", child_fd, (long)getpid());
    char *argv[] = {"patterns-backend", spec, NULL};
    int rc = cl_child_spawn(&b->pid, "/proc/self/exe", &fa, argv);
    CL_PT(posix_spawn_file_actions_destroy(&fa));
    close(mfd);
    close(out[1]);
    if (rc != 0)
        cl_refuse(run, "posix_spawn", rc, "the backend process");
    b->port = read_port(run, out[0], b->pid);
    close(out[0]); /* its last line, the counts, we read from shared memory */
}

void backend_go(struct backend *b)
{
    atomic_store_explicit(&b->sh->t0_ns, cl_now_ns(), memory_order_release);
}

void backend_stop(struct backend *b)
{
    uint64_t t = cl_now_ns();
    CL_SYS(kill(b->pid, SIGTERM));
    b->exit_status = cl_child_wait(b->pid);
    b->stop_ns = cl_now_ns() - t;
}

void backend_free(struct backend *b)
{
    atomic_store_explicit(&shown, NULL, memory_order_release);
    if (b->sh != NULL)
        munmap(b->sh, sizeof *b->sh);
    b->sh = NULL;
}

void backend_report(int fd)
{
    struct shared *s = atomic_load_explicit(&shown, memory_order_acquire);
    if (s == NULL)
        return;
    dprintf(fd, "backend: %llu requests read, %llu responses written, %llu connections open\n",
            (unsigned long long)atomic_load(&s->counts.requests),
            (unsigned long long)atomic_load(&s->counts.responses),
            (unsigned long long)atomic_load(&s->counts.open));
}

void backend_write_samples(const char *trace, uint64_t slot_ns, bool attempts)
{
    const struct shared *sh = atomic_load_explicit(&shown, memory_order_acquire);
    if (sh == NULL)
        return;
    uint64_t n = arrivals_seen(sh), t0 = atomic_load(&sh->t0_ns), last = 0;
    for (uint64_t i = 0; i < n; i++)
        if (sh->arrivals[i].t_ns > t0 && (sh->arrivals[i].t_ns - t0) / slot_ns > last)
            last = (sh->arrivals[i].t_ns - t0) / slot_ns;
    uint64_t *all = cl_xcalloc(last + 1, sizeof *all), *retries = cl_xcalloc(last + 1, 8);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t t = sh->arrivals[i].t_ns, s = t > t0 ? (t - t0) / slot_ns : 0;
        all[s]++;
        retries[s] += attempts && (sh->arrivals[i].tag & 0xfu) >= 2;
    }
    FILE *f = cl_samples_open(trace);
    if (f != NULL) {
        double per = 1e9 / (double)slot_ns; /* a slot's count, per second */
        fprintf(f, "t_s\tper_s\tretries_per_s\n");
        for (uint64_t s = 0; s <= last; s++)
            fprintf(f, "%.3f\t%.1f\t%.1f\n", (double)(s * slot_ns) / 1e9, (double)all[s] * per,
                    (double)retries[s] * per);
        fclose(f);
    }
    free(all);
    free(retries);
}

bool answered_all(const struct shared *sh)
{
    return atomic_load(&sh->counts.requests) == atomic_load(&sh->counts.responses);
}

uint64_t arrivals_seen(const struct shared *sh)
{
    uint64_t n = atomic_load(&sh->narrivals);
    return n < ARRIVALS_MAX ? n : ARRIVALS_MAX;
}

static size_t kept_times(const struct shared *sh, bool (*keep)(uint32_t), uint64_t **out)
{
    uint64_t n = arrivals_seen(sh);
    uint64_t *t = cl_xcalloc(n + 1, sizeof *t);
    size_t k = 0;
    for (uint64_t i = 0; i < n; i++)
        if (keep == NULL || keep(sh->arrivals[i].tag))
            t[k++] = sh->arrivals[i].t_ns;
    *out = t;
    return k;
}

uint64_t most_within(uint64_t *t, size_t n, uint64_t window_ns)
{
    cl_sort_ns(t, n);
    size_t best = 0;
    for (size_t lo = 0, hi = 0; hi < n; hi++) {
        while (t[hi] - t[lo] >= window_ns)
            lo++;
        if (hi - lo + 1 > best)
            best = hi - lo + 1;
    }
    return best;
}

uint64_t max_in_window(const struct shared *sh, uint64_t window_ns, bool (*keep)(uint32_t))
{
    uint64_t *t;
    size_t n = kept_times(sh, keep, &t);
    uint64_t best = most_within(t, n, window_ns);
    free(t);
    return best;
}

/* ---- the client ---- */

void client_init(struct client *c, uint16_t port)
{
    *c = (struct client){.fd = -1, .port = port};
}

void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int connect_local(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

bool client_open(struct client *c)
{
    c->fd = connect_local(c->port);
    return c->fd >= 0;
}

/* The request went out; no reply came: an idle connection the server had
 * closed (reset), or a request the server read and dropped (lost). */
static enum call_result no_reply(struct client *c)
{
    bool reused = c->reused;
    client_close(c);
    return reused ? CALL_RESET : CALL_LOST;
}

enum call_result client_get(struct client *c, const char *target, int *status)
{
    c->reused = c->fd >= 0;
    if (c->fd < 0) {
        int fd = connect_local(c->port);
        if (fd == -ECONNREFUSED)
            return CALL_REFUSED;
        if (fd < 0)
            cl_fatal("patterns: connect: %s", strerror(-fd));
        c->fd = fd;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return no_reply(c);
    c->len = 0;
    char *end;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        if (c->len == sizeof c->buf - 1)
            cl_fatal("patterns: a reply's head over %zu bytes", sizeof c->buf);
        ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return no_reply(c);
        c->len += (size_t)got;
    }
    c->buf[c->len] = '\0';
    *end = '\0'; /* the head, as one string */
    *status = atoi(c->buf + 9);
    const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
    size_t body = cl == NULL ? 0 : strtoul(cl + 17, NULL, 10);
    bool close_after = strcasestr(c->buf, "\r\nConnection: close") != NULL;
    size_t have = c->len - (size_t)(end + 4 - c->buf);
    size_t kept = have < sizeof c->body - 1 ? have : sizeof c->body - 1;
    memcpy(c->body, end + 4, kept);
    while (have < body) {
        char more[512];
        ssize_t got = recv(c->fd, more, sizeof more, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break; /* a short body: the reply still came */
        for (ssize_t i = 0; i < got && kept < sizeof c->body - 1; i++)
            c->body[kept++] = more[i];
        have += (size_t)got;
    }
    c->body[kept] = '\0';
    if (close_after)
        client_close(c);
    return CALL_OK;
}
