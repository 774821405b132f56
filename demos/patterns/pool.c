/* A pool of keep-alive connections to the backend, which counts every
 * connection it accepts: the referee of how many the pool really opened.
 *
 *   conn-pool       starts at 2, grows to --limit under load (a connection is
 *                   opened outside the lock), checks each idle connection before
 *                   handing it out, closes those idle too long
 *   conn-pool-grow  the guides' pool: it grows inside acquire, holding its lock,
 *                   through a grow() that takes the same lock again. The third
 *                   concurrent caller hangs; cl_mutex lets the watchdog name it
 *   conn-pool-size  p50 and p99 latency at a fixed load for pools of 1 to 16
 *                   connections, against a backend that serves --capacity at once */
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "patterns.h"

#define POOL_MAX     256
#define POOL_MIN     2          /* the guides' minimum */
#define IDLE_NS      CL_MS(200) /* an idle connection older than this is closed */
#define PACE_NS      CL_MS(50)  /* conn-pool-size: each client's query interval */
#define SIZES        5
#define PER_PHASE    64         /* queries one client makes in one phase, at most */
#define PHASE_GAP_NS CL_MS(150) /* between two phases of conn-pool-size */

struct conn {
    struct client c;
    uint64_t idle_since;
};

struct pool {
    struct cl_mutex lock;
    sem_t room; /* connections free or still to be opened: max less those in use */
    struct conn *idle[POOL_MAX];
    int nidle, size, max, peak;
    _Atomic uint64_t opened, recycled, unhealthy, discarded;
    uint16_t port;
};

static _Atomic(struct pool *) shown_pool; /* for the watchdog's report */

static struct conn *conn_open(struct pool *p)
{
    struct conn *k = cl_xcalloc(1, sizeof *k);
    client_init(&k->c, p->port);
    if (!client_open(&k->c))
        cl_fatal("patterns: cannot connect to the backend");
    atomic_fetch_add(&p->opened, 1);
    return k;
}

static void conn_close(struct conn *k)
{
    client_close(&k->c);
    free(k);
}

