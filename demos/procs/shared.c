/* procs: memory shared between processes, in an object made with shm_open and
 * opened by name in each worker (this program, spawned), as Python's
 * multiprocessing.Value, Array and shared_memory are.
 *
 * shared-racy, shared-mutex, shared-atomic: --procs workers add 1 to one counter
 * --iters times each. A counter in shared memory loses updates between processes
 * exactly as between threads; ThreadSanitizer, which watches one process, sees
 * none of it. The mutex is a pthread mutex made PTHREAD_PROCESS_SHARED.
 *
 * chunk-lock, chunk-nolock: --procs workers transform disjoint chunks of one
 * array, --iters elements each, with or without one lock held around a whole
 * chunk, as one guide does. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include "procs.h"

/* ------------------------------------------------------------ the counter */

/* [snippet counters] */
struct counters {
    _Alignas(64) volatile uint64_t racy;
    struct gate gate;                  /* used only before the counting starts */
    _Alignas(64) pthread_mutex_t lock; /* PTHREAD_PROCESS_SHARED */
    uint64_t locked;                   /* only under lock, on the lock's cache line */
    _Alignas(64) _Atomic uint64_t atomic;
    struct {
        _Alignas(64) _Atomic uint64_t done; /* progress, for the parent's watchdog */
        uint64_t end_ns;
    } per[MAX_PROCS];
};
/* [end counters] */

static struct counters *ctr;
static const char *ctr_name;
static pid_t pids[MAX_PROCS];
static int status[MAX_PROCS];
static bool start_failed;

