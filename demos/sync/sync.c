/* sync: the primitives Python's threading module gives (Semaphore,
 * BoundedSemaphore, Event, Condition) and the reader-writer locks the guides build
 * by hand, each with the failure it is known for, forced so that it shows in
 * every run. The lessons are in prims.c, rwlock.c and dcl.c; this file declares
 * the variants and holds the hooks that set up, report on and judge each run. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

struct shared S;

static bool two_threads(enum kind k)
{
    return k == LOST_WAKEUP || k == EVENTS || k == SEM_MUTEX || k == TIMED_BUF || k == RW_RECURSE;
}

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    enum kind kind = run->variant->kind;
    const char *v = run->variant->name;
    if (cl_param_given(run, LOCK) && kind != RW_STARVE && kind != RW_RECURSE) {
        snprintf(err, errlen,
                 "sync: --lock: only rwlock-starve and rwlock-recursive-read take a lock kind, "
                 "not %s",
                 v);
        return 1;
    }
    if (!cl_param_given(run, LOCK))
        run->param[LOCK] = kind == RW_RECURSE ? RW_WRITER_PREF : RW_READER_PREF;
    if (two_threads(kind) && run->threads != 2) {
        snprintf(err, errlen, "sync: --threads: %s runs exactly 2 threads (%s)", v,
                 kind == EVENTS || kind == TIMED_BUF ? "a producer and a consumer"
                 : kind == RW_RECURSE                ? "a reader and a writer"
                 : kind == SEM_MUTEX                 ? "a consumer and a producer"
                                                     : "a child and a parent");
        return 1;
    }
    if (kind == RW_STARVE && run->threads < 3) {
        snprintf(err, errlen,
                 "sync: --threads: rwlock-starve needs at least 3 threads, a writer and two "
                 "readers (3 to %d)",
                 cl_max_threads(run->chapter));
        return 1;
    }
    if (kind == COSTS && run->threads > MAX_COST_THREADS) {
        snprintf(err, errlen, "sync: --threads: primitive-costs runs 1 to %d threads",
                 MAX_COST_THREADS);
        return 1;
    }
    if ((kind == GUN || kind == STATE_WAIT) && run->threads < 2) {
        snprintf(err, errlen,
                 "sync: --threads: %s needs at least 2 threads, one to signal and one to wait "
                 "(2 to %d)",
                 v, cl_max_threads(run->chapter));
        return 1;
    }
    return 0;
}

static void setup(const struct cl_run *run)
{
    const struct how *how = how_of(run);
    int n = run->threads;
    memset(&S, 0, sizeof S);
    S.tallies = cl_xcalloc((size_t)n, sizeof *S.tallies);
    switch ((enum kind)run->variant->kind) {
    case POOL:
        CL_SYS(sem_init(&S.pool, 0, POOL_PERMITS));
        CL_PT(cl_bsem_init(&S.bpool, POOL_PERMITS));
        pool_stray_release(run);
        break;
    case LOST_WAKEUP:
        CL_PT(pthread_mutex_init(&S.m, NULL));
        CL_PT(pthread_cond_init(&S.cv, NULL));
        CL_SYS(sem_init(&S.signalled, 0, 0));
        break;
    case EVENTS:
        CL_PT(cl_event_init(&S.ready));
        CL_PT(cl_event_init(&S.acked));
        break;
    case SEM_MUTEX:
        cl_mutex_init(&S.buf_lock, "M", PTHREAD_MUTEX_DEFAULT);
        CL_SYS(sem_init(&S.items, 0, 0));
        CL_SYS(sem_init(&S.consumer_in, 0, 0));
        break;
    case RW_MIX:
        rw_init(&S.lock, how->lock);
        for (int i = 0; i < n; i++)
            S.tallies[i].waits = cl_xcalloc(MAX_WAIT_LOGS, sizeof(uint64_t));
        break;
    case RW_STARVE:
        rw_init(&S.lock, (enum rw_policy)cl_param(run, LOCK));
        S.turn = cl_xcalloc((size_t)n - 1, sizeof *S.turn);
        for (int i = 0; i < n - 1; i++)
            CL_SYS(sem_init(&S.turn[i], 0, i == 0));
        CL_PT(pthread_mutex_init(&S.baton_mu, NULL));
        CL_PT(cl_cond_init_monotonic(&S.baton_cv));
        break;
    case RW_RECURSE:
        rw_init(&S.lock, (enum rw_policy)cl_param(run, LOCK));
        CL_SYS(sem_init(&S.items, 0, 0));
        break;
    case LAZY_INIT:
        break;
    case GUN:
        CL_SYS(sem_init(&S.next_round, 0, 0));
        CL_SYS(sem_init(&S.arrived, 0, 0));
        CL_SYS(sem_init(&S.woke, 0, 0));
        CL_PT(cl_event_init(&S.start));
        CL_PT(pthread_barrier_init(&S.gate, NULL, (unsigned)n));
        S.wake_ns = cl_xcalloc((size_t)n, sizeof *S.wake_ns);
        for (int g = 0; g < 2; g++) {
            S.skew_us[g] = cl_xcalloc(run->iters, sizeof(double));
            S.first_us[g] = cl_xcalloc(run->iters, sizeof(double));
        }
        break;
    case STATE_WAIT:
        CL_PT(pthread_mutex_init(&S.m, NULL));
        CL_SYS(sem_init(&S.arrived, 0, 0));
        CL_PT(pthread_barrier_init(&S.gate, NULL, (unsigned)n));
        for (int c = 0; c <= STATES; c++)
            CL_PT(pthread_cond_init(&S.state_cv[c], NULL));
        for (int p = 0; p < 2; p++)
            S.wakeups[p] = cl_xcalloc((size_t)n, sizeof(uint64_t));
        break;
    case TIMED_BUF:
        CL_PT(pthread_mutex_init(&S.m, NULL));
        CL_PT(cl_cond_init_monotonic(&S.cv));
        break;
    case COSTS:
        CL_PT(pthread_mutex_init(&S.m, NULL));
        CL_SYS(sem_init(&S.items, 0, 1));
        CL_PT(cl_bsem_init(&S.bpool, 1));
        CL_PT(cl_event_init(&S.start));
        cl_event_set(&S.start);
        rw_init(&S.lock, RW_READER_PREF);
        CL_PT(cl_rwlock_init(&S.fair));
        CL_PT(pthread_barrier_init(&S.gate, NULL, (unsigned)n));
        break;
    }
}

static uint64_t sum_of(const struct cl_run *run, size_t offset)
{
    uint64_t s = 0;
    for (int i = 0; i < run->threads; i++)
        s += *(const uint64_t *)((const char *)&S.tallies[i] + offset);
    return s;
}
#define SUM(field) sum_of(run, offsetof(struct tally, field))

static const char *const lock_names[] = {"reader-pref", "writer-np", "writer-pref", "fair", NULL};

static void check_pool(const struct cl_run *run, struct cl_result *res)
{
    const struct how *how = how_of(run);
    int high = atomic_load(&S.high);
    uint64_t refused = SUM(refused);
    res->exact = high <= POOL_PERMITS && (!how->bounded || refused == (how->stray_release ? 1 : 0));
    cl_metric_int(res, "permits", POOL_PERMITS);
    cl_metric_int(res, "high_water", high);
    cl_metric_int(res, "refused", (long long)refused);
    if (how->bounded && how->stray_release)
        cl_verdict(res, "the stray release was refused (EOVERFLOW); at most %d of %d permits held",
                   high, POOL_PERMITS);
    else if (high > POOL_PERMITS)
        cl_verdict(res, "%d holders at once with %d permits: the stray release let one more in",
                   high, POOL_PERMITS);
    else
        cl_verdict(res, "at most %d holders at once with %d permits", high, POOL_PERMITS);
}

static void check_rw_mix(const struct cl_run *run, struct cl_result *res)
{
    uint64_t reads = SUM(reads), writes = SUM(writes), torn = SUM(torn), n = 0;
    uint64_t *all = cl_xcalloc((size_t)SUM(nwaits) + 1, sizeof(uint64_t));
    for (int i = 0; i < run->threads; i++)
        for (uint64_t k = 0; k < S.tallies[i].nwaits; k++)
            all[n++] = S.tallies[i].waits[k];
    cl_sort_ns(all, n);
    double p50 = n > 0 ? (double)all[n / 2] / 1e3 : 0,
           p99 = n > 0 ? (double)all[n * 99 / 100] / 1e3 : 0;
    double max = n > 0 ? (double)all[n - 1] / 1e3 : 0;
    free(all);
    res->exact = torn == 0 && S.a == writes && S.b == writes;
    res->ops = reads + writes;
    cl_metric_int(res, "reads", (long long)reads);
    cl_metric_int(res, "writes", (long long)writes);
    cl_metric_real(res, "reads_per_s", run->wall_s > 0 ? (double)reads / run->wall_s : 0);
    cl_metric_real(res, "write_wait_p50_us", p50);
    cl_metric_real(res, "write_wait_p99_us", p99);
    cl_metric_real(res, "write_wait_max_us", max);
    cl_metric_int(res, "censored", (long long)SUM(censored));
    cl_metric_int(res, "max_readers_inside", atomic_load(&S.max_inside));
    cl_metric_int(res, "torn", (long long)torn);
    cl_verdict(res, "%s reads, %s writes%s; writer waits p50 %.1f us, p99 %.1f us, max %.1f us",
               cl_fmt_count(reads, (char[32]){0}), cl_fmt_count(writes, (char[32]){0}),
               torn ? " (TORN READS)" : "", p50, p99, max);
}

static void check_lazy(const struct cl_run *run, struct cl_result *res)
{
    int inits = atomic_load(&S.inits);
    uint64_t torn = SUM(torn);
    res->exact = inits == 1 && torn == 0;
    cl_metric_int(res, "inits", inits);
    cl_metric_int(res, "torn", (long long)torn);
    cl_metric_real(res, "call_ns", S.tallies[0].call_ns);
    cl_metric_real(res, "mutex_call_ns", S.mutex_call_ns);
    cl_metric_real(res, "floor_ns", S.floor_ns);
    cl_metric_real(res, "call_over_floor", S.floor_ns > 0 ? S.tallies[0].call_ns / S.floor_ns : 0);
    cl_verdict(
        res,
        "initialised %d time(s); a call after it %.2f ns (acquire load %.2f ns, mutex %.2f ns)%s",
        inits, S.tallies[0].call_ns, S.floor_ns, S.mutex_call_ns,
        (run->variant->tags & CL_RACY) ? "; the unlocked read is a data race" : "");
}

static void check_gun(const struct cl_run *run, struct cl_result *res)
{
    static const char *const names[2][2] = {{"skew_event_us", "first_wake_event_us"},
                                            {"skew_barrier_us", "first_wake_barrier_us"}};
    double med[2][2];
    for (int g = 0; g < 2; g++) {
        med[g][0] = cl_median(S.skew_us[g], run->iters);
        med[g][1] = cl_median(S.first_us[g], run->iters);
        cl_metric_real(res, names[g][0], med[g][0]);
        cl_metric_real(res, names[g][1], med[g][1]);
    }
    res->exact = true; /* every worker woke in every round, or the run would hang */
    cl_metric_int(res, "rounds", (long long)run->iters);
    cl_verdict(res,
               "%d workers, median over %llu rounds: last wake - first wake %.1f us with an "
               "event, %.1f us with a barrier",
               run->threads - 1, (unsigned long long)run->iters, med[0][0], med[1][0]);
}

