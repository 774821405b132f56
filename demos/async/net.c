/* async, the loop on real sockets (127.0.0.1, a port the kernel picks).
 *
 * fan-out: --requests to a responder, at most --limit in flight (a semaphore),
 * request i asking for a reply after (i mod 3) + 1 units; the makespan against
 * the critical path of that first-come-first-served schedule. The responder is
 * a process of its own: this program spawned again with RESPONDER_ENV set,
 * serving each connection on a cl_loop of its own. The parent makes the
 * listening socket before the spawn, so a connection can never come too early.
 *
 * echo: one loop is the server (a task accepting, a task per connection) and
 * --clients clients, each sending --iters lines and reading each one back. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "async.h"

#define LINE 64

/* A listening socket on 127.0.0.1 and a free port; its port in *port. */
static int listen_local(struct cl_run *run, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        cl_refuse(run, "socket", errno, "a TCP socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CL_SYS(bind(fd, (struct sockaddr *)&a, sizeof a));
    CL_SYS(listen(fd, 128));
    CL_SYS(getsockname(fd, (struct sockaddr *)&a, &len));
    *port = ntohs(a.sin_port);
    return fd;
}

/* A connection under way: done when the socket is writable (then SO_ERROR). */
static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CL_SYS(fd);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        cl_die(__FILE__, __LINE__, "connect", errno);
    int one = 1;
    CL_SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    return fd;
}

/* A line-at-a-time connection: what a task keeps in its frame. */
struct conn {
    int fd;
    char buf[LINE];
    size_t len; /* bytes in buf */
};

/* Read what is there; 1: a whole line is in buf, 0: not yet, -1: closed. */
static int read_line(struct conn *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return strchr(c->buf, '\n') != NULL ? 1 : c->len == sizeof c->buf - 1 ? -1 : 0;
}

/* "A B" at the start of s: two whole numbers, separated by a space. */
static bool two_numbers(const char *s, unsigned long *a, unsigned long *b)
{
    char *end;
    errno = 0;
    *a = strtoul(s, &end, 10);
    if (end == s || *end != ' ')
        return false;
    const char *second = end + 1;
    *b = strtoul(second, &end, 10);
    return end != second && errno == 0;
}

/* Lines here are short: a socket's buffer takes one whole, or the peer is gone. */
static bool write_line(int fd, const char *s)
{
    size_t len = strlen(s);
    return write(fd, s, len) == (ssize_t)len;
}

/* ---- the responder's process ---------------------------------------------------- */

struct handler {
    struct cl_task task;
    struct conn c;
    uint64_t ns;
};

static int handler_run(struct cl_task *t)
{
    struct handler *h = (struct handler *)t;
    int got;
    CL_BEGIN(t);
    while ((got = read_line(&h->c)) == 0)
        CL_READABLE(t, h->c.fd);
    unsigned long id, us;
    if (got < 0 || !two_numbers(h->c.buf, &id, &us))
        CL_RAISE(t, EPROTO, "a bad request");
    CL_SLEEP(t, (uint64_t)us * 1000);    /* the work the request asked for */
    (void)write_line(h->c.fd, h->c.buf); /* the reply: the request, echoed */
    CL_FINALLY(t);
    close(h->c.fd);
    CL_END(t);
}

struct acceptor {
    struct cl_task task;
    int fd;
    cl_task_fn *serve; /* a task per connection */
    size_t frame;
    uint64_t accepted;
};

