#include "cl_procpool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_child.h"
#include "cl_time.h"

#define WORKER_FLAG "--cl-procpool-worker"

/* On the pipes, in host byte order (both ends are this program). */
struct request {
    uint64_t fn, first, count, arg;
};

struct reply_head {
    uint64_t first, count;
};

struct item_result {
    uint64_t value;
    int64_t err;
};

/* ------------------------------------------------------------ the worker side */

/* All len bytes, retrying short reads; false at end of file or on an error. */
static bool read_full(int fd, void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, (const char *)buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false;
        done += (size_t)w;
    }
    return true;
}

bool cl_procpool_is_worker(int argc, char **argv)
{
    return argc == 3 && strcmp(argv[1], WORKER_FLAG) == 0;
}

/* [snippet serve] */
int cl_procpool_serve(int argc, char **argv, cl_proc_fn *const *fns, size_t nfns)
{
    if (!cl_procpool_is_worker(argc, argv))
        return 2;
    cl_child_die_with_parent((pid_t)strtol(argv[2], NULL, 10));
    sigset_t none; /* the spawning thread's mask was inherited: start clean */
    sigemptyset(&none);
    CL_PT(pthread_sigmask(SIG_SETMASK, &none, NULL));
    signal(SIGINT, SIG_IGN); /* Ctrl-C is the parent's to answer; it kills us */
    struct item_result *out = NULL;
    size_t cap = 0;
    struct request rq;
    while (read_full(STDIN_FILENO, &rq, sizeof rq)) {
        if (rq.count > cap) {
            free(out);
            cap = rq.count;
            out = calloc(cap, sizeof *out);
            if (out == NULL)
                cl_die(__FILE__, __LINE__, "calloc", ENOMEM);
        }
        for (uint64_t i = 0; i < rq.count; i++) {
            uint64_t value = 0;
            int err = rq.fn < nfns ? fns[rq.fn](rq.first + i, rq.arg, &value) : ENOSYS;
            out[i] = (struct item_result){.value = value, .err = err};
        }
        struct reply_head head = {rq.first, rq.count};
        if (!write_full(STDOUT_FILENO, &head, sizeof head) ||
            !write_full(STDOUT_FILENO, out, rq.count * sizeof *out))
            break; /* the parent has gone */
    }
    free(out);
    return 0;
}
/* [end serve] */

/* ------------------------------------------------------------ the pool */

struct chunk {
    struct cl_procpool_batch *b;
    uint64_t first, count;
    struct chunk *next; /* the pool's queue */
};

struct cl_procpool_batch {
    struct cl_procpool *pp;
    unsigned fn;
    uint64_t arg;
    uint64_t *results;
    int *errors;
    _Atomic int state;  /* PENDING, RUNNING, OK or CANCELLED; written under pp->mu */
    size_t chunks_left; /* chunks whose results are not in yet */
    size_t outstanding; /* chunks in the queue or in a worker: the pool's reference */
    _Atomic int refs;   /* the caller's, the pool's, the completion queue's */
    struct chunk *chunks;
    struct cl_procpool_batch *done_next;
};

struct worker {
    pid_t pid;          /* 0: the slot is empty */
    int req_fd, res_fd; /* our ends: its stdin, its stdout */
    struct chunk *running;
    bool killed; /* SIGKILLed; reaped and replaced once its pipe closes */
};

struct cl_procpool {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* a batch settled, or the manager started */
    struct chunk *head, *tail;
    struct cl_procpool_batch *done_head, *done_tail;
    struct worker *workers;
    int nworkers;
    bool stopping, started;
    int start_err; /* the manager's first spawns: 0 or the error */
    char exe[PATH_MAX];
    int wakefd; /* wakes the manager's poll */
    int efd;    /* the completion eventfd, or -1 */
    pthread_t manager;
    _Atomic uint64_t spawned, killed, died, requests;
    _Atomic int live, busy;
};

static bool settled(int state)
{
    return state == CL_POOL_OK || state == CL_POOL_CANCELLED;
}

