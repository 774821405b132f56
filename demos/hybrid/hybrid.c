/* hybrid: an event loop with a thread pool for blocking calls and a process pool
 * for CPU work, and the bridge between the loop and other threads
 * (lib/cl_bridge.h): asyncio's to_thread, run_in_executor,
 * call_soon_threadsafe and run_coroutine_threadsafe, in C.
 *
 * Workloads are in units, the guides' second: 100 ms by default (--unit-ms).
 * Every variant is a .run on the main thread; offload.c and bridge.c hold them
 * (hybrid.h says which is where). This file is the chapter's declaration and
 * the plumbing they share. The process pool's workers are this program, spawned
 * in its worker mode (main, below). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hybrid.h"

uint64_t unit_ns;
uint64_t terms_per_unit;

long ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

double units_since(uint64_t t0)
{
    return (double)(cl_now_ns() - t0) / (double)unit_ns;
}

/* ---- the run's loop ---- */

static struct cl_run *the_run;
static _Atomic(struct cl_loop *) shown; /* the loop the watchdog's report walks */

/* A timer of the program's still due counts as progress this often: a long
 * sleep is not a hang. */
#define HEARTBEAT_NS CL_MS(50)

struct cl_loop *loop_open(struct cl_run *run, struct cl_gil *gil)
{
    struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){
        .steps = &run->workers[0].progress, .heartbeat_ns = HEARTBEAT_NS, .gil = gil, .gil_id = 0});
    if (loop == NULL)
        cl_refuse(run, "cl_loop_new", errno, "an epoll instance and an eventfd");
    the_run = run;
    atomic_store_explicit(&shown, loop, memory_order_release);
    cl_status(&run->workers[0], "runs the event loop (an operation: one callback)");
    return loop;
}

void loop_run_until(struct cl_loop *loop, struct cl_future *f)
{
    cl_loop_hold(loop);
    cl_loop_run_until(loop, f);
    cl_loop_release(loop);
}

void loop_close(struct cl_loop *loop)
{
    cl_status(&the_run->workers[0], NULL);
    atomic_store_explicit(&shown, NULL, memory_order_release);
    cl_loop_free(loop);
}

/* ---- the lag monitor, with every sample kept for exact percentiles ---- */

#define MAX_LAG_SAMPLES 65536

static struct {
    struct cl_lag_monitor mon;
    uint64_t lag_ns[MAX_LAG_SAMPLES];
    size_t n;
    bool on;
} lag;

static void on_sample(struct cl_lag_monitor *m, uint64_t due_ns, uint64_t ran_ns)
{
    (void)m;
    if (lag.n < MAX_LAG_SAMPLES)
        lag.lag_ns[lag.n++] = ran_ns - due_ns;
}

void lag_open(struct cl_loop *loop)
{
    lag.n = 0;
    cl_lag_start(&lag.mon, loop, LAG_EVERY_NS, CL_MS(1000), -1);
    lag.mon.on_sample = on_sample;
    lag.on = true;
}

void lag_close(void)
{
    if (lag.on)
        cl_lag_stop(&lag.mon);
    lag.on = false;
    cl_sort_ns(lag.lag_ns, lag.n);
}

/* Nearest rank: the smallest sample with at least 99% of them at or below it
 * (with fewer than 100 samples, the largest: one stall is never averaged away). */
double lag_p99_ms(void)
{
    if (lag.n == 0)
        return 0;
    size_t rank = (lag.n * 99 + 99) / 100; /* 1-based */
    return (double)lag.lag_ns[rank - 1] / 1e6;
}

double lag_max_ms(void)
{
    return lag.n == 0 ? 0 : (double)lag.lag_ns[lag.n - 1] / 1e6;
}

uint64_t lag_samples(void)
{
    return lag.n;
}

/* ---- CPU work ---- */

