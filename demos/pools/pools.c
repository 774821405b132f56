/* pools: thread pools with futures and process pools, and what each choice costs.
 *
 * Every variant is a .run: the main thread is the caller that submits tasks and
 * collects their results (its worker record counts them for the watchdog), and
 * the pools are lib's (lib/cl_pool.h, lib/cl_procpool.h) or, for the hand-made
 * variants, the guides' own. --workers sizes the pool; --threads and --iters
 * are not used. The worker processes of the process pool are this program,
 * started in its worker mode (main, below). */
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "pools.h"

struct cl_pool *_Atomic current_pool;

long ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

void progress(struct cl_run *run)
{
    cl_tick(&run->workers[0]);
}

void waiting(struct cl_run *run, const char *what)
{
    cl_status(&run->workers[0], what);
}

static const struct cl_variant variants[] = {
    {"as-completed", CL_CORRECT, "tasks 50 ms apart, collected as they finish (as_completed)",
     .kind = AS_COMPLETED, .run = run_as_completed},
    {"map-ordered", CL_CORRECT, "the same tasks through map: input order, the first waits longest",
     .kind = MAP_ORDERED, .run = run_map_ordered},
    {"exceptions", CL_CORRECT, "a third of the tasks fail: every result and every error arrives",
     .kind = EXCEPTIONS, .run = run_exceptions},
    {"timeout-not-cancel", CL_WRONG,
     "result(timeout) then cancel(): healthy queued tasks reported as timed out",
     .kind = TIMEOUT_NOT_CANCEL, .run = run_timeout_not_cancel},
    {"cancel-pending", CL_CORRECT,
     "one deadline, then cancel what has not started; the running ones are said so",
     .kind = CANCEL_PENDING, .run = run_cancel_pending},
    {"cancel-token", CL_CORRECT, "the same, and the running tasks stop at a shared token",
     .kind = CANCEL_TOKEN, .run = run_cancel_token},
    {"total-timeout", CL_WRONG,
     "as_completed's total deadline escapes the per-future handler; results lost",
     .kind = TOTAL_TIMEOUT, .run = run_total_timeout},
    {"chunking", CL_CORRECT,
     "10,000 small items in chunks of 1 to 1,000 on both pools, results by index", .kind = CHUNKING,
     .run = run_chunking},
    {"pool-per-request", CL_SLOW, "a new pool for every request, shut down after it",
     .kind = PER_REQUEST, .run = run_per_request},
    {"pool-reused", CL_CORRECT, "the same requests on one pool", .kind = REUSED, .run = run_reused},
    {"no-shutdown", CL_SLOW, "pools created and never shut down: their threads stay",
     .kind = NO_SHUTDOWN, .run = run_no_shutdown},
    {"hand-made", CL_HANGS, "the guides' queue pool: a failing task skips task_done, join hangs",
     .kind = HAND_MADE, .run = run_hand_made},
    {"hand-made-fixed", CL_CORRECT, "task_done on every path, and close instead of polling",
     .kind = HAND_MADE_FIXED, .run = run_hand_made_fixed},
    {"process-map", CL_CORRECT, "a process pool of spawned workers, awaited on its completion fd",
     .kind = PROCESS_MAP, .run = run_process_map},
    {"process-cancel", CL_CORRECT, "a hung task on the process pool: killed, reaped, replaced",
     .kind = PROCESS_CANCEL, .run = run_process_cancel},
    {"futures-leak", CL_WRONG, "the guides' task manager: its done callback never removes",
     .kind = FUTURES_LEAK, .run = run_futures_leak},
    {"nested", CL_SLOW, "W worker processes x T threads each on fewer cores, against T = 1",
     .kind = NESTED, .run = run_nested},
};

static const char *const pool_names[] = {"thread", "process", "both", NULL};

