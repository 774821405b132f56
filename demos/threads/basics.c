/* threads: starting and joining (create-join), what threads share
 * (shared-vs-private), what comes back through a join (result, join-timeout,
 * timedjoin), and what each thread has of its own (thread-local). */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "threads.h"

static pthread_t *tids; /* the threads a variant starts, one per worker record */

void setup_basics(const struct cl_run *run)
{
    tids = cl_xcalloc((size_t)run->threads, sizeof *tids);
}

/* ------------------------------------------------------------ create-join */

/* [snippet create-join] */
struct sleeper {
    struct cl_worker *w;
    uint64_t sleep_ns; /* thread i sleeps i + 1 units */
};

static void *sleeper_main(void *arg)
{
    struct sleeper *s = arg;
    /* waiting, like I/O: no CPU needed meanwhile (a sleep of 0 would still
     * wait for the kernel's timer, tens of µs) */
    if (s->sleep_ns > 0)
        cl_sleep_ns(s->sleep_ns);
    cl_tick(s->w);
    return NULL;
}

static void create_and_join(struct cl_run *run, struct sleeper *sleepers)
{
    for (int i = 0; i < run->threads; i++) {
        int rc = pthread_create(&tids[i], NULL, sleeper_main, &sleepers[i]);
        if (rc != 0) /* pthread_create returns its error; it does not set errno */
            refuse_threads(run, rc, tids, i, run->threads, NULL);
    }
    for (int i = 0; i < run->threads; i++) /* all of them sleep meanwhile */
        CL_PT(pthread_join(tids[i], NULL));
}
/* [end create-join] */

static uint64_t round_ns; /* create-join: the first round's elapsed time */

void run_create_join(struct cl_run *run)
{
    uint64_t unit = (uint64_t)cl_param(run, SLEEP_MS) * MS_NS;
    struct sleeper *sleepers = cl_xcalloc((size_t)run->threads, sizeof *sleepers);
    for (int i = 0; i < run->threads; i++)
        sleepers[i] = (struct sleeper){&run->workers[i], (uint64_t)(i + 1) * unit};
    for (uint64_t r = 0; r < run->iters; r++) {
        uint64_t t0 = cl_now_ns();
        create_and_join(run, sleepers);
        if (r == 0)
            round_ns = cl_now_ns() - t0;
    }
    free(sleepers);
}

void check_create_join(const struct cl_run *run, struct cl_result *res)
{
    long long n = run->threads, unit_ms = cl_param(run, SLEEP_MS);
    long long longest = n * unit_ms, sum = n * (n + 1) / 2 * unit_ms;
    for (int i = 0; i < run->threads; i++)
        res->exact &= atomic_load(&run->workers[i].progress) == run->iters;
    res->ops = (uint64_t)n * run->iters;
    double elapsed_ms = (double)round_ns / 1e6, per_us = run->wall_s * 1e6 / (double)res->ops;
    cl_metric_real(res, "elapsed_ms", elapsed_ms);
    cl_metric_int(res, "longest_ms", longest);
    cl_metric_int(res, "sum_ms", sum);
    if (unit_ms == 0) /* with sleeps, the time is theirs */
        cl_metric_real(res, "create_join_us", per_us);
    char a[32], b[32];
    if (!res->exact)
        cl_verdict(res, "a thread did not run its sleep");
    else if (unit_ms == 0)
        cl_verdict(res, "%s threads created and joined, %s at a time: %.1f µs each",
                   cl_fmt_count(res->ops, a), cl_fmt_count((uint64_t)n, b), per_us);
    else
        cl_verdict(res, "elapsed %.0f ms: the longest sleep (%lld ms), not the sum (%lld ms)",
                   elapsed_ms, longest, sum);
}

/* ------------------------------------------------------------ shared-vs-private */

/* [snippet shared] */
static int global_value = 42; /* one for the whole process */

struct where {
    int id;
    int *heap;                        /* one block, allocated by main, shared by all */
    uintptr_t global, heap_at, local; /* the addresses this thread sees */
    uintptr_t stack_lo, stack_hi;     /* its own stack, from pthread_getattr_np */
};