static void check_states(const struct cl_run *run, struct cl_result *res)
{
    uint64_t total[2] = {0, 0}, want_broadcast = 0;
    int waiters = run->threads - 1;
    for (int id = 1; id <= waiters; id++) {
        total[0] += S.wakeups[0][id];
        total[1] += S.wakeups[1][id];
        want_broadcast +=
            (uint64_t)((id - 1) % STATES + 1); /* woken at every change up to its own */
    }
    res->exact = total[0] == want_broadcast && total[1] == (uint64_t)waiters;
    cl_metric_int(res, "waiters", waiters);
    cl_metric_int(res, "wakeups_broadcast", (long long)total[0]);
    cl_metric_int(res, "wakeups_per_state", (long long)total[1]);
    cl_metric_real(res, "wakeups_per_waiter_broadcast", (double)total[0] / waiters);
    cl_metric_real(res, "wakeups_per_waiter_per_state", (double)total[1] / waiters);
    cl_verdict(res,
               "%d waiters over %d states: %.1f wake-ups per waiter with one condition, %.1f with "
               "one per state",
               waiters, STATES, (double)total[0] / waiters, (double)total[1] / waiters);
}

static void check_timed_buffer(const struct cl_run *run, struct cl_result *res)
{
    uint64_t consumed = SUM(consumed), dropped = SUM(skipped);
    res->exact = consumed == run->iters;
    res->ops = run->iters + consumed;
    cl_metric_int(res, "produced", (long long)run->iters);
    cl_metric_int(res, "consumed", (long long)consumed);
    cl_metric_int(res, "dropped", (long long)dropped);
    cl_metric_int(res, "left", S.count);
    cl_verdict(res,
               "%llu of %llu items consumed, %llu dropped by a timed-out put, %d left in the "
               "buffer: the consumer took a %.0f ms pause for the end",
               (unsigned long long)consumed, (unsigned long long)run->iters,
               (unsigned long long)dropped, S.count, (double)TIMED_PAUSE_NS / 1e6);
}