void calibrate_cpu(void)
{
    uint64_t terms = 1 << 16, ns = 0;
    volatile uint64_t sink = 0;
    while (ns < CL_MS(10)) { /* long enough to read the clock meaningfully */
        terms *= 2;
        uint64_t t0 = cl_now_ns();
        sink += cl_sum_squares_range(0, terms);
        ns = cl_now_ns() - t0;
    }
    for (int i = 0; i < 2; i++) { /* the best of three: another program may take the CPU */
        uint64_t t0 = cl_now_ns();
        sink += cl_sum_squares_range(0, terms);
        uint64_t again = cl_now_ns() - t0;
        ns = again < ns ? again : ns;
    }
    (void)sink;
    terms_per_unit = (uint64_t)((double)terms * (double)unit_ns / (double)ns);
    if (terms_per_unit == 0)
        terms_per_unit = 1;
}

/* A worker process's task: item i of a batch is the i-th range of arg terms. */
static int pt_sum_range(uint64_t item, uint64_t arg, uint64_t *result)
{
    *result = cl_sum_squares_range(item * arg, (item + 1) * arg);
    return 0;
}

static int pt_echo(uint64_t item, uint64_t arg, uint64_t *result)
{
    *result = item + arg;
    return 0;
}

cl_proc_fn *const proc_tasks[NPROC_TASKS] = {[PT_SUM_RANGE] = pt_sum_range, [PT_ECHO] = pt_echo};

/* ---- the chapter ---- */

static const struct cl_variant variants[] = {
    {"to-thread", CL_CORRECT, "three 1-unit blocking calls on a thread pool: 1 unit, loop free",
     .kind = TO_THREAD, .run = run_to_thread, .data = &to_thread_f},
    {"blocking-in-loop", CL_SLOW, "the same calls made in the loop: 3 units, the loop stalls",
     .kind = TO_THREAD, .run = run_blocking_in_loop, .data = &to_thread_f},
    {"cpu-to-thread", CL_CORRECT,
     "CPU jobs on a thread pool: parallel in C; --gil on: no speedup, the loop lags",
     .kind = CPU_THREADS, .run = run_cpu_to_thread, .data = &cpu_f},
    {"cpu-to-procs", CL_CORRECT,
     "CPU jobs on cores - 1 worker processes, their completion fd in the loop's epoll set",
     .kind = CPU_PROCS, .run = run_cpu_to_procs, .data = &cpu_f},
    {"hybrid-service", CL_CORRECT,
     "requests, blocking calls and a CPU job in one gather: the longest, not the sum",
     .kind = SERVICE, .run = run_service, .data = &service_f},
    {"bridge-lost-wakeup", CL_HANGS,
     "the guides' two-sided queue: check, then arm an event: the put between is lost",
     .kind = LOST_WAKEUP, .run = run_lost_wakeup, .timeout_s = 0.5, .data = &lost_wakeup_f},
    {"bridge-queue", CL_CORRECT, "the same window on lib's queue: check and arm under one lock",
     .kind = LOST_WAKEUP, .run = run_bridge_queue, .data = &lost_wakeup_f},
    {"cross-thread-unsafe", CL_RACY, "a thread writes the loop's state without the bridge",
     .kind = CROSS_THREAD, .run = run_cross_thread, .data = &cross_thread_f},
    {"callback-on-error", CL_WRONG,
     "the guides' bridge calls back from inside the task: a raise skips it",
     .kind = CALLBACK_ON_ERROR, .run = run_callback_on_error, .data = &callback_f},
    {"callback-on-error-fixed", CL_CORRECT, "a done callback on the future: every outcome calls",
     .kind = CALLBACK_ON_ERROR, .run = run_callback_on_error_fixed, .data = &callback_f},
    {"loop-thread", CL_CORRECT,
     "the loop in a thread of its own, called from plain code: the round trip", .kind = LOOP_THREAD,
     .run = run_loop_thread, .data = &loop_thread_f},
    {"message-bus", CL_CORRECT,
     "threads ask async backends, replies matched by id; a late reply is dropped",
     .kind = MESSAGE_BUS, .run = run_message_bus, .data = &bus_f},
    {"pool-in-callback", CL_SLOW,
     "a process pool made and shut down in a loop callback: the loop stalls",
     .kind = POOL_IN_CALLBACK, .run = run_pool_in_callback, .data = &pool_in_callback_f},
};