static void *where_main(void *arg)
{
    struct where *me = arg;
    int local = me->id; /* on this thread's own stack */
    pthread_attr_t attr;
    void *lo;
    size_t size;
    CL_PT(pthread_getattr_np(pthread_self(), &attr));
    CL_PT(pthread_attr_getstack(&attr, &lo, &size));
    CL_PT(pthread_attr_destroy(&attr));
    me->global = (uintptr_t)&global_value;
    me->heap_at = (uintptr_t)me->heap;
    me->local = (uintptr_t)&local;
    me->stack_lo = (uintptr_t)lo;
    me->stack_hi = (uintptr_t)lo + size;
    me->heap[me->id] = local * global_value; /* main reads it after the join */
    return NULL;
}
/* [end shared] */

static struct where *wheres;
static int *shared_block;

void run_shared(struct cl_run *run)
{
    int n = run->threads;
    wheres = cl_xcalloc((size_t)n, sizeof *wheres);
    shared_block = cl_xcalloc((size_t)n, sizeof *shared_block);
    for (int i = 0; i < n; i++) {
        wheres[i] = (struct where){.id = i, .heap = shared_block};
        int rc = pthread_create(&tids[i], NULL, where_main, &wheres[i]);
        if (rc != 0)
            refuse_threads(run, rc, tids, i, n, NULL);
    }
    for (int i = 0; i < n; i++) {
        CL_PT(pthread_join(tids[i], NULL));
        cl_tick(&run->workers[i]);
    }
}

void check_shared(const struct cl_run *run, struct cl_result *res)
{
    int n = run->threads, globals = 1, heaps = 1, in_own = 0, overlaps = 0, written = 0;
    uintptr_t gap = UINTPTR_MAX;
    for (int i = 0; i < n; i++) {
        const struct where *a = &wheres[i];
        globals += a->global != wheres[0].global;
        heaps += a->heap_at != wheres[0].heap_at;
        in_own += a->local >= a->stack_lo && a->local < a->stack_hi;
        written += shared_block[i] == i * global_value;
        for (int j = i + 1; j < n; j++) {
            const struct where *b = &wheres[j];
            overlaps += a->stack_lo < b->stack_hi && b->stack_lo < a->stack_hi;
            uintptr_t d = a->local > b->local ? a->local - b->local : b->local - a->local;
            gap = d < gap ? d : gap;
        }
    }
    uintptr_t stack = wheres[0].stack_hi - wheres[0].stack_lo;
    res->exact = globals == 1 && heaps == 1 && in_own == n && overlaps == 0 && written == n;
    res->ops = (uint64_t)n;
    cl_metric_int(res, "globals", globals);
    cl_metric_int(res, "heap_blocks", heaps);
    cl_metric_int(res, "stacks", n - overlaps);
    cl_metric_int(res, "locals_in_own", in_own);
    cl_metric_int(res, "stack_kib", (long long)(stack / 1024));
    cl_metric_int(res, "min_gap_kib", n > 1 ? (long long)(gap / 1024) : 0);
    if (res->exact) {
        char a[32];
        cl_verdict(res,
                   "one global at %#lx, one heap block at %#lx; %d stacks of %s KiB, each "
                   "thread's local in its own",
                   (unsigned long)wheres[0].global, (unsigned long)wheres[0].heap_at, n,
                   cl_fmt_count(stack / 1024, a));
    } else {
        cl_verdict(res,
                   "not as expected: %d globals, %d heap blocks, %d of %d locals in their "
                   "own stack, %d overlapping stacks",
                   globals, heaps, in_own, n, overlaps);
    }
}

/* ------------------------------------------------------------ result */

/* [snippet result] */
struct task {
    long input;
    uint64_t sleep_ns;
};

struct outcome { /* what a task hands back: malloc'd, so that it outlives the thread */
    int err;     /* 0, or what went wrong: C has no exceptions to raise */
    long value;
    char why[64];
};

static void *task_main(void *arg)
{
    const struct task *t = arg;
    struct outcome *o = malloc(sizeof *o);
    if (o == NULL)
        return NULL;
    cl_sleep_ns(t->sleep_ns);
    if (t->input < 0) {
        *o = (struct outcome){.err = EDOM};
        snprintf(o->why, sizeof o->why, "no square root of %ld", t->input);
    } else {
        long r = 0;
        while ((r + 1) * (r + 1) <= t->input)
            r++;
        *o = (struct outcome){.value = r};
    }
    return o; /* pthread_join hands this pointer to whoever joins */
}