static void check_costs(const struct cl_run *run, struct cl_result *res)
{
    static const char *const names[NPRIMS] = {"mutex_ns",     "sem_ns",       "bsem_ns",
                                              "event_ns",     "rw_read_ns",   "rw_write_ns",
                                              "fair_read_ns", "fair_write_ns"};
    double ns[NPRIMS], v[MAX_COST_THREADS];
    for (int p = 0; p < NPRIMS; p++) {
        for (int i = 0; i < run->threads; i++)
            v[i] = S.tallies[i].prim_ns[p];
        ns[p] = cl_median(v, (size_t)run->threads);
        cl_metric_real(res, names[p], ns[p]);
    }
    res->exact = true;
    res->ops = (uint64_t)run->threads * run->iters * NPRIMS;
    cl_verdict(res,
               "ns per acquire and release, %d thread(s): mutex %.1f, sem_t %.1f, bounded %.1f "
               "(%.2fx sem_t), event %.1f, rwlock %.1f / %.1f, fair %.1f / %.1f",
               run->threads, ns[P_MUTEX], ns[P_SEM], ns[P_BSEM],
               ns[P_SEM] > 0 ? ns[P_BSEM] / ns[P_SEM] : 0, ns[P_EVENT], ns[P_RW_READ],
               ns[P_RW_WRITE], ns[P_FAIR_READ], ns[P_FAIR_WRITE]);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    const struct how *how = how_of(run);
    switch ((enum kind)run->variant->kind) {
    case POOL:
        check_pool(run, res);
        break;
    case LOST_WAKEUP:
        res->exact = true;
        cl_verdict(res, "the child signalled first; the parent read the state and did not wait");
        break;
    case EVENTS: {
        uint64_t consumed = SUM(consumed), skipped = SUM(skipped);
        res->exact = consumed == run->iters && skipped == 0;
        res->ops = run->iters + consumed;
        cl_metric_int(res, "produced", (long long)run->iters);
        cl_metric_int(res, "consumed", (long long)consumed);
        cl_metric_int(res, "skipped", (long long)skipped);
        cl_verdict(res, "%llu of %llu items consumed, %llu skipped%s", (unsigned long long)consumed,
                   (unsigned long long)run->iters, (unsigned long long)skipped,
                   how->fixed ? "" : ": an event is a level, and sets before the wait are one");
        break;
    }
    case SEM_MUTEX:
        res->exact = S.buffered == 0;
        cl_verdict(res,
                   "%llu items through the buffer; the consumer waits for an item before it "
                   "takes the lock",
                   (unsigned long long)run->iters);
        break;
    case RW_MIX:
        check_rw_mix(run, res);
        break;
    case RW_STARVE: {
        uint64_t writes = SUM(writes);
        res->exact = writes == run->iters && S.a == writes;
        res->ops = writes + SUM(reads);
        cl_metric_int(res, "writes", (long long)writes);
        cl_metric_int(res, "reads", (long long)SUM(reads));
        cl_verdict(res, "under %s the writer got in %llu times between hand-over-hand readers",
                   lock_names[cl_param(run, LOCK)], (unsigned long long)writes);
        break;
    }
    case RW_RECURSE:
        res->exact = SUM(reads) == 2;
        cl_verdict(res,
                   "under %s T1's second read lock got in while the writer waited: this kind "
                   "lets new readers pass a waiting writer",
                   lock_names[cl_param(run, LOCK)]);
        break;
    case LAZY_INIT:
        check_lazy(run, res);
        break;
    case GUN:
        check_gun(run, res);
        break;
    case STATE_WAIT:
        check_states(run, res);
        break;
    case TIMED_BUF:
        check_timed_buffer(run, res);
        break;
    case COSTS:
        check_costs(run, res);
        break;
    }
}