static int acceptor_run(struct cl_task *t)
{
    struct acceptor *a = (struct acceptor *)t;
    CL_BEGIN(t);
    for (;;) {
        CL_READABLE(t, a->fd);
        int fd;
        while ((fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            struct cl_task *h = cl_task_new(t->fut.loop, a->serve, a->frame, "connection");
            ((struct handler *)h)->c.fd = fd; /* every serve frame begins with its conn */
            cl_future_unref(&h->fut);
            a->accepted++;
        }
    }
    CL_END(t);
}

int responder_main(const char *spec)
{
    unsigned long fd, parent;
    if (!two_numbers(spec, &fd, &parent) || fd > 1024) {
        fprintf(stderr, "async: %s: '%s' is not 'FD PARENT'\n", RESPONDER_ENV, spec);
        return CL_EXIT_USAGE;
    }
    cl_child_die_with_parent((pid_t)parent);
    struct cl_loop *loop = cl_loop_new(NULL);
    if (loop == NULL)
        return CL_EXIT_REFUSED;
    struct acceptor *a = (struct acceptor *)cl_task_new(loop, acceptor_run, sizeof *a, "acceptor");
    a->fd = (int)fd;
    a->serve = handler_run;
    a->frame = sizeof(struct handler);
    cl_loop_run(loop); /* until the parent stops this process */
    cl_loop_free(loop);
    return CL_EXIT_OK;
}

/* ---- fan-out ----------------------------------------------------------------------- */

static struct {
    int port, n;
    struct cl_asem limit;
    int in_flight, most, replied, wrong;
    double units, schedule_units, sequential_units;
} fan;

static double delay_units(int i)
{
    return (double)(i % 3 + 1);
}

/* [snippet fan-out] */
struct request {
    struct cl_task task;
    struct conn c;
    int id;
    bool holding; /* a permit of the limit */
};

static int request_run(struct cl_task *t)
{
    struct request *r = (struct request *)t;
    CL_BEGIN(t);
    CL_SEM_ACQUIRE(t, &fan.limit); /* async with semaphore: at most --limit at once */
    r->holding = true;
    if (++fan.in_flight > fan.most)
        fan.most = fan.in_flight;
    r->c.fd = connect_local(fan.port);
    CL_WRITABLE(t, r->c.fd); /* connected (or refused: SO_ERROR says) */
    char req[LINE];
    snprintf(req, sizeof req, "%d %llu\n", r->id,
             (unsigned long long)(delay_units(r->id) * (double)unit_ns / 1000));
    if (!write_line(r->c.fd, req))
        CL_RAISE(t, ECONNREFUSED, "the responder is not there");
    int got;
    while ((got = read_line(&r->c)) == 0)
        CL_READABLE(t, r->c.fd); /* await the reply */
    unsigned long id, us;
    if (got > 0 && two_numbers(r->c.buf, &id, &us) && id == (unsigned long)r->id)
        fan.replied++;
    else
        fan.wrong++;
    CL_FINALLY(t);
    if (r->c.fd >= 0)
        close(r->c.fd);
    if (r->holding) {
        fan.in_flight--;
        cl_asem_release(&fan.limit);
    }
    CL_END(t);
}
/* [end fan-out] */

/* The critical path of the schedule the semaphore makes: each request, in
 * order, starts as soon as one of the limit's slots is free. */
static double schedule_units(int n, int limit)
{
    double free_at[100] = {0}, end = 0;
    for (int i = 0; i < n; i++) {
        int s = 0;
        for (int k = 1; k < limit; k++)
            if (free_at[k] < free_at[s])
                s = k;
        free_at[s] += delay_units(i);
        end = free_at[s] > end ? free_at[s] : end;
    }
    return end;
}

static pid_t spawn_responder(struct cl_run *run, int lfd)
{
    int child_fd = lfd == 3 ? 4 : 3; /* dup2 onto another number clears close-on-exec */
    posix_spawn_file_actions_t fa;
    CL_PT(posix_spawn_file_actions_init(&fa));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, lfd, child_fd));
    char spec[64];
    snprintf(spec, sizeof spec, "%d %ld", child_fd, (long)getpid());
    CL_SYS(setenv(RESPONDER_ENV, spec, 1));
    char *argv[] = {"async-responder", NULL};
    pid_t pid;
    int rc = cl_child_spawn(&pid, "/proc/self/exe", &fa, argv);
    unsetenv(RESPONDER_ENV);
    CL_PT(posix_spawn_file_actions_destroy(&fa));
    if (rc != 0)
        cl_refuse(run, "posix_spawn", rc, "the responder process");
    return pid;
}

void run_fan_out(struct cl_run *run)
{
    fan.n = (int)cl_param(run, REQUESTS);
    int limit = (int)cl_param(run, LIMIT);
    int lfd = listen_local(run, &fan.port);
    pid_t responder = spawn_responder(run, lfd);
    close(lfd); /* the responder has its own copy */
    struct cl_loop *loop = loop_open(run);
    cl_asem_init(&fan.limit, loop, limit, limit, "a free slot of the limit");
    struct cl_future **futs = cl_xcalloc((size_t)fan.n, sizeof(struct cl_future *));
    uint64_t t0 = cl_now_ns();
    for (int i = 0; i < fan.n; i++) {
        struct request *r = (struct request *)cl_task_new(loop, request_run, sizeof *r, "request");
        r->id = i;
        r->c.fd = -1; /* until it connects */
        futs[i] = &r->task.fut;
    }
    struct cl_future *all = cl_gather_new(loop, futs, (size_t)fan.n, CL_RETURN_EXCEPTIONS);
    loop_run_until(loop, all);
    fan.units = units_since(t0);
    fan.schedule_units = schedule_units(fan.n, limit);
    for (int i = 0; i < fan.n; i++) {
        fan.sequential_units += delay_units(i);
        cl_future_unref(futs[i]);
    }
    free(futs);
    cl_future_unref(all);
    loop_close(loop);
    kill(responder, SIGTERM);
    cl_child_wait(responder);
}

static void judge_fan_out(const struct cl_run *run, struct cl_result *res)
{
    int limit = (int)cl_param(run, LIMIT);
    int most = fan.n < limit ? fan.n : limit;
    res->exact = fan.replied == fan.n && fan.wrong == 0 && fan.most == most &&
                 fan.units >= fan.schedule_units;
    res->ops = (uint64_t)fan.n;
    cl_metric_real(res, "makespan_units", fan.units);
    cl_metric_real(res, "schedule_units", fan.schedule_units);
    cl_metric_real(res, "sequential_units", fan.sequential_units);
    cl_metric_int(res, "most_in_flight", fan.most);
    cl_verdict(res,
               "%d of %d replies right, at most %d in flight: %.2f units, against %.0f for "
               "the schedule's critical path and %.0f one after another",
               fan.replied, fan.n, fan.most, fan.units, fan.schedule_units, fan.sequential_units);
}