void cl_procpool_release(struct cl_procpool_batch *b)
{
    if (atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    free(b->chunks);
    free(b);
}

static void wake_manager(struct cl_procpool *pp)
{
    uint64_t one = 1;
    CL_SYS_RETRY(write(pp->wakefd, &one, sizeof one));
}

/* Under mu: the batch is final; wake its waiters, queue it for take_done. */
static void settle_locked(struct cl_procpool *pp, struct cl_procpool_batch *b, int state)
{
    atomic_store_explicit(&b->state, state, memory_order_release);
    CL_PT(pthread_cond_broadcast(&pp->changed));
    if (pp->efd < 0)
        return;
    atomic_fetch_add(&b->refs, 1);
    b->done_next = NULL;
    if (pp->done_tail != NULL)
        pp->done_tail->done_next = b;
    else
        pp->done_head = b;
    pp->done_tail = b;
    uint64_t one = 1;
    CL_SYS_RETRY(write(pp->efd, &one, sizeof one));
}

/* Under mu: one chunk of b is out of the queue and out of every worker. Returns
 * whether that was the last: the pool's reference is then the caller's to drop,
 * after the unlock. */
static bool chunk_out_locked(struct cl_procpool_batch *b)
{
    return --b->outstanding == 0;
}

/* Under mu: a chunk's results are in (or its worker died: ECHILD). */
static void chunk_done_locked(struct cl_procpool *pp, struct chunk *c,
                              const struct item_result *items, int died_err)
{
    struct cl_procpool_batch *b = c->b;
    if (atomic_load_explicit(&b->state, memory_order_relaxed) == CL_POOL_CANCELLED)
        return; /* cancelled: its arrays are no longer ours to write */
    for (uint64_t i = 0; i < c->count; i++) {
        b->results[c->first + i] = items != NULL ? items[i].value : 0;
        b->errors[c->first + i] = items != NULL ? (int)items[i].err : died_err;
    }
    if (--b->chunks_left == 0)
        settle_locked(pp, b, CL_POOL_OK);
}

/* A pipe whose ends are above stderr: dup2 onto the worker's stdin or stdout
 * then always makes a copy without close-on-exec. */
static int pipe_above_stdio(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return errno;
    for (int i = 0; i < 2; i++)
        if (fds[i] <= STDERR_FILENO) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
            int e = errno;
            close(fds[i]);
            if (moved < 0) {
                close(fds[1 - i]);
                return e;
            }
            fds[i] = moved;
        }
    return 0;
}

static int spawn_worker(struct cl_procpool *pp, struct worker *w)
{
    int req[2], res[2], e;
    if ((e = pipe_above_stdio(req)) != 0)
        return e;
    if ((e = pipe_above_stdio(res)) != 0) {
        close(req[0]);
        close(req[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    CL_PT(posix_spawn_file_actions_init(&fa));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, req[0], STDIN_FILENO));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, res[1], STDOUT_FILENO));
    char parent[24], flag[] = WORKER_FLAG;
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    char *argv[] = {pp->exe, flag, parent, NULL};
    pid_t pid;
    int rc = cl_child_spawn(&pid, pp->exe, &fa, argv);
    CL_PT(posix_spawn_file_actions_destroy(&fa));
    CL_SYS(close(req[0]));
    CL_SYS(close(res[1]));
    if (rc != 0) {
        CL_SYS(close(req[1]));
        CL_SYS(close(res[0]));
        return rc;
    }
    CL_PT(pthread_mutex_lock(&pp->mu)); /* a cancel reads the slot under mu */
    *w = (struct worker){.pid = pid, .req_fd = req[1], .res_fd = res[0]};
    CL_PT(pthread_mutex_unlock(&pp->mu));
    atomic_fetch_add_explicit(&pp->spawned, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pp->live, 1, memory_order_relaxed);
    return 0;
}

/* Under mu: fail every queued chunk with err (no worker is left to run them). */
static void fail_queue_locked(struct cl_procpool *pp, int err, struct cl_procpool_batch **drop,
                              size_t *ndrop)
{
    while (pp->head != NULL) {
        struct chunk *c = pp->head;
        pp->head = c->next;
        chunk_done_locked(pp, c, NULL, err);
        if (chunk_out_locked(c->b))
            drop[(*ndrop)++] = c->b;
    }
    pp->tail = NULL;
}

/* A worker's pipe closed: it was killed, or it died. Reap it, give its chunk's
 * items ECHILD if nobody cancelled them, and put a new worker in its place. */