/* An idle connection the server has closed reads as end-of-file at once. */
static bool healthy(const struct conn *k)
{
    char b;
    ssize_t got = recv(k->c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void pool_init(struct pool *p, uint16_t port, int min, int max)
{
    *p = (struct pool){.port = port, .max = max};
    cl_mutex_init(&p->lock, "the pool's lock", PTHREAD_MUTEX_DEFAULT);
    CL_SYS(sem_init(&p->room, 0, (unsigned)max));
    for (int i = 0; i < min; i++) {
        struct conn *k = conn_open(p);
        k->idle_since = cl_now_ns();
        p->idle[p->nidle++] = k;
    }
    p->size = p->peak = min;
}

static void pool_destroy(struct pool *p)
{
    for (int i = 0; i < p->nidle; i++)
        conn_close(p->idle[i]);
    sem_destroy(&p->room);
    cl_mutex_destroy(&p->lock);
}

/* [snippet pool-acquire] */
static struct conn *pool_acquire(struct pool *p)
{
    CL_SYS_RETRY(sem_wait(&p->room)); /* a connection is ours to take or to open */
    for (;;) {
        cl_mutex_lock(&p->lock);
        if (p->nidle == 0) {
            p->size++; /* grow: the slot is ours, the connect happens outside the lock */
            if (p->size > p->peak)
                p->peak = p->size;
            cl_mutex_unlock(&p->lock);
            return conn_open(p);
        }
        struct conn *k = p->idle[--p->nidle];
        cl_mutex_unlock(&p->lock);
        bool stale = cl_now_ns() - k->idle_since > IDLE_NS;
        if (!stale && healthy(k))
            return k;
        atomic_fetch_add(stale ? &p->recycled : &p->unhealthy, 1);
        conn_close(k);
        cl_mutex_lock(&p->lock);
        p->size--;
        cl_mutex_unlock(&p->lock);
    }
}

static void pool_release(struct pool *p, struct conn *k)
{
    cl_mutex_lock(&p->lock);
    if (k->c.fd < 0) { /* the server dropped it mid-request: it leaves the pool */
        p->size--;
        atomic_fetch_add(&p->discarded, 1);
        free(k);
    } else {
        k->idle_since = cl_now_ns();
        p->idle[p->nidle++] = k;
    }
    cl_mutex_unlock(&p->lock);
    CL_SYS(sem_post(&p->room));
}
/* [end pool-acquire] */

/* [snippet pool-grow] */
/* The guides' pool: a caller that finds no idle connection grows the pool while
 * it still holds the lock, and grow() takes the lock again. */
static struct conn *grow(struct pool *p)
{
    cl_mutex_lock(&p->lock); /* already held by this thread: a default mutex waits forever */
    p->size++;
    cl_mutex_unlock(&p->lock);
    return conn_open(p);
}

static struct conn *guides_acquire(struct pool *p)
{
    cl_mutex_lock(&p->lock);
    struct conn *k = NULL;
    while (k == NULL) {
        if (p->nidle > 0) {
            k = p->idle[--p->nidle];
        } else if (p->size < p->max) {
            k = grow(p);
        } else { /* full: poll, as their get(timeout) does */
            cl_mutex_unlock(&p->lock);
            cl_sleep_ns(CL_MS(1));
            cl_mutex_lock(&p->lock);
        }
    }
    cl_mutex_unlock(&p->lock);
    return k;
}
/* [end pool-grow] */

/* ---- the runs ---- */

static struct {
    struct backend b;
    struct pool pool, sized[SIZES];
    bool guides;
    uint64_t t0, end_ns;
    _Atomic uint64_t queries, ok, other, retried;
    uint64_t *lat;      /* conn-pool-size: [phase][client][k], in ns */
    uint64_t peak_open; /* the backend's, at the end of the load */
} cp;

static const int sizes[SIZES] = {1, 2, 4, 8, 16};
static const char *const p50_names[SIZES] = {"p50_ms_1", "p50_ms_2", "p50_ms_4", "p50_ms_8",
                                             "p50_ms_16"};
static const char *const p99_names[SIZES] = {"p99_ms_1", "p99_ms_2", "p99_ms_4", "p99_ms_8",
                                             "p99_ms_16"};

static uint64_t phase_ns(void)
{
    return (cp.end_ns - cp.t0) / SIZES;
}

/* One query on a pooled connection; a connection the server dropped is retried
 * on another, up to 5 attempts. */
static void query(struct cl_worker *w, struct pool *p)
{
    for (int attempt = 1; attempt <= 5; attempt++) {
        cl_status(w, "waits for a connection");
        struct conn *k = cp.guides ? guides_acquire(p) : pool_acquire(p);
        cl_status(w, NULL);
        int status = 0;
        atomic_fetch_add(&cp.queries, 1);
        enum call_result r = client_get(&k->c, "/query?tag=1", &status);
        if (r != CALL_OK)
            client_close(&k->c);
        pool_release(p, k);
        if (r == CALL_OK) {
            atomic_fetch_add(status == 200 ? &cp.ok : &cp.other, 1);
            return;
        }
        atomic_fetch_add(&cp.retried, 1);
    }
    atomic_fetch_add(&cp.other, 1);
}

static void pool_client(struct cl_worker *w)
{
    while (cl_now_ns() < cp.end_ns) {
        query(w, &cp.pool);
        cl_tick(w);
    }
}

void run_pool(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    cp.guides = run->variant->kind == POOL_GROW;
    cp.queries = cp.ok = cp.other = cp.retried = 0;
    backend_start(run, &cp.b, &f);
    pool_init(&cp.pool, cp.b.port, POOL_MIN, (int)cl_param(run, LIMIT));
    atomic_store_explicit(&shown_pool, &cp.pool, memory_order_release);
    backend_go(&cp.b);
    cp.t0 = cl_now_ns();
    cp.end_ns = cp.t0 + (uint64_t)cl_param(run, DURATION_MS) * 1000000;
    cl_run_workers(run, pool_client);
    cp.peak_open = atomic_load(&cp.b.sh->counts.peak_open);
    /* Quiet for longer than IDLE_NS: the next query finds every idle connection
     * stale, closes them and opens one. */
    cl_sleep_ns(IDLE_NS + CL_MS(50));
    query(&run->workers[0], &cp.pool);
    backend_stop(&cp.b);
}

void judge_pool(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = cp.b.sh;
    const struct pool *p = &cp.pool;
    uint64_t accepted = atomic_load(&sh->counts.accepted);
    uint64_t peak_open = cp.peak_open;
    /* Exact: every query answered 200, the backend accepted exactly the
     * connections the pool opened and never had more open than the pool's max,
     * and the pool grew from its minimum to its max under the load. */
    res->exact = atomic_load(&cp.other) == 0 && accepted == atomic_load(&p->opened) &&
                 (int)peak_open <= p->max && p->peak == p->max && atomic_load(&p->recycled) >= 1 &&
                 cp.b.exit_status == 0;
    res->ops = atomic_load(&cp.queries);
    cl_metric_int(res, "queries", (long long)atomic_load(&cp.queries));
    cl_metric_int(res, "server_accepted", (long long)accepted);
    cl_metric_int(res, "server_peak_open", (long long)peak_open);
    cl_metric_int(res, "opened", (long long)atomic_load(&p->opened));
    cl_metric_int(res, "peak_size", p->peak);
    cl_metric_int(res, "recycled", (long long)atomic_load(&p->recycled));
    cl_metric_int(res, "unhealthy", (long long)atomic_load(&p->unhealthy));
    cl_metric_int(res, "discarded", (long long)atomic_load(&p->discarded));
    cl_verdict(res,
               "%llu queries from %d clients on a pool of %d to %d: it grew to %d; the backend "
               "accepted %llu connections (the pool opened %llu), at most %llu open; %llu closed "
               "idle, %llu dropped by the server",
               (unsigned long long)atomic_load(&cp.queries), run->threads, POOL_MIN, p->max,
               p->peak, (unsigned long long)accepted, (unsigned long long)atomic_load(&p->opened),
               (unsigned long long)peak_open, (unsigned long long)atomic_load(&p->recycled),
               (unsigned long long)atomic_load(&p->discarded));
}

/* ---- conn-pool-size ---- */

/* Each client is due every PACE_NS; the pool sizes take turns, a phase each,
 * with a gap between them: what one phase leaves late is dropped, not carried. */
static void paced_client(struct cl_worker *w)
{
    uint64_t span = phase_ns(), offset = (uint64_t)w->id * PACE_NS / (uint64_t)w->run->threads;
    for (int phase = 0; phase < SIZES; phase++) {
        uint64_t start = cp.t0 + (uint64_t)phase * span, end = start + span - PHASE_GAP_NS;
        uint32_t k = 0;
        for (uint64_t next = start + offset; next < end && k < PER_PHASE; next += PACE_NS) {
            uint64_t now = cl_now_ns();
            if (next > now)
                cl_sleep_ns(next - now);
            query(w, &cp.sized[phase]);
            /* from when it was due: waiting for a connection counts */
            cp.lat[((size_t)phase * POOL_MAX + (size_t)w->id) * PER_PHASE + k++] =
                cl_now_ns() - next;
            cl_tick(w);
        }
    }
}

void run_pool_size(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    cp.guides = false;
    cp.queries = cp.ok = cp.other = cp.retried = 0;
    cp.lat = cl_xcalloc((size_t)SIZES * POOL_MAX * PER_PHASE, sizeof *cp.lat);
    backend_start(run, &cp.b, &f);
    for (int i = 0; i < SIZES; i++) {
        pool_init(&cp.sized[i], cp.b.port, sizes[i], sizes[i]);
    }
    backend_go(&cp.b);
    cp.t0 = cl_now_ns();
    cp.end_ns = cp.t0 + (uint64_t)cl_param(run, DURATION_MS) * 1000000;
    cl_run_workers(run, paced_client);
    backend_stop(&cp.b);
}

static double percentile(uint64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    cl_sort_ns(v, n);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

void judge_pool_size(const struct cl_run *run, struct cl_result *res)
{
    char line[512];
    size_t len = 0;
    for (int s = 0; s < SIZES; s++) {
        uint64_t *v = cl_xcalloc((size_t)run->threads * PER_PHASE + 1, sizeof *v);
        size_t n = 0;
        for (int c = 0; c < run->threads; c++)
            for (int k = 0; k < PER_PHASE; k++) {
                uint64_t x = cp.lat[((size_t)s * POOL_MAX + (size_t)c) * PER_PHASE + (size_t)k];
                if (x != 0)
                    v[n++] = x;
            }
        double p50 = percentile(v, n, 0.5), p99 = percentile(v, n, 0.99);
        free(v);
        cl_metric_real(res, p50_names[s], p50);
        cl_metric_real(res, p99_names[s], p99);
        len += (size_t)snprintf(line + len, sizeof line - len, "%s%d: %.1f/%.1f", s ? ", " : "",
                                sizes[s], p50, p99);
    }
    const struct shared *sh = cp.b.sh;
    uint64_t opened = 0;
    for (int s = 0; s < SIZES; s++)
        opened += atomic_load(&cp.sized[s].opened);
    res->exact = atomic_load(&cp.other) == 0 && atomic_load(&sh->counts.accepted) == opened &&
                 answered_all(sh);
    res->ops = atomic_load(&cp.queries);
    cl_metric_int(res, "server_queued", (long long)atomic_load(&sh->queued));
    cl_verdict(res, "p50/p99 ms by pool size at %.0f queries/s, backend capacity %lld: %s",
               (double)run->threads * 1e9 / (double)PACE_NS, cl_param(run, CAPACITY), line);
}

void pool_free(void)
{
    atomic_store_explicit(&shown_pool, NULL, memory_order_release);
    if (cp.pool.max > 0)
        pool_destroy(&cp.pool);
    for (int i = 0; i < SIZES; i++)
        if (cp.sized[i].max > 0)
            pool_destroy(&cp.sized[i]);
    free(cp.lat);
    backend_free(&cp.b);
    memset(&cp, 0, sizeof cp);
}

void pool_report(int fd, int threads)
{
    struct pool *p = atomic_load_explicit(&shown_pool, memory_order_acquire);
    if (p == NULL)
        return;
    struct cl_mutex *ms[] = {&p->lock};
    cl_mutex_report(fd, threads, ms, 1);
}