const struct family fan_out_f = {judge_fan_out};

/* ---- echo ---------------------------------------------------------------------------- */

static struct {
    int port, messages;
    int echoed, wrong, clients_done;
    uint64_t *rtt_ns; /* every round trip */
    size_t nrtt;
    double p50_us;
} echo;

/* [snippet echo] */
struct echoer { /* the server's side of one connection */
    struct cl_task task;
    struct conn c; /* first, as the acceptor expects */
};

static int echoer_run(struct cl_task *t)
{
    struct echoer *e = (struct echoer *)t;
    CL_BEGIN(t);
    for (;;) {
        int got;
        while ((got = read_line(&e->c)) == 0)
            CL_READABLE(t, e->c.fd);
        if (got < 0)
            break;                          /* the client hung up */
        if (!write_line(e->c.fd, e->c.buf)) /* send the line back */
            break;
        e->c.len = 0;
    }
    CL_FINALLY(t);
    close(e->c.fd);
    CL_END(t);
}
/* [end echo] */

struct client {
    struct cl_task task;
    struct conn c;
    int id, m;
    char sent[LINE];
    uint64_t t0;
};

static int client_run(struct cl_task *t)
{
    struct client *k = (struct client *)t;
    CL_BEGIN(t);
    k->c.fd = connect_local(echo.port);
    CL_WRITABLE(t, k->c.fd);
    for (k->m = 0; k->m < echo.messages; k->m++) {
        snprintf(k->sent, sizeof k->sent, "client %d says %d\n", k->id, k->m);
        k->t0 = cl_now_ns();
        if (!write_line(k->c.fd, k->sent))
            CL_RAISE(t, ECONNRESET, "the server hung up");
        int got;
        k->c.len = 0;
        while ((got = read_line(&k->c)) == 0)
            CL_READABLE(t, k->c.fd);
        echo.rtt_ns[echo.nrtt++] = cl_now_ns() - k->t0;
        if (got > 0 && strcmp(k->c.buf, k->sent) == 0)
            echo.echoed++;
        else
            echo.wrong++;
    }
    echo.clients_done++;
    CL_FINALLY(t);
    if (k->c.fd >= 0)
        close(k->c.fd);
    CL_END(t);
}

void run_echo(struct cl_run *run)
{
    int clients = (int)cl_param(run, CLIENTS);
    echo.messages = (int)run->iters;
    echo.rtt_ns = cl_xcalloc((size_t)clients * (size_t)echo.messages, sizeof *echo.rtt_ns);
    int lfd = listen_local(run, &echo.port);
    struct cl_loop *loop = loop_open(run);
    struct acceptor *a = (struct acceptor *)cl_task_new(loop, acceptor_run, sizeof *a, "server");
    a->fd = lfd;
    a->serve = echoer_run;
    a->frame = sizeof(struct echoer);
    struct cl_future **futs = cl_xcalloc((size_t)clients, sizeof(struct cl_future *));
    for (int i = 0; i < clients; i++) {
        struct client *k = (struct client *)cl_task_new(loop, client_run, sizeof *k, "client");
        k->id = i;
        k->c.fd = -1;
        futs[i] = &k->task.fut;
    }
    struct cl_future *all = cl_gather_new(loop, futs, (size_t)clients, CL_RETURN_EXCEPTIONS);
    loop_run_until(loop, all);
    cl_task_cancel(&a->task); /* stop accepting; loop_close waits for the connections */
    loop_run_until(loop, &a->task.fut);
    cl_future_unref(&a->task.fut);
    for (int i = 0; i < clients; i++)
        cl_future_unref(futs[i]);
    free(futs);
    cl_future_unref(all);
    loop_close(loop);
    close(lfd);
    cl_sort_ns(echo.rtt_ns, echo.nrtt);
    size_t mid = echo.nrtt / 2;
    echo.p50_us = echo.nrtt > 0 ? (double)echo.rtt_ns[mid] / 1e3 : 0;
    free(echo.rtt_ns);
}

static void judge_echo(const struct cl_run *run, struct cl_result *res)
{
    int clients = (int)cl_param(run, CLIENTS);
    int want = clients * echo.messages;
    res->exact = echo.echoed == want && echo.wrong == 0 && echo.clients_done == clients;
    res->ops = (uint64_t)want;
    cl_metric_int(res, "echoed", echo.echoed);
    cl_metric_real(res, "rtt_p50_us", echo.p50_us);
    cl_verdict(res,
               "one thread served %d clients: %d of %d lines came back as sent (round trip "
               "%.0f us, median)",
               clients, echo.echoed, want, echo.p50_us);
}

const struct family echo_f = {judge_echo};