static void join_all(int n, struct outcome **out)
{
    for (int i = 0; i < n; i++) {
        void *ret;
        CL_PT(pthread_join(tids[i], &ret));
        out[i] = ret; /* NULL: the task could not even report */
    }
}
/* [end result] */

static struct task *tasks;
static struct outcome **outcomes;
static int noutcomes;

/* Task i takes the square root of (i + 3)^2; the middle one is given -1. */
static int failing_task(int n)
{
    return n / 2;
}

void run_result(struct cl_run *run)
{
    int n = run->threads;
    tasks = cl_xcalloc((size_t)n, sizeof *tasks);
    outcomes = cl_xcalloc((size_t)n, sizeof(struct outcome *));
    noutcomes = n;
    for (int i = 0; i < n; i++) {
        long root = i + 3;
        tasks[i] = (struct task){i == failing_task(n) ? -1 : root * root,
                                 (uint64_t)cl_param(run, SLEEP_MS) * MS_NS};
        int rc = pthread_create(&tids[i], NULL, task_main, &tasks[i]);
        if (rc != 0)
            refuse_threads(run, rc, tids, i, n, NULL);
    }
    join_all(n, outcomes);
    for (int i = 0; i < n; i++)
        cl_tick(&run->workers[i]);
}

void check_result(const struct cl_run *run, struct cl_result *res)
{
    int n = run->threads, values = 0, errors = 0, lost = 0, fail = failing_task(n);
    for (int i = 0; i < n; i++) {
        const struct outcome *o = outcomes[i];
        if (o == NULL)
            lost++;
        else if (i == fail)
            errors += o->err == EDOM;
        else
            values += o->err == 0 && o->value == i + 3;
    }
    res->exact = values == n - 1 && errors == 1 && lost == 0;
    res->ops = (uint64_t)n;
    cl_metric_int(res, "tasks", n);
    cl_metric_int(res, "values", values);
    cl_metric_int(res, "errors", errors);
    cl_metric_int(res, "lost", lost);
    if (res->exact)
        cl_verdict(res,
                   "%d values and 1 error (task %d: %s: %s) came back through pthread_join; "
                   "none lost",
                   values, fail + 1, strerrorname_np(outcomes[fail]->err), outcomes[fail]->why);
    else
        cl_verdict(res, "%d of %d values, %d of 1 error, %d lost", values, n - 1, errors, lost);
}

/* ------------------------------------------------------------ join-timeout, timedjoin */

/* A task that takes --task-ms and, whatever the machine's load, is still
 * running when the caller's wait of --wait-ms ends: it finishes only after
 * the caller has given up (the gate), so each run shows the same outcome. */
struct slow_task {
    pthread_t tid;
    uint64_t task_ns;
    sem_t caller_gave_up;
    _Atomic(struct outcome *) result; /* set when the task has finished */
    uint64_t start_ns, done_ns;
};

static void *slow_main(void *arg)
{
    struct slow_task *t = arg;
    struct outcome *o = malloc(sizeof *o);
    if (o == NULL)
        return NULL;
    cl_sleep_ns(t->task_ns);
    while (sem_wait(&t->caller_gave_up) != 0)
        if (errno != EINTR)
            cl_die(__FILE__, __LINE__, "sem_wait", errno);
    *o = (struct outcome){.value = 42};
    t->done_ns = cl_now_ns();
    atomic_store(&t->result, o);
    return o;
}

/* An absolute time `ns` from now on CLOCK_REALTIME, the clock of
 * pthread_timedjoin_np's deadline. */
static struct timespec realtime_in(uint64_t ns)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_REALTIME, &ts));
    uint64_t total = (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(total / CL_NS_PER_S);
    ts.tv_nsec = (long)(total % CL_NS_PER_S);
    return ts;
}

/* [snippet get-result] */
/* The guides' get_result(timeout): join with a timeout, then return whatever
 * the task has stored. While the task still runs that is NULL, and the
 * caller cannot tell "not finished" from "finished with nothing". (*joined
 * is for the clean-up after the lesson; the guides' caller never sees it.) */
