/* threads: the chapter's table of variants, its flags, prepare and check.
 * The variants themselves are in basics.c, stop.c, observe.c and memory.c
 * (threads.h says which is where). */
#include "threads.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Noreturn void refuse_threads(const struct cl_run *run, int err, const pthread_t *tids, int made,
                              int want, void (*release)(void))
{
    if (release != NULL)
        release();
    for (int i = 0; tids != NULL && i < made; i++)
        CL_PT(pthread_join(tids[i], NULL));
    char a[32], b[32], limits[256];
    cl_refuse(run, "pthread_create", err, "created %s of %s threads (limits: %s)",
              cl_fmt_count((uint64_t)made, a), cl_fmt_count((uint64_t)want, b),
              cl_thread_limits(limits, sizeof limits));
}

static const struct cl_variant variants[] = {
    {"create-join", CL_CORRECT,
     "N threads sleep 1, 2 .. N units: elapsed is the longest, not the sum", .kind = CREATE_JOIN,
     .run = run_create_join, .threads = 5, .iters = 1, .max_iters = 1000000},
    {"shared-vs-private", CL_CORRECT, "where a global, a heap block and each thread's local live",
     .kind = SHARED_PRIVATE, .run = run_shared, .threads = 4, .iters = 1},
    {"result", CL_CORRECT, "values and an error come back through pthread_join; none lost",
     .kind = RESULT, .run = run_result, .threads = 3, .iters = 1},
    {"join-timeout", CL_WRONG,
     "the guides' get_result(timeout): nothing, as if the task had finished", .kind = JOIN_TIMEOUT,
     .run = run_join_timeout, .threads = 0, .iters = 1},
    {"timedjoin", CL_CORRECT, "pthread_timedjoin_np says ETIMEDOUT; a later join gets the result",
     .kind = TIMEDJOIN, .run = run_timedjoin, .threads = 0, .iters = 1},
    {"stop-flag", CL_CORRECT,
     "workers poll a stop flag every --poll-ms: a stop waits out the sleep", .kind = STOP_FLAG,
     .run = run_stop, .threads = 4, .iters = 1},
    {"stop-cond", CL_CORRECT, "workers wait on a condition variable: a stop wakes them at once",
     .kind = STOP_COND, .run = run_stop, .threads = 4, .iters = 1},
    {"detached", CL_CORRECT, "a child's main ends while its detached thread writes heartbeats",
     .kind = DETACHED, .run = run_detached, .threads = 0, .iters = 1},
    {"thread-local", CL_CORRECT,
     "_Thread_local values, and a key whose destructor closes each "
     "thread's connection once",
     .kind = THREAD_LOCAL, .run = run_thread_local, .threads = 3, .iters = 1},
    {"lifecycle", CL_CORRECT,
     "one thread running, runnable, blocked, sleeping, exited: read from "
     "/proc",
     .kind = LIFECYCLE, .run = run_lifecycle, .threads = 0, .iters = 1},
    {"timeline", CL_CORRECT, "the same CPU tasks on --cpus CPUs, then on all: turns, then overlap",
     .kind = TIMELINE, .run = run_timeline, .threads = 2, .iters = 1},
    {"memory", CL_CORRECT, "--count blocked threads: resident, kernel and virtual memory of each",
     .kind = MEMORY, .run = run_memory, .threads = 0, .iters = 1},
};

static const char *const main_exit_names[] = {"return", "pthread-exit", NULL};