/* The watchdog's view of a hang: atomics and semaphore counts only. */
static void report(int fd, const struct cl_run *run)
{
    switch ((enum kind)run->variant->kind) {
    case LOST_WAKEUP: {
        uint64_t sig = atomic_load(&S.signal_ns), wait = atomic_load(&S.wait_ns);
        dprintf(fd,
                "lost wake-up: T1 signalled %.1f us before T2 began to wait; a signal wakes "
                "only a thread already waiting, and no state recorded it: T2 sleeps for ever\n",
                wait > sig ? (double)(wait - sig) / 1e3 : 0);
        break;
    }
    case SEM_MUTEX: {
        struct cl_mutex *m = &S.buf_lock;
        int items = 0;
        sem_getvalue(&S.items, &items);
        cl_mutex_report(fd, run->threads, &m, 1);
        dprintf(fd,
                "sem items: %d; T1 holds M while it waits for an item, and only T2, which "
                "waits for M, can add one\n",
                items);
        break;
    }
    case RW_STARVE: {
        dprintf(fd,
                "%s lock: the readers hold it hand over hand (each enters before the previous "
                "one leaves), so it is never free for the writer\n",
                lock_names[cl_param(run, LOCK)]);
        break;
    }
    case RW_RECURSE:
        dprintf(fd,
                "%s lock: T1 holds a read lock and asks for it again; a new reader waits "
                "behind the waiting writer, and the writer waits for T1's first read: "
                "neither can move\n",
                lock_names[cl_param(run, LOCK)]);
        break;
    default:
        break;
    }
}