static struct outcome *get_result(struct slow_task *t, uint64_t timeout_ns, bool *joined)
{
    struct timespec until = realtime_in(timeout_ns);
    *joined = pthread_timedjoin_np(t->tid, NULL, &until) == 0; /* ETIMEDOUT is dropped here */
    return atomic_load(&t->result);
}
/* [end get-result] */

static struct slow_task slow;
static struct {
    struct outcome *first; /* what the caller got when its wait ended */
    int first_rc;          /* timedjoin: pthread_timedjoin_np's answer */
    bool running_then;     /* the task had not finished when the wait ended */
    struct outcome *final; /* what the join got in the end */
    uint64_t waited_ns, finished_ns;
} joins;

static void start_slow_task(struct cl_run *run)
{
    slow = (struct slow_task){.task_ns = (uint64_t)cl_param(run, TASK_MS) * MS_NS};
    CL_SYS(sem_init(&slow.caller_gave_up, 0, 0));
    slow.start_ns = cl_now_ns();
    int rc = pthread_create(&slow.tid, NULL, slow_main, &slow);
    if (rc != 0)
        refuse_threads(run, rc, NULL, 0, 1, NULL);
}

/* The task may finish now; join it for good (unless the first wait did) and
 * keep what it returned. */
static void finish_slow_task(struct cl_run *run, bool joined)
{
    CL_SYS(sem_post(&slow.caller_gave_up));
    if (!joined) {
        void *ret;
        CL_PT(pthread_join(slow.tid, &ret));
        joins.final = ret;
    } else {
        joins.final = atomic_load(&slow.result);
    }
    joins.finished_ns = slow.done_ns - slow.start_ns;
    CL_SYS(sem_destroy(&slow.caller_gave_up));
    cl_tick(&run->workers[0]);
}

void run_join_timeout(struct cl_run *run)
{
    uint64_t wait_ns = (uint64_t)cl_param(run, WAIT_MS) * MS_NS;
    bool joined;
    start_slow_task(run);
    joins.first = get_result(&slow, wait_ns, &joined);
    joins.waited_ns = cl_now_ns() - slow.start_ns;
    joins.running_then = atomic_load(&slow.result) == NULL;
    finish_slow_task(run, joined);
}

void run_timedjoin(struct cl_run *run)
{
    uint64_t wait_ns = (uint64_t)cl_param(run, WAIT_MS) * MS_NS;
    start_slow_task(run);
    /* [snippet timedjoin] */
    void *ret = NULL;
    struct timespec until = realtime_in(wait_ns);
    int rc = pthread_timedjoin_np(slow.tid, &ret, &until);
    if (rc != 0 && rc != ETIMEDOUT)
        cl_die(__FILE__, __LINE__, "pthread_timedjoin_np", rc);
    /* rc == ETIMEDOUT: not finished, and the caller knows it; it may do
     * something else, and join again later for the real result */
    /* [end timedjoin] */
    joins.first_rc = rc;
    joins.first = ret;
    joins.waited_ns = cl_now_ns() - slow.start_ns;
    joins.running_then = rc == ETIMEDOUT;
    finish_slow_task(run, rc == 0);
}

void check_joins(const struct cl_run *run, struct cl_result *res)
{
    bool got_it = joins.final != NULL && joins.final->value == 42;
    double waited = (double)joins.waited_ns / 1e6, finished = (double)joins.finished_ns / 1e6;
    res->ops = 1;
    cl_metric_real(res, "waited_ms", waited);
    cl_metric_real(res, "finished_ms", finished);
    cl_metric_int(res, "empty_results", joins.first == NULL);
    if (run->variant->kind == JOIN_TIMEOUT) {
        /* the caller took the empty answer as the task's result */
        bool dropped = joins.first == NULL && joins.running_then && got_it;
        res->exact = !dropped;
        cl_metric_int(res, "dropped_results", dropped);
        if (dropped)
            cl_verdict(res,
                       "wrong: get_result returned nothing after %.0f ms while the task still "
                       "ran; its result (%ld) came at %.0f ms, and nobody asked again",
                       waited, joins.final->value, finished);
        else
            cl_verdict(res, "the task had finished (%.0f ms) before the wait ended", finished);
        return;
    }
    res->exact = joins.first_rc == ETIMEDOUT && got_it;
    if (res->exact)
        cl_verdict(res,
                   "pthread_timedjoin_np said ETIMEDOUT at %.0f ms; the later join got %ld "
                   "(finished at %.0f ms)",
                   waited, joins.final->value, finished);
    else
        cl_verdict(res, "first join: %s; final result %s", strerrorname_np(joins.first_rc),
                   got_it ? "right" : "missing");
}