static inline void tick(_Atomic uint64_t *done)
{
    atomic_store_explicit(done, atomic_load_explicit(done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* [snippet increments] */
static void increment(struct counters *c, int kind, _Atomic uint64_t *done, uint64_t iters)
{
    for (uint64_t i = 0; i < iters; i++) {
        switch (kind) {
        case K_SHARED_RACY:
            c->racy++; /* load, add, store: the other process stores in between */
            break;
        case K_SHARED_MUTEX:
            CL_PT(pthread_mutex_lock(&c->lock));
            c->locked++;
            CL_PT(pthread_mutex_unlock(&c->lock));
            break;
        default: /* K_SHARED_ATOMIC: one locked instruction, across processes too */
            atomic_fetch_add_explicit(&c->atomic, 1, memory_order_relaxed);
        }
        tick(done);
    }
}
/* [end increments] */

/* The counter worker: NAME ID NPROCS ITERS KIND. */
int counter_main(int argc, char **argv)
{
    worker_start(argc, argv, 6);
    struct counters *c = shm_attach(argv[1], sizeof *c);
    int id = (int)worker_arg(argv, 2), n = (int)worker_arg(argv, 3);
    if (c == NULL || id < 0 || id >= MAX_PROCS)
        return 1;
    pin_process(id, n); /* each on a CPU of its own when they fit: they overlap */
    gate_wait(&c->gate);
    increment(c, (int)worker_arg(argv, 5), &c->per[id].done, (uint64_t)worker_arg(argv, 4));
    c->per[id].end_ns = cl_now_ns();
    return 0;
}

static uint64_t counter_progress(int i)
{
    return atomic_load_explicit(&ctr->per[i].done, memory_order_relaxed);
}

/* Spawn n workers of a role with the arguments NAME ID N ARG ARG2 each, open the
 * gate when all have arrived, and wait for them, mirroring their progress. */
static void run_workers(struct cl_run *run, const char *role, const char *name, struct gate *g,
                        long long arg, long long arg2, uint64_t (*progress)(int i))
{
    int n = run->threads;
    char id[16], nprocs[16], a[24], b[24];
    snprintf(nprocs, sizeof nprocs, "%d", n);
    snprintf(a, sizeof a, "%lld", arg);
    snprintf(b, sizeof b, "%lld", arg2);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%d", i);
        pids[i] =
            spawn_worker(run, role, (const char *const[]){name, id, nprocs, a, b, NULL}, NULL);
    }
    if (!gate_open_when_ready(run, g, n, pids)) {
        start_failed = true;
        cl_child_kill_all();
        return;
    }
    wait_mirrored(run, pids, n, progress, status);
}

static int workers_failed(const struct cl_run *run)
{
    int bad = 0;
    for (int i = 0; i < run->threads; i++)
        bad += start_failed || !WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0;
    return bad;
}

void shared_run(struct cl_run *run)
{
    run_workers(run, "counter", ctr_name, &ctr->gate, (long long)run->iters, run->variant->kind,
                counter_progress);
}

static void shared_setup(const struct cl_run *run)
{
    ctr = shm_make(run, "counter", sizeof *ctr, &ctr_name);
    pthread_mutexattr_t attr;
    CL_PT(pthread_mutexattr_init(&attr));
    CL_PT(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED));
    CL_PT(pthread_mutex_init(&ctr->lock, &attr));
    CL_PT(pthread_mutexattr_destroy(&attr));
}

static void shared_check(const struct cl_run *run, struct cl_result *res)
{
    int kind = run->variant->kind;
    uint64_t final = kind == K_SHARED_RACY    ? ctr->racy
                     : kind == K_SHARED_MUTEX ? ctr->locked
                                              : atomic_load(&ctr->atomic);
    uint64_t expected = (uint64_t)run->threads * run->iters, last = 0;
    for (int i = 0; i < run->threads; i++)
        last = ctr->per[i].end_ns > last ? ctr->per[i].end_ns : last;
    uint64_t lost = expected > final ? expected - final : 0;
    int bad = workers_failed(run);
    res->exact = final == expected && bad == 0;
    cl_metric_int(res, "final", (long long) final);
    cl_metric_int(res, "expected", (long long)expected);
    cl_metric_int(res, "lost", (long long)lost);
    cl_metric_real(res, "lost_pct", 100.0 * (double)lost / (double)expected);
    if (bad == 0)
        cl_metric_real(res, "ns_per_inc", (double)(last - ctr->gate.opened_ns) / (double)expected);
    char a[32], b[32];
    if (bad > 0)
        cl_verdict(res, "%d of %d workers did not finish", bad, run->threads);
    else if (res->exact)
        cl_verdict(res, "exact: %s of %s increments counted, by %d processes",
                   cl_fmt_count(final, a), cl_fmt_count(expected, b), run->threads);
    else
        cl_verdict(res, "lost %s of %s increments (%.1f%%) between %d processes",
                   cl_fmt_count(lost, a), cl_fmt_count(expected, b),
                   100.0 * (double)lost / (double)expected, run->threads);
}

static void shared_teardown(const struct cl_run *run)
{
    (void)run;
    pthread_mutex_destroy(&ctr->lock);
    shm_remove(ctr, sizeof *ctr, ctr_name);
}

const struct family shared_family = {
    .setup = shared_setup, .check = shared_check, .teardown = shared_teardown};

/* ------------------------------------------------------------ disjoint chunks */

struct chunks {
    struct gate gate;
    pthread_mutex_t lock; /* PTHREAD_PROCESS_SHARED: one for the whole array */
    struct {
        _Alignas(64) _Atomic uint64_t done;
        uint64_t start_ns, end_ns, wait_ns, cpu_ns;
    } per[MAX_PROCS];
    uint64_t data[]; /* procs x chunk elements; element i starts as i */
};

/* Each element goes through ROUNDS steps of an LCG: about 0.1 µs of CPU with no
 * memory traffic, and a closed form for the check. */
#define ROUNDS 64
#define LCG_A  6364136223846793005ull
#define LCG_C  1442695040888963407ull

static struct chunks *chk;
static const char *chk_name;
static size_t chk_bytes;

static size_t chunks_size(int procs, uint64_t chunk)
{
    return sizeof(struct chunks) + (size_t)procs * chunk * sizeof(uint64_t);
}

/* [snippet chunk] */
static void transform(uint64_t *x, uint64_t n, _Atomic uint64_t *done)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = x[i];
        for (int r = 0; r < ROUNDS; r++)
            v = v * LCG_A + LCG_C;
        x[i] = v;
        if ((i & 1023) == 1023)
            atomic_store_explicit(done, i + 1, memory_order_relaxed);
    }
    atomic_store_explicit(done, n, memory_order_relaxed);
}

/* CPU time of this (single-threaded) worker. */
static uint64_t cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * CL_NS_PER_S + (uint64_t)t.tv_nsec;
}