static const char *const gil_names[] = {"off", "on", NULL};
static const char *const on_names[] = {"pool", "loop", NULL};

static const struct cl_param params[] = {
    [UNIT_MS] = {"unit-ms", "the guides' second, in ms: every workload is in units", .def = 100,
                 .min = 10, .max = 1000},
    [CALLS] = {"calls", "to-thread, blocking-in-loop: blocking calls of one unit", .def = 3,
               .min = 1, .max = 16},
    [JOBS] = {"jobs", "cpu-to-thread, cpu-to-procs: CPU jobs of one unit", .min = 1, .max = 64,
              .unset = "2 per CPU"},
    [WORKERS] = {"workers", "threads or processes in the pool", .min = 1, .max = 64,
                 .unset = "per variant (cpu-to-procs: CPUs - 1)"},
    [GIL] = {"gil", "cpu-to-thread: the loop and the workers share a simulated GIL",
             .choices = gil_names},
    [ITEMS] = {"items", "items, tasks, round trips or requests", .min = 1, .max = 1000000,
               .unset = "per variant"},
    [ON] = {"on", "cpu-to-thread: the jobs on the pool, or in the loop (the lag it costs)",
            .choices = on_names},
    [POSTERS] = {"posters", "loop-thread: threads posting 1,000 calls each, for the coalescing",
                 .def = 10, .min = 1, .max = 100},
};