static void teardown(const struct cl_run *run)
{
    enum kind kind = run->variant->kind;
    if (kind == POOL) {
        sem_destroy(&S.pool);
        cl_bsem_destroy(&S.bpool);
    } else if (kind == EVENTS) {
        cl_event_destroy(&S.ready);
        cl_event_destroy(&S.acked);
    } else if (kind == RW_MIX || kind == RW_STARVE || kind == RW_RECURSE) {
        rw_destroy(&S.lock);
        for (int i = 0; i < run->threads; i++)
            free(S.tallies[i].waits);
        free(S.turn);
    } else if (kind == GUN) {
        cl_event_destroy(&S.start);
        pthread_barrier_destroy(&S.gate);
        free((void *)S.wake_ns);
        for (int g = 0; g < 2; g++) {
            free(S.skew_us[g]);
            free(S.first_us[g]);
        }
    } else if (kind == COSTS) {
        sem_destroy(&S.items);
        cl_bsem_destroy(&S.bpool);
        cl_event_destroy(&S.start);
        rw_destroy(&S.lock);
        cl_rwlock_destroy(&S.fair);
        pthread_barrier_destroy(&S.gate);
    } else if (kind == STATE_WAIT) {
        pthread_barrier_destroy(&S.gate);
        for (int p = 0; p < 2; p++)
            free(S.wakeups[p]);
    }
    free(S.tallies);
}