/* The chunk worker: NAME ID NPROCS CHUNK LOCKED. */
int chunk_main(int argc, char **argv)
{
    worker_start(argc, argv, 6);
    int id = (int)worker_arg(argv, 2), n = (int)worker_arg(argv, 3);
    uint64_t chunk = (uint64_t)worker_arg(argv, 4);
    bool locked = worker_arg(argv, 5) != 0;
    struct chunks *c = shm_attach(argv[1], chunks_size(n, chunk));
    if (c == NULL || id < 0 || id >= n)
        return 1;
    gate_wait(&c->gate);
    uint64_t t0 = cl_now_ns();
    if (locked) /* the guide's lock: held around a chunk no other worker touches */
        CL_PT(pthread_mutex_lock(&c->lock));
    c->per[id].start_ns = cl_now_ns();
    c->per[id].wait_ns = c->per[id].start_ns - t0;
    uint64_t cpu0 = cpu_ns();
    transform(&c->data[(uint64_t)id * chunk], chunk, &c->per[id].done);
    c->per[id].cpu_ns = cpu_ns() - cpu0;
    c->per[id].end_ns = cl_now_ns();
    if (locked)
        CL_PT(pthread_mutex_unlock(&c->lock));
    return 0;
}
/* [end chunk] */

static uint64_t chunk_progress(int i)
{
    return atomic_load_explicit(&chk->per[i].done, memory_order_relaxed);
}

void chunk_run(struct cl_run *run)
{
    run_workers(run, "chunk", chk_name, &chk->gate, (long long)run->iters,
                run->variant->kind == K_CHUNK_LOCK, chunk_progress);
}

static void chunk_setup(const struct cl_run *run)
{
    chk_bytes = chunks_size(run->threads, run->iters);
    chk = shm_make(run, "chunks", chk_bytes, &chk_name);
    pthread_mutexattr_t attr;
    CL_PT(pthread_mutexattr_init(&attr));
    CL_PT(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED));
    CL_PT(pthread_mutex_init(&chk->lock, &attr));
    CL_PT(pthread_mutexattr_destroy(&attr));
    uint64_t n = (uint64_t)run->threads * run->iters;
    for (uint64_t i = 0; i < n; i++)
        chk->data[i] = i;
}

static void chunk_check(const struct cl_run *run, struct cl_result *res)
{
    uint64_t a = 1, c = 0; /* ROUNDS steps of the LCG, composed: x -> a x + c */
    for (int r = 0; r < ROUNDS; r++) {
        a *= LCG_A;
        c = c * LCG_A + LCG_C;
    }
    uint64_t n = (uint64_t)run->threads * run->iters, wrong = 0;
    for (uint64_t i = 0; i < n; i++)
        wrong += chk->data[i] != a * i + c;
    uint64_t first = chk->gate.opened_ns, last = first, busy = 0, waited = 0;
    for (int i = 0; i < run->threads; i++) {
        last = chk->per[i].end_ns > last ? chk->per[i].end_ns : last;
        busy += chk->per[i].cpu_ns;
        waited += chk->per[i].wait_ns;
    }
    int bad = workers_failed(run);
    res->exact = wrong == 0 && bad == 0;
    cl_metric_int(res, "wrong", (long long)wrong);
    if (bad > 0) {
        cl_verdict(res, "%d of %d workers did not finish", bad, run->threads);
        return;
    }
    double wall_ms = (double)(last - first) / 1e6, par = (double)busy / (double)(last - first);
    cl_metric_real(res, "wall_ms", wall_ms);
    cl_metric_real(res, "cpu_ms", (double)busy / 1e6);
    cl_metric_real(res, "lock_wait_ms", (double)waited / 1e6);
    cl_metric_real(res, "parallelism", par);
    char e[32];
    if (res->exact)
        cl_verdict(res,
                   "all %s elements right; %d workers kept %.2f CPUs busy for %.1f ms (%.1f ms "
                   "waiting for the lock in all)",
                   cl_fmt_count(n, e), run->threads, par, wall_ms, (double)waited / 1e6);
    else
        cl_verdict(res, "%s elements wrong", cl_fmt_count(wrong, e));
}

static void chunk_teardown(const struct cl_run *run)
{
    (void)run;
    pthread_mutex_destroy(&chk->lock);
    shm_remove(chk, chk_bytes, chk_name);
}

const struct family chunk_family = {
    .setup = chunk_setup, .check = chunk_check, .teardown = chunk_teardown};