/* ------------------------------------------------------------ thread-local */

/* [snippet thread-local] */
static _Thread_local int my_value; /* one per thread */
static _Atomic int shared_value;   /* one for every thread, for contrast */
static pthread_key_t conn_key;     /* each thread's "connection", and its destructor */

struct conn {
    int fd, owner;
};

static _Atomic int *closes; /* closes[i]: how often thread i's connection was closed */

static void close_conn(void *p) /* runs as each thread ends, with its own value */
{
    struct conn *c = p;
    CL_SYS(close(c->fd));
    atomic_fetch_add(&closes[c->owner], 1);
    free(c);
}

struct local_task {
    int id;
    pthread_barrier_t *all_set;
    int own_seen, shared_seen;
};

static void *local_main(void *arg)
{
    struct local_task *t = arg;
    my_value = t->id * 10;
    atomic_store(&shared_value, t->id * 10);
    struct conn *c = malloc(sizeof *c);
    if (c == NULL)
        return NULL;
    *c = (struct conn){open("/dev/null", O_WRONLY | O_CLOEXEC), t->id - 1};
    CL_SYS(c->fd);
    CL_PT(pthread_setspecific(conn_key, c));
    cl_pthread_barrier_wait(t->all_set); /* every thread has written both by now */
    t->own_seen = my_value;
    t->shared_seen = atomic_load(&shared_value);
    return t; /* then close_conn(c), before pthread_join returns */
}
/* [end thread-local] */

static struct local_task *locals;

void run_thread_local(struct cl_run *run)
{
    int n = run->threads;
    pthread_barrier_t all_set;
    CL_PT(pthread_barrier_init(&all_set, NULL, (unsigned)n));
    CL_PT(pthread_key_create(&conn_key, close_conn));
    locals = cl_xcalloc((size_t)n, sizeof *locals);
    closes = cl_xcalloc((size_t)n, sizeof *closes);
    for (int i = 0; i < n; i++) {
        locals[i] = (struct local_task){.id = i + 1, .all_set = &all_set, .own_seen = -1};
        int rc = pthread_create(&tids[i], NULL, local_main, &locals[i]);
        if (rc != 0) /* the others wait at the barrier for this one: they cannot be joined */
            refuse_threads(run, rc, NULL, i, n, NULL);
    }
    for (int i = 0; i < n; i++) {
        CL_PT(pthread_join(tids[i], NULL));
        cl_tick(&run->workers[i]);
    }
    CL_PT(pthread_key_delete(conn_key));
    CL_PT(pthread_barrier_destroy(&all_set));
}

void check_thread_local(const struct cl_run *run, struct cl_result *res)
{
    int n = run->threads, own = 0, overwritten = 0, closed_once = 0;
    for (int i = 0; i < n; i++) {
        own += locals[i].own_seen == locals[i].id * 10;
        overwritten += locals[i].shared_seen != locals[i].id * 10;
        closed_once += atomic_load(&closes[i]) == 1;
    }
    /* the shared value holds the last writer's: every other thread lost its own */
    res->exact = own == n && overwritten == n - 1 && closed_once == n;
    res->ops = (uint64_t)n;
    cl_metric_int(res, "own_values", own);
    cl_metric_int(res, "overwritten", overwritten);
    cl_metric_int(res, "closed_once", closed_once);
    if (res->exact)
        cl_verdict(res,
                   "each of %d threads read back its own _Thread_local value; %d found the "
                   "shared one overwritten; each connection closed once, by its thread's "
                   "destructor",
                   n, overwritten);
    else
        cl_verdict(res, "%d of %d own values, %d overwritten, %d closed exactly once", own, n,
                   overwritten, closed_once);
}

void teardown_basics(void)
{
    free(tids);
    free(wheres);
    free(shared_block);
    free(tasks);
    for (int i = 0; i < noutcomes; i++)
        free(outcomes[i]);
    free(outcomes);
    free(joins.final);
    free(locals);
    free(closes);
}