static const struct cl_role readers = {"readers", "reads"}, writers = {"writers", "writes"};

static const struct cl_role *role(const struct cl_run *run, int id)
{
    if (run->variant->kind != RW_STARVE)
        return NULL;
    return id == 0 ? &writers : &readers;
}

static const struct how pool = {.permits = POOL_PERMITS},
                        stray = {.permits = POOL_PERMITS, .stray_release = true},
                        bounded = {.permits = POOL_PERMITS, .stray_release = true, .bounded = true},
                        broken = {0}, fixed = {.fixed = true},
                        reader_pref = {.lock = RW_READER_PREF},
                        writer_pref = {.lock = RW_WRITER_PREF}, fair = {.lock = RW_FAIR},
                        mutex = {.lock = RW_MUTEX}, lazy_broken = {.lazy = 0},
                        lazy_atomic = {.lazy = 1}, lazy_once = {.lazy = 2};

static const struct cl_variant variants[] = {
    {"semaphore-pool", CL_CORRECT, "3 permits, 10 workers: never more than 3 hold one",
     .kind = POOL, .worker = pool_worker, .threads = 10, .iters = 10, .max_iters = 10000,
     .data = &pool},
    {"over-release", CL_WRONG, "a stray sem_post: a fourth holder gets in", .kind = POOL,
     .worker = pool_worker, .threads = 10, .iters = 10, .max_iters = 10000, .data = &stray},
    {"bounded", CL_CORRECT, "lib's bounded semaphore refuses the stray release", .kind = POOL,
     .worker = pool_worker, .threads = 10, .iters = 10, .max_iters = 10000, .data = &bounded},
    {"lost-wakeup", CL_HANGS, "join by a condition variable with no state: the signal comes first",
     .kind = LOST_WAKEUP, .worker = join_worker, .threads = 2, .iters = 1, .max_iters = 1,
     .data = &broken},
    {"join-state", CL_CORRECT, "the same join with a done flag checked under the mutex",
     .kind = LOST_WAKEUP, .worker = join_worker, .threads = 2, .iters = 1, .max_iters = 1,
     .data = &fixed},
    {"event-handshake", CL_CORRECT, "an event for each item and one for its acknowledgement",
     .kind = EVENTS, .worker = event_worker, .threads = 2, .iters = 20, .max_iters = 100000,
     .data = &fixed},
    {"event-no-ack", CL_WRONG, "one event, no acknowledgement: sets are lost, items skipped",
     .kind = EVENTS, .worker = event_worker, .threads = 2, .iters = 20, .max_iters = 100000,
     .data = &broken},
    {"semaphore-mutex-deadlock", CL_HANGS,
     "the consumer takes the mutex, then waits on the semaphore", .kind = SEM_MUTEX,
     .worker = sem_mutex_worker, .threads = 2, .iters = 10, .max_iters = 1000000, .data = &broken},
    {"semaphore-mutex-fixed", CL_CORRECT, "the semaphore first, then the mutex", .kind = SEM_MUTEX,
     .worker = sem_mutex_worker, .threads = 2, .iters = 10, .max_iters = 1000000, .data = &fixed},
    {"rwlock-reader-pref", CL_CORRECT, "glibc's rwlock, PREFER_READER_NP: reads and writes mixed",
     .kind = RW_MIX, .worker = rw_mix_worker, .threads = 4, .iters = 100000000,
     .data = &reader_pref},
    {"rwlock-writer-pref", CL_CORRECT, "glibc's rwlock, PREFER_WRITER_NONRECURSIVE_NP",
     .kind = RW_MIX, .worker = rw_mix_worker, .threads = 4, .iters = 100000000,
     .data = &writer_pref},
    {"rwlock-fair", CL_CORRECT, "lib's reader-writer lock: first come, first served",
     .kind = RW_MIX, .worker = rw_mix_worker, .threads = 4, .iters = 100000000, .data = &fair},
    {"rwlock-mutex", CL_CORRECT, "one mutex for reads and writes: the baseline", .kind = RW_MIX,
     .worker = rw_mix_worker, .threads = 4, .iters = 100000000, .data = &mutex},
    {"rwlock-starve", CL_HANGS,
     "readers hold the read lock hand over hand; the writer never gets in", .kind = RW_STARVE,
     .worker = rw_starve_worker, .threads = 3, .iters = 5, .max_iters = 1000, .data = &broken},
    {"rwlock-recursive-read", CL_HANGS,
     "a reader takes its read lock again while a writer waits (writer-preferring)",
     .kind = RW_RECURSE, .worker = rw_recursive_worker, .threads = 2, .iters = 1, .max_iters = 1,
     .timeout_s = 1, .data = &broken},
    {"starting-gun", CL_CORRECT, "workers released together by an event, then by a barrier",
     .kind = GUN, .worker = gun_thread, .threads = 6, .iters = 20, .max_iters = 10000},
    {"state-machine", CL_CORRECT,
     "waiters for each state: one broadcast condition, then one condition per state",
     .kind = STATE_WAIT, .worker = state_thread, .threads = 11, .iters = 1, .max_iters = 1},
    {"cond-timed-signal", CL_WRONG,
     "one condition, timed waits: a timeout reads as the end, and puts drop items",
     .kind = TIMED_BUF, .worker = timed_buffer_thread, .threads = 2, .iters = 10, .max_iters = 100},
    {"primitive-costs", CL_CORRECT,
     "ns per acquire and release of each primitive, every thread on it at once", .kind = COSTS,
     .worker = costs_worker, .threads = 1, .iters = 200000, .max_iters = 100000000},
    {"dcl-broken", CL_RACY, "double-checked initialisation with a plain pointer", .kind = LAZY_INIT,
     .worker = lazy_worker, .threads = 2, .iters = 1000000, .data = &lazy_broken},
    {"dcl-atomic", CL_CORRECT, "the same with an acquire load and a release store",
     .kind = LAZY_INIT, .worker = lazy_worker, .threads = 2, .iters = 1000000,
     .data = &lazy_atomic},
    {"once", CL_CORRECT, "pthread_once", .kind = LAZY_INIT, .worker = lazy_worker, .threads = 2,
     .iters = 1000000, .data = &lazy_once},
};

