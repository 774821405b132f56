/* threads: the scheduler's view. lifecycle reads one thread's state from the
 * kernel while it is driven through each state in turn; timeline shows the
 * same CPU tasks taking turns on one CPU, then overlapping on all of them. */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "threads.h"

/* ------------------------------------------------------------ lifecycle */

/* The stages the observer drives the subject through, in order. */
enum stage { ALONE, SHARING, LOCKED_OUT, ASLEEP, LEAVING, OVER };

static _Atomic int stage;
static pthread_mutex_t door = PTHREAD_MUTEX_INITIALIZER; /* the observer holds it in LOCKED_OUT */
static pthread_mutex_t hog_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hog_go = PTHREAD_COND_INITIALIZER;
static _Atomic pid_t kernel_tid[2]; /* the subject's and the hog's, for /proc/self/task */

/* [snippet lifecycle] */
static void *subject_main(void *arg)
{
    (void)arg;
    atomic_store(&kernel_tid[0], gettid());
    while (atomic_load(&stage) <= SHARING) /* running; runnable while the hog has its CPU */
        cl_cpu_relax();
    CL_PT(pthread_mutex_lock(&door)); /* blocked: the observer holds the lock */
    CL_PT(pthread_mutex_unlock(&door));
    while (atomic_load(&stage) == ASLEEP) /* sleeping */
        cl_sleep_ns(5 * MS_NS);
    return NULL; /* exited */
}

static void *hog_main(void *arg) /* pinned to the subject's CPU: they take turns */
{
    (void)arg;
    atomic_store(&kernel_tid[1], gettid());
    CL_PT(pthread_mutex_lock(&hog_mu));
    while (atomic_load(&stage) < SHARING)
        CL_PT(pthread_cond_wait(&hog_go, &hog_mu));
    CL_PT(pthread_mutex_unlock(&hog_mu));
    while (atomic_load(&stage) == SHARING)
        cl_cpu_relax();
    return NULL;
}
/* [end lifecycle] */

#define MAX_SAMPLES  60000 /* per thread: a minute at one a millisecond */
#define STAGE_MIN_NS (20 * MS_NS)
#define SEEN_ENOUGH  5 /* samples of the state a stage is for, before the next */

struct watch {
    struct cl_sched_probe probe;
    struct cl_sched_sample *s;
    size_t n;
    bool gone;
};

static struct watch watch[2];

/* Read thread k once more, and say what the reading shows: the kind of the
 * sample, or runnable when the run-queue time grew over at least half the
 * time since the last reading (cl_sched_label's rule). */
static enum cl_span_kind read_thread(int k)
{
    struct watch *w = &watch[k];
    struct cl_sched_sample now;
    if (w->gone)
        return CL_SPAN_EXITED;
    w->gone = !cl_sched_read(&w->probe, &now);
    enum cl_span_kind kind = cl_sched_kind(&now);
    if (w->n > 0 && now.state == 'R' && w->s[w->n - 1].state == 'R' &&
        2 * (now.queued_ns - w->s[w->n - 1].queued_ns) >= now.t_ns - w->s[w->n - 1].t_ns)
        kind = CL_SPAN_RUNNABLE;
    if (w->n < MAX_SAMPLES)
        w->s[w->n++] = now;
    return kind;
}

static const enum cl_span_kind stage_shows[] = {
    [ALONE] = CL_SPAN_RUNNING,   [SHARING] = CL_SPAN_RUNNABLE, [LOCKED_OUT] = CL_SPAN_BLOCKED,
    [ASLEEP] = CL_SPAN_SLEEPING, [LEAVING] = CL_SPAN_EXITED,
};
static const char *const stage_status[] = {
    [ALONE] = "waits to read T1 running",      [SHARING] = "waits to read T1 runnable",
    [LOCKED_OUT] = "waits to read T1 blocked", [ASLEEP] = "waits to read T1 sleeping",
    [LEAVING] = "waits to read T1 gone",
};

/* Move the subject on to stage `next`. */
static void enter(enum stage next)
{
    if (next == SHARING) {
        CL_PT(pthread_mutex_lock(&hog_mu));
        atomic_store(&stage, SHARING);
        CL_PT(pthread_cond_broadcast(&hog_go));
        CL_PT(pthread_mutex_unlock(&hog_mu));
    } else if (next == LOCKED_OUT) {
        CL_PT(pthread_mutex_lock(&door));
        atomic_store(&stage, LOCKED_OUT);
    } else if (next == ASLEEP) {
        atomic_store(&stage, ASLEEP);
        CL_PT(pthread_mutex_unlock(&door));
    } else {
        atomic_store(&stage, (int)next);
    }
}