static void worker_gone(struct cl_procpool *pp, struct worker *w)
{
    CL_SYS(close(w->req_fd));
    CL_SYS(close(w->res_fd));
    cl_child_wait(w->pid);
    atomic_fetch_sub_explicit(&pp->live, 1, memory_order_relaxed);
    CL_PT(pthread_mutex_lock(&pp->mu));
    struct chunk *c = w->running;
    struct cl_procpool_batch *drop[1] = {NULL};
    if (c != NULL) {
        atomic_fetch_sub_explicit(&pp->busy, 1, memory_order_relaxed);
        chunk_done_locked(pp, c, NULL, ECHILD);
        if (chunk_out_locked(c->b))
            drop[0] = c->b;
    }
    if (!w->killed)
        atomic_fetch_add_explicit(&pp->died, 1, memory_order_relaxed);
    bool replace = !pp->stopping;
    *w = (struct worker){0}; /* an empty slot */
    CL_PT(pthread_mutex_unlock(&pp->mu));
    if (drop[0] != NULL)
        cl_procpool_release(drop[0]);
    if (replace && spawn_worker(pp, w) != 0 && atomic_load(&pp->live) == 0) {
        /* no worker at all: fail what waits rather than leave it waiting */
        CL_PT(pthread_mutex_lock(&pp->mu));
        size_t n = 0, cap = 0;
        for (struct chunk *q = pp->head; q != NULL; q = q->next)
            cap++;
        struct cl_procpool_batch **list =
            cl_xcalloc(cap ? cap : 1, sizeof(struct cl_procpool_batch *));
        fail_queue_locked(pp, ECHILD, list, &n);
        CL_PT(pthread_mutex_unlock(&pp->mu));
        for (size_t i = 0; i < n; i++)
            cl_procpool_release(list[i]);
        free(list);
    }
}

/* A worker has something to say: a whole reply, or its end. */
static void read_reply(struct cl_procpool *pp, struct worker *w, struct item_result **buf,
                       size_t *cap)
{
    struct reply_head head;
    if (!read_full(w->res_fd, &head, sizeof head)) {
        worker_gone(pp, w);
        return;
    }
    if (head.count > *cap) {
        free(*buf);
        *cap = head.count;
        *buf = cl_xcalloc(*cap, sizeof **buf);
    }
    if (!read_full(w->res_fd, *buf, head.count * sizeof **buf)) {
        worker_gone(pp, w);
        return;
    }
    CL_PT(pthread_mutex_lock(&pp->mu));
    struct chunk *c = w->running;
    struct cl_procpool_batch *drop = NULL;
    bool asked = c != NULL && head.first == c->first && head.count == c->count;
    if (asked) {
        w->running = NULL;
        atomic_fetch_sub_explicit(&pp->busy, 1, memory_order_relaxed);
        chunk_done_locked(pp, c, *buf, 0);
        if (chunk_out_locked(c->b))
            drop = c->b;
    }
    CL_PT(pthread_mutex_unlock(&pp->mu));
    if (!asked)
        cl_fatal("cl_procpool: worker %d answered items %llu+%llu, not its request", (int)w->pid,
                 (unsigned long long)head.first, (unsigned long long)head.count);
    if (drop != NULL)
        cl_procpool_release(drop);
}

/* Under mu: give each idle worker the next chunk. */
static void dispatch_locked(struct cl_procpool *pp)
{
    for (int i = 0; i < pp->nworkers && pp->head != NULL; i++) {
        struct worker *w = &pp->workers[i];
        if (w->pid == 0 || w->killed || w->running != NULL)
            continue;
        struct chunk *c = pp->head;
        pp->head = c->next;
        if (pp->head == NULL)
            pp->tail = NULL;
        struct cl_procpool_batch *b = c->b;
        if (atomic_load_explicit(&b->state, memory_order_relaxed) == CL_POOL_PENDING)
            atomic_store_explicit(&b->state, CL_POOL_RUNNING, memory_order_relaxed);
        struct request rq = {.fn = b->fn, .first = c->first, .count = c->count, .arg = b->arg};
        w->running = c;
        atomic_fetch_add_explicit(&pp->busy, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&pp->requests, 1, memory_order_relaxed);
        /* its pipe is empty (it is idle), so this small write never blocks; a
         * dead worker's EPIPE shows up as its reply pipe closing */
        write_full(w->req_fd, &rq, sizeof rq);
    }
}