static int prepare(struct cl_run *run, char *err, size_t len)
{
    const struct cl_opts *o = run->opts;
    enum kind k = run->variant->kind;
    long long *p = run->param;
    unit_ns = (uint64_t)p[UNIT_MS] * 1000000;
    if (o->iters != 0) {
        snprintf(err, len, "hybrid: --iters: not used here (sizes: --calls, --jobs, --items)");
        return 1;
    }
    if (o->threads != 0) {
        snprintf(err, len, "hybrid: --threads: not used here (a pool's size: --workers)");
        return 1;
    }
    /* the size flags each family reads; a flag it would ignore is refused */
    static const struct {
        int param;
        unsigned kinds; /* bit per enum kind */
        const char *who;
    } uses[] = {
        {CALLS, 1u << TO_THREAD, "to-thread and blocking-in-loop"},
        {JOBS, 1u << CPU_THREADS | 1u << CPU_PROCS, "cpu-to-thread and cpu-to-procs"},
        {WORKERS, 1u << TO_THREAD | 1u << CPU_THREADS | 1u << CPU_PROCS | 1u << POOL_IN_CALLBACK,
         "the variants with a pool of their own size"},
        {ITEMS,
         1u << LOST_WAKEUP | 1u << CROSS_THREAD | 1u << CALLBACK_ON_ERROR | 1u << LOOP_THREAD |
             1u << MESSAGE_BUS | 1u << POOL_IN_CALLBACK,
         "the bridge's variants and pool-in-callback"},
    };
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
        if (cl_param_given(run, (size_t)uses[i].param) && !(uses[i].kinds & 1u << k)) {
            snprintf(err, len, "hybrid: --%s: not used by %s (only %s)",
                     run->chapter->params[uses[i].param].name, run->variant->name, uses[i].who);
            return 1;
        }
    if (cl_param_given(run, GIL) && k != CPU_THREADS) {
        snprintf(err, len, "hybrid: --gil: only cpu-to-thread takes it, not %s",
                 run->variant->name);
        return 1;
    }
    if (cl_param_given(run, ON) && k != CPU_THREADS && k != CPU_PROCS) {
        snprintf(err, len, "hybrid: --on: only cpu-to-thread and cpu-to-procs take it, not %s",
                 run->variant->name);
        return 1;
    }
    if (k == CPU_PROCS && p[ON] == ON_LOOP) {
        snprintf(err, len,
                 "hybrid: --on loop: cpu-to-thread runs its jobs in the loop; "
                 "cpu-to-procs takes --on pool only");
        return 1;
    }
    if (cl_param_given(run, POSTERS) && k != LOOP_THREAD) {
        snprintf(err, len, "hybrid: --posters: only loop-thread takes it, not %s",
                 run->variant->name);
        return 1;
    }
    if (p[ON] == ON_LOOP && p[GIL] == GIL_ON) {
        snprintf(err, len, "hybrid: --gil on with --on loop: no thread to share it with");
        return 1;
    }
    if (!cl_param_given(run, JOBS))
        p[JOBS] = 2 * ncpus() < 64 ? 2 * ncpus() : 64;
    if (!cl_param_given(run, WORKERS))
        p[WORKERS] = k == TO_THREAD          ? p[CALLS]
                     : k == CPU_THREADS      ? ncpus()
                     : k == CPU_PROCS        ? (ncpus() > 1 ? ncpus() - 1 : 1)
                     : k == POOL_IN_CALLBACK ? ncpus()
                                             : 2;
    static const long long items[] = {
        [LOST_WAKEUP] = 5,    [CROSS_THREAD] = 1000, [CALLBACK_ON_ERROR] = 6,
        [LOOP_THREAD] = 2000, [MESSAGE_BUS] = 12,    [POOL_IN_CALLBACK] = 4,
    };
    if (!cl_param_given(run, ITEMS))
        p[ITEMS] = items[k] != 0 ? items[k] : 1;
    if (k == MESSAGE_BUS && p[ITEMS] > 1000) {
        snprintf(err, len, "hybrid: --items %lld: message-bus takes 1 to 1000 requests", p[ITEMS]);
        return 1;
    }
    if (k == CROSS_THREAD && p[ITEMS] > 10000) {
        snprintf(err, len, "hybrid: --items %lld: cross-thread-unsafe takes 1 to 10000", p[ITEMS]);
        return 1;
    }
    if ((k == POOL_IN_CALLBACK || k == CALLBACK_ON_ERROR || k == LOST_WAKEUP) && p[ITEMS] > 100) {
        snprintf(err, len, "hybrid: --items %lld: %s takes 1 to 100", p[ITEMS], run->variant->name);
        return 1;
    }
    run->iters = k == TO_THREAD                       ? (uint64_t)p[CALLS]
                 : k == CPU_THREADS || k == CPU_PROCS ? (uint64_t)p[JOBS]
                                                      : (uint64_t)p[ITEMS];
    if (k == SERVICE && o->trace != NULL)
        run->threads = 3; /* the timeline's lanes: loop, pool threads, pool processes */
    return 0;
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    ((const struct family *)run->variant->data)->judge(run, res);
}

/* While the loop is stuck: what it does, what each task awaits, and the queue. */
static void report(int fd, const struct cl_run *run)
{
    struct cl_loop *loop = atomic_load_explicit(&shown, memory_order_acquire);
    if (loop != NULL)
        cl_task_report(fd, loop, 12);
    if (run->variant->kind == LOST_WAKEUP)
        report_lost_wakeup(fd);
}

static const struct cl_chapter chapter = {
    .name = "hybrid",
    .summary = "hybrid: an event loop with thread and process pools, and the bridge between them",
    .look_for = "the loop's lag while work runs elsewhere, and every hand-off between the loop and "
                "a thread arriving once; an operation is one callback of the loop",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 2,
    .prepare = prepare,
    .check = check,
    .report = report,
};

int main(int argc, char **argv)
{
    if (cl_procpool_is_worker(argc, argv)) /* spawned by a process pool: serve it */
        return cl_procpool_serve(argc, argv, proc_tasks, NPROC_TASKS);
    return cl_main(&chapter, argc, argv);
}