/* One CPU of the allowed ones, for the subject and the hog to share. */
static void last_cpu(cpu_set_t *one)
{
    cpu_set_t allowed;
    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    CPU_ZERO(one);
    for (int cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
        if (CPU_ISSET(cpu, &allowed)) {
            CPU_SET(cpu, one);
            return;
        }
}

static pthread_t watched[2];

static void start_watched(struct cl_run *run)
{
    pthread_attr_t attr;
    cpu_set_t one;
    last_cpu(&one);
    CL_PT(pthread_attr_init(&attr));
    CL_PT(pthread_attr_setaffinity_np(&attr, sizeof one, &one));
    void *(*mains[2])(void *) = {subject_main, hog_main};
    for (int k = 0; k < 2; k++) {
        atomic_store(&kernel_tid[k], 0);
        int rc = pthread_create(&watched[k], &attr, mains[k], NULL);
        if (rc != 0) {
            enter(LEAVING); /* the subject, if it exists, ends its spin and leaves */
            refuse_threads(run, rc, watched, k, 2, NULL);
        }
    }
    CL_PT(pthread_attr_destroy(&attr));
    for (int k = 0; k < 2; k++) {
        while (atomic_load(&kernel_tid[k]) == 0)
            cl_sleep_ns(100000); /* 0.1 ms */
        watch[k] = (struct watch){.s = cl_xcalloc(MAX_SAMPLES, sizeof(struct cl_sched_sample))};
        int rc = cl_sched_open(&watch[k].probe, atomic_load(&kernel_tid[k]));
        if (rc != 0)
            cl_die(__FILE__, __LINE__, "cl_sched_open", rc);
    }
}

void run_lifecycle(struct cl_run *run)
{
    atomic_store(&stage, ALONE);
    start_watched(run);
    struct cl_worker *observer = &run->workers[0];
    int seen = 0;
    uint64_t since = cl_now_ns();
    cl_status(observer, stage_status[ALONE]);
    while (atomic_load(&stage) != OVER) {
        cl_sleep_ns(MS_NS);
        enum stage now = (enum stage)atomic_load(&stage);
        read_thread(1);
        if (read_thread(0) != stage_shows[now])
            continue;
        cl_tick(observer);
        if (++seen < SEEN_ENOUGH || cl_now_ns() - since < STAGE_MIN_NS)
            continue;
        enter(now + 1);
        cl_status(observer, now + 1 < OVER ? stage_status[now + 1] : NULL);
        seen = 0;
        since = cl_now_ns();
    }
    for (int k = 0; k < 2; k++)
        CL_PT(pthread_join(watched[k], NULL));
    read_thread(1); /* joined: the hog's last reading says gone */
    uint64_t end = cl_now_ns();
    for (int k = 0; k < 2; k++) {
        cl_sched_close(&watch[k].probe);
        if (run->workers[k].trace == NULL)
            continue;
        enum cl_span_kind *kinds = cl_xcalloc(watch[k].n, sizeof *kinds);
        cl_sched_label(watch[k].s, watch[k].n, kinds);
        cl_sched_add_spans(run->workers[k].trace, watch[k].s, kinds, watch[k].n, end);
        free(kinds);
    }
}

void check_lifecycle(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    const struct watch *w = &watch[0];
    enum cl_span_kind *kinds = cl_xcalloc(w->n, sizeof *kinds);
    cl_sched_label(w->s, w->n, kinds);
    /* the stages' states, in this order, among everything read */
    static const enum cl_span_kind order[] = {CL_SPAN_RUNNING, CL_SPAN_RUNNABLE, CL_SPAN_BLOCKED,
                                              CL_SPAN_SLEEPING, CL_SPAN_EXITED};
    size_t next = 0;
    long long count[CL_SPAN_KINDS] = {0};
    for (size_t i = 0; i < w->n; i++) {
        count[kinds[i]]++;
        if (next < 5 && kinds[i] == order[next])
            next++;
    }
    free(kinds);
    res->exact = next == 5;
    res->ops = w->n;
    cl_metric_int(res, "samples", (long long)w->n);
    for (size_t k = 0; k < 5; k++)
        cl_metric_int(res, cl_span_name(order[k]), count[order[k]]);
    if (res->exact)
        cl_verdict(res,
                   "T1 was running, runnable, blocked, sleeping, then exited: %zu readings of "
                   "/proc/self/task/%d/{stat,wchan,schedstat}",
                   w->n, (int)atomic_load(&kernel_tid[0]));
    else
        cl_verdict(res, "read only the first %zu of the 5 states in order", next);
}

/* ------------------------------------------------------------ timeline */

static int pass; /* 0: on --cpus CPUs; 1: on every allowed CPU */
static cpu_set_t pass_cpus[2];
static uint64_t task_size;
struct task_out {
    uint64_t sum, cpu_ns;
};
static struct task_out *outs[2];
static uint64_t pass_ns[2];

#define CHUNK  4096           /* numbers between two clock readings: a few µs */
#define GAP_NS (50 * 1000ull) /* no reading for this long: the thread was off its CPU */

static void span(struct cl_worker *w, enum cl_span_kind kind, uint64_t from, uint64_t to)
{
    if (w->trace != NULL)
        cl_trace_add(w->trace, kind, from, to);
}

/* [snippet timeline] */
static void cpu_task(struct cl_worker *w)
{
    CL_PT(pthread_setaffinity_np(pthread_self(), sizeof pass_cpus[pass], &pass_cpus[pass]));
    struct timespec cpu0, cpu1;
    CL_SYS(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0));
    uint64_t lo = (uint64_t)w->id * task_size, hi = lo + task_size, sum = 0;
    uint64_t start = cl_now_ns(), last = start, on_cpu_since = start;
    for (uint64_t i = lo; i < hi; i += CHUNK) {
        sum += cl_sum_squares_range(i, hi - i > CHUNK ? i + CHUNK : hi);
        uint64_t now = cl_now_ns();
        if (now - last > GAP_NS) { /* a gap in its own clock: it was ready, but off the CPU */
            span(w, CL_SPAN_RUNNING, on_cpu_since, last);
            span(w, CL_SPAN_RUNNABLE, last, now);
            on_cpu_since = now;
        }
        last = now;
        cl_tick(w);
    }
    span(w, CL_SPAN_RUNNING, on_cpu_since, last); /* lib adds the whole task as run */
    CL_SYS(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1));
    outs[pass][w->id] = (struct task_out){sum, (uint64_t)(cpu1.tv_sec - cpu0.tv_sec) * CL_NS_PER_S +
                                                   (uint64_t)(cpu1.tv_nsec - cpu0.tv_nsec)};
}
/* [end timeline] */