static bool idle_locked(const struct cl_procpool *pp)
{
    for (int i = 0; i < pp->nworkers; i++)
        if (pp->workers[i].running != NULL || pp->workers[i].killed) /* killed: not reaped */
            return false;
    return pp->head == NULL;
}

/* [snippet manager] */
static void *manager_main(void *arg)
{
    struct cl_procpool *pp = arg;
    sigset_t pipe_sig; /* a write to a dead worker's pipe: EPIPE, not a SIGPIPE */
    sigemptyset(&pipe_sig);
    sigaddset(&pipe_sig, SIGPIPE);
    CL_PT(pthread_sigmask(SIG_BLOCK, &pipe_sig, NULL));
    int err = 0; /* the workers are this thread's children: they die with it */
    for (int i = 0; i < pp->nworkers && err == 0; i++)
        err = spawn_worker(pp, &pp->workers[i]);
    CL_PT(pthread_mutex_lock(&pp->mu));
    pp->started = true;
    pp->start_err = err;
    CL_PT(pthread_cond_broadcast(&pp->changed));
    CL_PT(pthread_mutex_unlock(&pp->mu));
    struct pollfd *fds = cl_xcalloc((size_t)pp->nworkers + 1, sizeof *fds);
    struct worker **who = cl_xcalloc((size_t)pp->nworkers + 1, sizeof(struct worker *));
    struct item_result *buf = NULL;
    size_t cap = 0;
    for (;;) {
        CL_PT(pthread_mutex_lock(&pp->mu));
        dispatch_locked(pp);
        bool done = err != 0 || (pp->stopping && idle_locked(pp));
        CL_PT(pthread_mutex_unlock(&pp->mu));
        if (done)
            break;
        int n = 0;
        fds[n++] = (struct pollfd){.fd = pp->wakefd, .events = POLLIN};
        for (int i = 0; i < pp->nworkers; i++)
            if (pp->workers[i].pid != 0) {
                who[n] = &pp->workers[i];
                fds[n++] = (struct pollfd){.fd = pp->workers[i].res_fd, .events = POLLIN};
            }
        CL_SYS_RETRY(poll(fds, (nfds_t)n, -1));
        uint64_t count;
        if (fds[0].revents & POLLIN)
            CL_SYS_RETRY(read(pp->wakefd, &count, sizeof count));
        for (int k = 1; k < n; k++)
            if (fds[k].revents != 0) /* a reply, or POLLHUP: it is gone */
                read_reply(pp, who[k], &buf, &cap);
    }
    free(buf);
    free(who);
    free(fds);
    for (int i = 0; i < pp->nworkers; i++) { /* end of input: each worker returns */
        struct worker *w = &pp->workers[i];
        if (w->pid == 0)
            continue;
        CL_SYS(close(w->req_fd));
        cl_child_wait(w->pid);
        CL_SYS(close(w->res_fd));
        atomic_fetch_sub_explicit(&pp->live, 1, memory_order_relaxed);
    }
    return NULL;
}
/* [end manager] */