static const struct cl_param params[] = {
    [HOLD_US] = {"hold-us", "pool variants: how long a worker holds a permit, on average, in us",
                 .def = 1000, .max = 100000},
    [LOCK] = {"lock", "rwlock-starve, rwlock-recursive-read: the lock they share",
              .choices = lock_names,
              .unset = "reader-pref for rwlock-starve, writer-pref for rwlock-recursive-read"},
    [READS] = {"reads", "rwlock mixes: the share of operations that read, in %", .def = 90,
               .max = 100},
    [DURATION] = {"duration", "rwlock mixes: stop after this many ms", .def = 300, .min = 1,
                  .max = 60000},
    [WORK_NS] = {"work-ns", "rwlock mixes: busy work inside each read and write, in ns",
                 .def = 1000, .max = 1000000},
};

static const struct cl_chapter sync_chapter = {
    .name = "sync",
    .summary = "sync: semaphores, events, conditions and reader-writer locks",
    .look_for = "each primitive's known failure, forced to show in every run: too many holders, "
                "a lost wake-up, skipped items, a starved writer, a racy lazy initialisation "
                "(an operation is one acquisition, item, read or write, or call)",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 2,
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
    .teardown = teardown,
    .role = role,
};

int main(int argc, char **argv)
{
    return cl_main(&sync_chapter, argc, argv);
}