static const struct cl_param params[] = {
    [WORKERS] = {"workers", "threads or processes in the pool", .min = 1, .max = 1024,
                 .unset = "per variant"},
    [TASKS] = {"tasks", "tasks, requests or items", .min = 1, .max = 1000000,
               .unset = "per variant"},
    [STEP_MS] = {"step-ms", "the gap between the tasks' durations, in ms", .def = 50, .min = 1,
                 .max = 1000},
    [HANG_MS] = {"hang-ms", "how long the long tasks of the timeout variants run, in ms",
                 .def = 1000, .min = 1, .max = 1500},
    [WAIT_MS] = {"wait-ms", "how long the caller waits before it gives up, in ms", .min = 1,
                 .max = 1500, .unset = "50 per future (timeout-not-cancel), else 100 or 120"},
    [CHUNK] = {"chunk", "chunking: items per chunk", .min = 1, .max = 1000000,
               .unset = "the sweep: 1, 10, 100, 1000 and Pool.map's default"},
    [POOL] = {"pool", "chunking: which pool", .def = POOL_BOTH, .choices = pool_names},
    [TERMS] = {"terms", "chunking: an item's work, terms of a sum of squares", .def = 1000,
               .min = 1, .max = 1000000},
    [POOLS] = {"pools", "no-shutdown: pools created", .def = 20, .min = 1, .max = 1000},
    [INNER] = {"inner-threads", "nested: threads in each worker process", .def = 8, .min = 1,
               .max = 256},
};

/* The defaults that depend on the variant. */
static void fill_defaults(struct cl_run *run)
{
    long long *p = run->param;
    enum kind k = run->variant->kind;
    static const long long tasks[] = {
        [AS_COMPLETED] = 5,    [MAP_ORDERED] = 5,   [EXCEPTIONS] = 10,    [TIMEOUT_NOT_CANCEL] = 10,
        [CANCEL_PENDING] = 10, [CANCEL_TOKEN] = 10, [TOTAL_TIMEOUT] = 16, [CHUNKING] = 10000,
        [PER_REQUEST] = 1000,  [REUSED] = 1000,     [NO_SHUTDOWN] = 1,    [HAND_MADE] = 5,
        [HAND_MADE_FIXED] = 5, [PROCESS_MAP] = 40,  [PROCESS_CANCEL] = 8, [FUTURES_LEAK] = 10000,
        [NESTED] = 1,
    };
    if (!cl_param_given(run, TASKS))
        p[TASKS] = tasks[k];
    if (!cl_param_given(run, WORKERS)) {
        switch (k) {
        case AS_COMPLETED:
        case MAP_ORDERED: /* one per task: the orders come from the durations alone */
            p[WORKERS] = p[TASKS];
            break;
        case EXCEPTIONS:
            p[WORKERS] = 3;
            break;
        case PER_REQUEST:
        case REUSED: /* ThreadPoolExecutor's default */
            p[WORKERS] = ncpus() + 4 < 32 ? ncpus() + 4 : 32;
            break;
        case NO_SHUTDOWN:
        case FUTURES_LEAK:
        case PROCESS_MAP:
            p[WORKERS] = 4;
            break;
        case CHUNKING:
        case NESTED:
            p[WORKERS] = ncpus();
            break;
        default:
            p[WORKERS] = 2;
        }
    }
    if (!cl_param_given(run, WAIT_MS))
        p[WAIT_MS] = k == TIMEOUT_NOT_CANCEL ? 50 : k == TOTAL_TIMEOUT ? 120 : 100;
}

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct cl_opts *o = run->opts;
    if (o->iters != 0) {
        snprintf(err, errlen, "pools: --iters: not used here (allowed: --tasks and --workers)");
        return 1;
    }
    fill_defaults(run);
    const long long *p = run->param;
    enum kind k = run->variant->kind;
    bool procs = k == CHUNKING || k == PROCESS_MAP || k == PROCESS_CANCEL || k == NESTED;
    if (procs && p[WORKERS] > CL_PROCPOOL_MAX_WORKERS) {
        snprintf(err, errlen, "pools: --workers %lld: a process pool takes 1 to %d", p[WORKERS],
                 CL_PROCPOOL_MAX_WORKERS);
        return 1;
    }
    if (k <= TOTAL_TIMEOUT && p[TASKS] > FUTURE_TASKS_MAX) {
        snprintf(err, errlen, "pools: --tasks %lld: %s takes 1 to %d", p[TASKS], run->variant->name,
                 FUTURE_TASKS_MAX);
        return 1;
    }
    if ((k == AS_COMPLETED || k == MAP_ORDERED) && p[TASKS] * p[STEP_MS] > 1500) {
        snprintf(err, errlen,
                 "pools: --tasks %lld x --step-ms %lld: the longest task would run %lld ms "
                 "(allowed: up to 1500)",
                 p[TASKS], p[STEP_MS], p[TASKS] * p[STEP_MS]);
        return 1;
    }
    if ((k == HAND_MADE || k == HAND_MADE_FIXED) && p[WORKERS] > HAND_MADE_MAX_WORKERS) {
        snprintf(err, errlen, "pools: --workers %lld: the hand-made pool takes 1 to %d", p[WORKERS],
                 HAND_MADE_MAX_WORKERS);
        return 1;
    }
    if (k == NO_SHUTDOWN && p[POOLS] * p[WORKERS] > 4096) {
        snprintf(err, errlen, "pools: --pools %lld x --workers %lld: more than 4096 threads",
                 p[POOLS], p[WORKERS]);
        return 1;
    }
    if (k == NESTED && p[WORKERS] * p[INNER] > 4096) {
        snprintf(err, errlen,
                 "pools: --workers %lld x --inner-threads %lld: more than 4096 threads", p[WORKERS],
                 p[INNER]);
        return 1;
    }
    /* the operations the watchdog's report counts: results collected */
    run->iters = k == NESTED        ? 2 * (uint64_t)p[WORKERS]
                 : k == NO_SHUTDOWN ? (uint64_t)(p[POOLS] * p[WORKERS])
                                    : (uint64_t)p[TASKS];
    return 0;
}