void run_timeline(struct cl_run *run)
{
    cpu_set_t allowed;
    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    CPU_ZERO(&pass_cpus[0]);
    for (int cpu = 0, left = (int)cl_param(run, CPUS); left > 0; cpu++)
        if (CPU_ISSET(cpu, &allowed)) {
            CPU_SET(cpu, &pass_cpus[0]);
            left--;
        }
    pass_cpus[1] = allowed;
    task_size = (uint64_t)cl_param(run, SIZE);
    for (pass = 0; pass < 2; pass++) {
        outs[pass] = cl_xcalloc((size_t)run->threads, sizeof *outs[pass]);
        uint64_t t0 = cl_now_ns();
        cl_run_workers(run, cpu_task);
        pass_ns[pass] = cl_now_ns() - t0;
    }
}

void check_timeline(const struct cl_run *run, struct cl_result *res)
{
    int n = run->threads, right = 0;
    double busy[2] = {0, 0};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < n; i++) {
            uint64_t lo = (uint64_t)i * task_size;
            right +=
                outs[p][i].sum == cl_sum_squares_closed(lo + task_size) - cl_sum_squares_closed(lo);
            busy[p] += (double)outs[p][i].cpu_ns;
        }
    double ms[2] = {(double)pass_ns[0] / 1e6, (double)pass_ns[1] / 1e6};
    double par[2] = {busy[0] / (double)pass_ns[0], busy[1] / (double)pass_ns[1]};
    res->exact = right == 2 * n;
    res->ops = 2 * (uint64_t)n;
    cl_metric_int(res, "tasks_right", right);
    cl_metric_int(res, "cpus_first", CPU_COUNT(&pass_cpus[0]));
    cl_metric_int(res, "cpus_then", CPU_COUNT(&pass_cpus[1]));
    cl_metric_real(res, "first_ms", ms[0]);
    cl_metric_real(res, "then_ms", ms[1]);
    cl_metric_real(res, "busy_first", par[0]);
    cl_metric_real(res, "busy_then", par[1]);
    cl_metric_real(res, "speedup", ms[0] / ms[1]);
    if (!res->exact)
        cl_verdict(res, "%d of %d task sums wrong", 2 * n - right, 2 * n);
    else
        cl_verdict(res,
                   "%d tasks on %d CPU%s: %.0f ms, %.2f CPUs busy; on %d: %.0f ms, %.2f busy "
                   "(%.2fx)",
                   n, CPU_COUNT(&pass_cpus[0]), CPU_COUNT(&pass_cpus[0]) == 1 ? "" : "s", ms[0],
                   par[0], CPU_COUNT(&pass_cpus[1]), ms[1], par[1], ms[0] / ms[1]);
}

void teardown_observe(void)
{
    for (int k = 0; k < 2; k++) {
        free(watch[k].s);
        free(outs[k]);
    }
}