static const struct cl_param params[] = {
    [SLEEP_MS] = {"sleep-ms",
                  "create-join: thread i sleeps i times this; result: each task's sleep", .def = 20,
                  .max = 2000},
    [TASK_MS] = {"task-ms", "join-timeout, timedjoin: how long the task takes", .def = 200,
                 .min = 1, .max = 10000},
    [WAIT_MS] = {"wait-ms", "join-timeout, timedjoin: how long the caller waits for it", .def = 40,
                 .min = 1, .max = 10000},
    [POLL_MS] = {"poll-ms", "stop-flag, stop-cond: how often a worker looks for a stop", .def = 100,
                 .min = 1, .max = 1000},
    [MAIN_EXIT] = {"main-exit", "detached: how the child's main ends", .def = MAIN_RETURNS,
                   .choices = main_exit_names},
    [BEATS] = {"beats", "detached: heartbeats, one per 10 ms, the detached thread means to write",
               .def = 20, .min = 5, .max = 1000},
    [CPUS] = {"cpus", "timeline: CPUs the first pass runs on (the second uses all)", .def = 1,
              .min = 1, .max = CPU_SETSIZE},
    [SIZE] = {"size", "timeline: numbers each task sums (sum of squares)", .def = 120000000,
              .min = 1000, .max = 4000000000},
    [COUNT] = {"count", "memory: blocked threads", .min = 1, .max = 100000,
               .unset = "1,000 (500 in a sanitizer build)"},
    [STACK_KIB] = {"stack-kib", "memory: each thread's stack, KiB, a multiple of 4", .min = 16,
                   .max = 65536, .unset = "the default, RLIMIT_STACK (ulimit -s)"},
};

static long cpus_allowed(void)
{
    cpu_set_t allowed;
    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    return CPU_COUNT(&allowed);
}

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    enum kind kind = run->variant->kind;
    const long long *p = run->param;
    if (run->opts->iters != 0 && kind != CREATE_JOIN) {
        snprintf(err, errlen, "threads: --iters: only create-join repeats (its rounds)");
        return 1;
    }
    switch (kind) {
    case CREATE_JOIN:
        if ((double)p[SLEEP_MS] * 1e-3 >= run->opts->timeout_s) {
            snprintf(err, errlen, "threads: --sleep-ms %lld: must be shorter than --timeout (%g s)",
                     p[SLEEP_MS], run->opts->timeout_s);
            return 1;
        }
        return 0;
    case JOIN_TIMEOUT:
    case TIMEDJOIN:
        if (p[WAIT_MS] >= p[TASK_MS]) {
            snprintf(err, errlen,
                     "threads: --wait-ms %lld: must be shorter than --task-ms %lld (the lesson is "
                     "a task that outlasts the wait)",
                     p[WAIT_MS], p[TASK_MS]);
            return 1;
        }
        return 0;
    case LIFECYCLE:
        run->threads = 2; /* the records of the thread watched and of the one that shares its CPU */
        return 0;
    case TIMELINE:
        if (p[CPUS] > cpus_allowed()) {
            snprintf(err, errlen,
                     "threads: --cpus: %lld is more than the %ld CPUs this process may use",
                     p[CPUS], cpus_allowed());
            return 1;
        }
        if (run->opts->threads == 0) /* one task per CPU, and at least two to take turns */
            run->threads = (int)(cpus_allowed() < 2 ? 2 : cpus_allowed());
        return 0;
    case MEMORY:
        return prepare_memory(run, err, errlen);
    default:
        return 0;
    }
}

static void setup(const struct cl_run *run)
{
    setup_basics(run);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    switch ((enum kind)run->variant->kind) {
    case CREATE_JOIN:
        check_create_join(run, res);
        break;
    case SHARED_PRIVATE:
        check_shared(run, res);
        break;
    case RESULT:
        check_result(run, res);
        break;
    case JOIN_TIMEOUT:
    case TIMEDJOIN:
        check_joins(run, res);
        break;
    case STOP_FLAG:
    case STOP_COND:
        check_stop(run, res);
        break;
    case DETACHED:
        check_detached(run, res);
        break;
    case THREAD_LOCAL:
        check_thread_local(run, res);
        break;
    case LIFECYCLE:
        check_lifecycle(run, res);
        break;
    case TIMELINE:
        check_timeline(run, res);
        break;
    case MEMORY:
        check_memory(run, res);
        break;
    }
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    teardown_basics();
    teardown_stop();
    teardown_observe();
}

static const struct cl_chapter chapter = {
    .name = "threads",
    .summary = "threads: start, join, results, stopping, states and what a thread costs",
    .look_for = "each variant starts its own threads; watch elapsed against the sum of the "
                "sleeps, what comes back through join, how fast a stop lands, and what the "
                "kernel says each thread is doing",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = NPARAMS,
    .timeout_s = 5,
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    /* the detached variant starts this program again as its child process */
    if (argc > 1 && strcmp(argv[1], HEARTBEAT_CHILD) == 0)
        return heartbeat_child_main(argc, argv);
    return cl_main(&chapter, argc, argv);
}