static void setup(const struct cl_run *run)
{
    (void)run;
    atomic_store(&current_pool, NULL);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    switch ((enum kind)run->variant->kind) {
    case CHUNKING:
    case PROCESS_MAP:
    case PROCESS_CANCEL:
    case NESTED:
        check_procs(run, res);
        break;
    case PER_REQUEST:
    case REUSED:
    case NO_SHUTDOWN:
    case FUTURES_LEAK:
    case HAND_MADE:
    case HAND_MADE_FIXED:
        check_lifetime(run, res);
        break;
    default:
        check_futures(run, res);
    }
}

/* The watchdog's view: the pool's counters, read without a lock. */
static void report(int fd, const struct cl_run *run)
{
    if (run->variant->kind == HAND_MADE || run->variant->kind == HAND_MADE_FIXED) {
        report_hand_made(fd);
        return;
    }
    struct cl_pool *pool = atomic_load(&current_pool);
    if (pool == NULL)
        return;
    struct cl_pool_stats s = cl_pool_stats(pool);
    dprintf(fd, "  pool: %d threads (%d idle), %zu queued, %llu ok, %llu failed, %llu cancelled\n",
            s.threads, s.idle, s.queued, (unsigned long long)s.ok, (unsigned long long)s.failed,
            (unsigned long long)s.cancelled);
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    teardown_lifetime();
}

static const struct cl_chapter pools = {
    .name = "pools",
    .summary = "thread pools with futures, process pools, and what each choice costs",
    .look_for = "the order results arrive in, what a timeout and a cancel really do, and what "
                "a pool costs to make, to feed in chunks, and to forget",
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
};

int main(int argc, char **argv)
{
    if (cl_procpool_is_worker(argc, argv)) /* spawned by a process pool: serve it */
        return cl_procpool_serve(argc, argv, proc_tasks, NPROC_TASKS);
    return cl_main(&pools, argc, argv);
}