struct cl_procpool *cl_procpool_new(const struct cl_procpool_opts *opts)
{
    if (opts->workers < 1 || opts->workers > CL_PROCPOOL_MAX_WORKERS) {
        errno = EINVAL;
        return NULL;
    }
    struct cl_procpool *pp = calloc(1, sizeof *pp);
    if (pp == NULL || (pp->workers = calloc((size_t)opts->workers, sizeof *pp->workers)) == NULL) {
        free(pp);
        errno = ENOMEM;
        return NULL;
    }
    pp->nworkers = opts->workers;
    pp->efd = -1;
    ssize_t len = readlink("/proc/self/exe", pp->exe, sizeof pp->exe - 1);
    int e = 0;
    if (len < 0 || (size_t)len >= sizeof pp->exe - 1)
        e = len < 0 ? errno : ENAMETOOLONG;
    else if ((pp->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        e = errno;
    else if (opts->completions && (pp->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        e = errno;
        CL_SYS(close(pp->wakefd));
    }
    if (e != 0) {
        free(pp->workers);
        free(pp);
        errno = e;
        return NULL;
    }
    pp->exe[len] = '\0';
    CL_PT(pthread_mutex_init(&pp->mu, NULL));
    CL_PT(cl_cond_init_monotonic(&pp->changed));
    int rc = pthread_create(&pp->manager, NULL, manager_main, pp);
    if (rc == 0) {
        CL_PT(pthread_mutex_lock(&pp->mu));
        while (!pp->started)
            CL_PT(pthread_cond_wait(&pp->changed, &pp->mu));
        rc = pp->start_err;
        CL_PT(pthread_mutex_unlock(&pp->mu));
        if (rc != 0) { /* the manager reaps the ones it started, then returns */
            CL_PT(pthread_join(pp->manager, NULL));
            pp->nworkers = 0;
        }
    }
    if (rc != 0) {
        if (pp->efd >= 0)
            CL_SYS(close(pp->efd));
        CL_SYS(close(pp->wakefd));
        CL_PT(pthread_cond_destroy(&pp->changed));
        CL_PT(pthread_mutex_destroy(&pp->mu));
        free(pp->workers);
        free(pp);
        errno = rc;
        return NULL;
    }
    return pp;
}

struct cl_procpool_batch *cl_procpool_map(struct cl_procpool *pp, unsigned fn, uint64_t arg,
                                          size_t n, size_t chunk, uint64_t *results, int *errors)
{
    if (chunk == 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t nchunks = (n + chunk - 1) / chunk;
    struct cl_procpool_batch *b = calloc(1, sizeof *b);
    if (b == NULL || (b->chunks = calloc(nchunks ? nchunks : 1, sizeof *b->chunks)) == NULL) {
        free(b);
        errno = ENOMEM;
        return NULL;
    }
    b->pp = pp;
    b->fn = fn;
    b->arg = arg;
    b->results = results;
    b->errors = errors;
    b->chunks_left = b->outstanding = nchunks;
    atomic_init(&b->state, CL_POOL_PENDING);
    atomic_init(&b->refs, nchunks ? 2 : 1); /* the caller's, and the pool's while it works */
    for (size_t i = 0; i < nchunks; i++)
        b->chunks[i] = (struct chunk){
            .b = b, .first = i * chunk, .count = i + 1 < nchunks ? chunk : n - i * chunk};
    CL_PT(pthread_mutex_lock(&pp->mu));
    if (pp->stopping) {
        CL_PT(pthread_mutex_unlock(&pp->mu));
        free(b->chunks);
        free(b);
        errno = ESHUTDOWN;
        return NULL;
    }
    for (size_t i = 0; i < nchunks; i++) {
        if (pp->tail != NULL)
            pp->tail->next = &b->chunks[i];
        else
            pp->head = &b->chunks[i];
        pp->tail = &b->chunks[i];
    }
    if (nchunks == 0)
        settle_locked(pp, b, CL_POOL_OK);
    CL_PT(pthread_mutex_unlock(&pp->mu));
    wake_manager(pp);
    return b;
}

enum cl_pool_status cl_procpool_wait(struct cl_procpool_batch *b, uint64_t timeout_ns)
{
    int state = atomic_load_explicit(&b->state, memory_order_acquire);
    if (settled(state) || timeout_ns == 0) /* a settled batch may outlive its pool */
        return settled(state) ? (enum cl_pool_status)state : CL_POOL_TIMEOUT;
    struct cl_procpool *pp = b->pp;
    struct timespec deadline = cl_deadline_ns(timeout_ns == CL_FOREVER ? 0 : timeout_ns);
    CL_PT(pthread_mutex_lock(&pp->mu));
    while (!settled(state = atomic_load_explicit(&b->state, memory_order_relaxed))) {
        if (timeout_ns == CL_FOREVER) {
            CL_PT(pthread_cond_wait(&pp->changed, &pp->mu));
            continue;
        }
        int rc = pthread_cond_timedwait(&pp->changed, &pp->mu, &deadline);
        if (rc == ETIMEDOUT)
            break;
        CL_PT(rc);
    }
    CL_PT(pthread_mutex_unlock(&pp->mu));
    return settled(state) ? (enum cl_pool_status)state : CL_POOL_TIMEOUT;
}

/* [snippet cancel] */
bool cl_procpool_cancel(struct cl_procpool_batch *b)
{
    int state = atomic_load_explicit(&b->state, memory_order_acquire);
    if (settled(state))
        return state == CL_POOL_CANCELLED;
    struct cl_procpool *pp = b->pp;
    CL_PT(pthread_mutex_lock(&pp->mu));
    state = atomic_load_explicit(&b->state, memory_order_relaxed);
    if (settled(state)) {
        CL_PT(pthread_mutex_unlock(&pp->mu));
        return state == CL_POOL_CANCELLED;
    }
    bool last = false;
    for (struct chunk **p = &pp->head, *prev = NULL; *p != NULL;) { /* not started: drop */
        if ((*p)->b != b) {
            prev = *p;
            p = &(*p)->next;
            continue;
        }
        *p = (*p)->next;
        last = chunk_out_locked(b);
        if (*p == NULL)
            pp->tail = prev;
    }
    for (int i = 0; i < pp->nworkers; i++) { /* started: a thread cannot be stopped, */
        struct worker *w = &pp->workers[i];  /* but a process can */
        if (w->pid != 0 && w->running != NULL && w->running->b == b && !w->killed) {
            kill(w->pid, SIGKILL); /* the manager sees its pipe close, reaps, replaces */
            w->killed = true;
            atomic_fetch_add_explicit(&pp->killed, 1, memory_order_relaxed);
        }
    }
    settle_locked(pp, b, CL_POOL_CANCELLED);
    CL_PT(pthread_mutex_unlock(&pp->mu));
    if (last)
        cl_procpool_release(b);
    wake_manager(pp);
    return true;
}
/* [end cancel] */

int cl_procpool_completion_fd(const struct cl_procpool *pp)
{
    return pp->efd;
}

struct cl_procpool_batch *cl_procpool_take_done(struct cl_procpool *pp)
{
    CL_PT(pthread_mutex_lock(&pp->mu));
    struct cl_procpool_batch *b = pp->done_head;
    if (b != NULL) {
        pp->done_head = b->done_next;
        if (pp->done_head == NULL)
            pp->done_tail = NULL;
    }
    CL_PT(pthread_mutex_unlock(&pp->mu));
    return b;
}

void cl_procpool_shutdown(struct cl_procpool *pp, bool kill)
{
    CL_PT(pthread_mutex_lock(&pp->mu));
    pp->stopping = true;
    size_t n = 0;
    for (struct chunk *c = pp->head; c != NULL; c = c->next)
        n++;
    for (int i = 0; i < pp->nworkers; i++)
        n += pp->workers[i].running != NULL;
    struct cl_procpool_batch **unsettled =
        cl_xcalloc(n ? n : 1, sizeof(struct cl_procpool_batch *));
    size_t k = 0;
    for (struct chunk *c = pp->head; kill && c != NULL; c = c->next)
        unsettled[k++] = c->b;
    for (int i = 0; kill && i < pp->nworkers; i++)
        if (pp->workers[i].running != NULL)
            unsettled[k++] = pp->workers[i].running->b;
    for (size_t i = 0; i < k; i++) /* a reference each, across the unlock */
        atomic_fetch_add(&unsettled[i]->refs, 1);
    CL_PT(pthread_mutex_unlock(&pp->mu));
    for (size_t i = 0; i < k; i++) {
        cl_procpool_cancel(unsettled[i]); /* a second cancel of one batch: a no-op */
        /* the reference taken above: the cancel cannot have dropped it */
        cl_procpool_release(unsettled[i]); // NOLINT(clang-analyzer-unix.Malloc)
    }
    free(unsettled);
    wake_manager(pp);
    CL_PT(pthread_join(pp->manager, NULL));
    for (struct cl_procpool_batch *b; (b = cl_procpool_take_done(pp)) != NULL;)
        cl_procpool_release(b);
    if (pp->efd >= 0)
        CL_SYS(close(pp->efd));
    CL_SYS(close(pp->wakefd));
    CL_PT(pthread_cond_destroy(&pp->changed));
    CL_PT(pthread_mutex_destroy(&pp->mu));
    free(pp->workers);
    free(pp);
}

struct cl_procpool_stats cl_procpool_stats(const struct cl_procpool *pp)
{
    return (struct cl_procpool_stats){
        .spawned = atomic_load_explicit(&pp->spawned, memory_order_relaxed),
        .killed = atomic_load_explicit(&pp->killed, memory_order_relaxed),
        .died = atomic_load_explicit(&pp->died, memory_order_relaxed),
        .requests = atomic_load_explicit(&pp->requests, memory_order_relaxed),
        .live = atomic_load_explicit(&pp->live, memory_order_relaxed),
        .busy = atomic_load_explicit(&pp->busy, memory_order_relaxed),
    };
}
