/* async: asyncio's ideas on lib's event loop (lib/cl_loop, lib/cl_task,
 * lib/cl_async): one thread, many tasks that take turns at their awaits.
 *
 * Workloads are the guides', in units: a unit is the guides' second, 100 ms by
 * default (--unit-ms), so "three tasks of 2, 1 and 3 s" run in 0.3 s. Each
 * variant is a .run on the main thread; the files beside this one hold them
 * (async.h says which is where). This file is the chapter's declaration and the
 * plumbing every variant shares: the loop, and the watchdog's view of it. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async.h"

uint64_t unit_ns;

/* ---- the run's loop ---- */

static struct cl_run *the_run;
static _Atomic(struct cl_loop *) shown; /* the loop the watchdog's report walks */

/* A timer of the program's still due counts as progress this often: a long
 * sleep is not a hang. */
#define HEARTBEAT_NS CL_MS(50)

struct cl_loop *loop_open(struct cl_run *run)
{
    struct cl_loop *loop = cl_loop_new(
        &(struct cl_loop_opts){.steps = &run->workers[0].progress, .heartbeat_ns = HEARTBEAT_NS});
    if (loop == NULL)
        cl_refuse(run, "cl_loop_new", errno, "an epoll instance and an eventfd");
    the_run = run;
    atomic_store_explicit(&shown, loop, memory_order_release);
    cl_status(&run->workers[0], "runs the event loop (an operation: one callback)");
    return loop;
}

void loop_quiet(struct cl_loop *loop)
{
    cl_loop_heartbeat_stop(loop);
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

double units_since(uint64_t t0)
{
    return (double)(cl_now_ns() - t0) / (double)unit_ns;
}

double ms_since(uint64_t t0)
{
    return (double)(cl_now_ns() - t0) / 1e6;
}

/* Field `field` of /proc/self/statm (0: the address space, 1: resident), in bytes. */
static uint64_t statm_bytes(int field)
{
    uint64_t pages = 0;
    FILE *f = fopen("/proc/self/statm", "r"); /* size resident shared ..., in pages */
    if (f != NULL) {
        char line[128];
        if (fgets(line, sizeof line, f) != NULL) {
            char *p = line;
            for (int i = 0; i <= field; i++)
                pages = strtoull(p, &p, 10);
        }
        fclose(f);
    }
    if (pages == 0)
        cl_fatal("async: cannot read /proc/self/statm");
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t rss_bytes(void)
{
    return statm_bytes(1);
}

uint64_t vm_bytes(void)
{
    return statm_bytes(0);
}

/* ---- the chapter ---- */

static const struct cl_variant variants[] = {
    {"gather", CL_CORRECT, "tasks of 2, 1 and 3 units, gathered: 3 units, not 6", .kind = GATHER,
     .run = run_gather, .iters = 3, .data = &gather_f},
    {"many-waiters", CL_CORRECT,
     "--tasks N each sleep one unit on one thread (--on threads: N threads)", .kind = MANY_WAITERS,
     .run = run_many_waiters, .threads = 1, .data = &many_waiters_f},
    {"switch-cost", CL_CORRECT,
     "--iters hand-offs between two tasks, then two threads (condvar, futex, pipe)",
     .kind = SWITCH_COST, .run = run_switch_cost, .threads = 2, .iters = 20000,
     .max_iters = 100000000, .data = &switch_cost_f},
    {"starts-at-await", CL_CORRECT, "a created task first runs at its creator's next await",
     .kind = STARTS_AT_AWAIT, .run = run_starts_at_await, .iters = 2, .data = &starts_at_await_f},
    {"wait-modes", CL_CORRECT, "wait(): first completed, first exception, all completed",
     .kind = WAIT_MODES, .run = run_wait_modes, .iters = 3, .data = &wait_modes_f},
    {"as-completed", CL_CORRECT, "fetches of 3, 1 and 2 units come back in the order 2, 3, 1",
     .kind = AS_COMPLETED, .run = run_as_completed, .iters = 3, .data = &as_completed_f},
    {"gather-errors", CL_CORRECT, "one of three fails: return_exceptions keeps all, or fails first",
     .kind = GATHER_ERRORS, .run = run_gather_errors, .iters = 6, .data = &gather_errors_f},
    {"taskgroup", CL_CORRECT, "a TaskGroup: all succeed; then one fails and the rest are cancelled",
     .kind = TASKGROUP, .run = run_taskgroup, .iters = 6, .data = &taskgroup_f},
    {"wait-for", CL_CORRECT, "wait_for(a 10-unit operation, 2 units): cancelled, cleanup awaited",
     .kind = WAIT_FOR, .run = run_wait_for, .iters = 1, .data = &wait_for_f},
    {"shield", CL_CORRECT, "a shielded 2-unit operation outlives its cancelled caller",
     .kind = SHIELD, .run = run_shield, .iters = 2, .data = &shield_f},
    {"cancel-cleanup", CL_CORRECT,
     "stop(timeout): finish the current items, cancel what overruns, clean up once",
     .kind = SHUTDOWN, .run = run_cancel_cleanup, .iters = 3, .data = &shutdown_f},
    {"stop-no-drain", CL_WRONG, "the guides' stop(timeout): never uses its timeout, cuts items off",
     .kind = SHUTDOWN, .run = run_stop_no_drain, .iters = 3, .data = &shutdown_f},
    {"race-across-await", CL_WRONG,
     "3 tasks x 5 increments, read-await-write on one thread: updates lost", .kind = RACE,
     .run = run_race_across_await, .iters = 15, .data = &race_f},
    {"async-lock", CL_CORRECT, "the same with an asyncio.Lock around read-await-write",
     .kind = RACE, .run = run_async_lock, .iters = 15, .data = &race_f},
    {"lock-over-compute", CL_CORRECT,
     "a cache: one lock over a 0.3-unit compute serialises 4 keys; a lock per key does not",
     .kind = LOCK_OVER_COMPUTE, .run = run_lock_over_compute, .iters = 16,
     .data = &lock_over_compute_f},
    {"semaphore", CL_CORRECT, "Semaphore(2), 6 tasks of 1 unit: 2 at a time, 3 units",
     .kind = SEMAPHORE, .run = run_semaphore, .iters = 6, .data = &semaphore_f},
    {"event", CL_CORRECT, "an Event releases 3 waiters at once; two events make a handshake",
     .kind = EVENT, .run = run_event, .iters = 6, .data = &event_f},
    {"condition-signal", CL_HANGS,
     "a bounded buffer on one Condition with notify(): a lost wake-up, on one thread",
     .kind = CONDITION, .run = run_condition_signal, .iters = 4, .data = &condition_f},
    {"queue-join", CL_HANGS, "Queue.join() after stop items that are never task_done",
     .kind = QUEUE_JOIN, .run = run_queue_join, .iters = 10, .data = &queue_join_f},
    {"queue-join-fixed", CL_CORRECT, "the same, each stop item marked task_done too",
     .kind = QUEUE_JOIN, .run = run_queue_join_fixed, .iters = 10, .data = &queue_join_f},
    {"blocking-call", CL_SLOW,
     "a --block-ms blocking call makes every task that late; the lag monitor sees it",
     .kind = BLOCKING, .run = run_blocking_call, .iters = 30, .data = &blocking_f},
    {"await-timer", CL_WRONG,
     "the guides' blocking detector times a whole await: it flags a plain sleep",
     .kind = AWAIT_TIMER, .run = run_await_timer, .iters = 2, .data = &await_timer_f},
    {"timers", CL_CORRECT, "call_soon, call_later(0.5 units), call_at(+1 unit): order, lateness",
     .kind = TIMERS, .run = run_timers, .iters = 3, .data = &timers_f},
    {"file-io", CL_CORRECT,
     "epoll refuses a regular file (EPERM); a thread reads it for the loop (--file-io uring)",
     .kind = FILE_READ, .run = run_file_io, .iters = 64, .data = &file_io_f},
    {"fan-out", CL_CORRECT,
     "--requests to a responder process, --limit at a time: makespan against the schedule",
     .kind = FAN_OUT, .run = run_fan_out, .data = &fan_out_f},
    {"echo", CL_CORRECT, "the loop serves --clients echo clients over sockets on 127.0.0.1",
     .kind = ECHO, .run = run_echo, .iters = 5, .max_iters = 100000, .data = &echo_f},
};

static const char *const on_names[] = {"loop", "threads", NULL};
static const char *const file_io_names[] = {"threads", "uring", NULL};

static const struct cl_param params[] = {
    [UNIT_MS] = {"unit-ms", "the guides' second, in ms: every workload is in units", .def = 100,
                 .min = 1, .max = 1000},
    [TASKS] = {"tasks", "many-waiters: how many sleep at once", .def = 10000, .min = 1,
               .max = 1000000},
    [ON] = {"on", "many-waiters: tasks on the loop, or a thread each (at most 10,000)",
            .choices = on_names},
    [REQUESTS] = {"requests", "fan-out: requests in all", .def = 6, .min = 1, .max = 1000},
    [LIMIT] = {"limit", "fan-out: requests in flight at most (a semaphore)", .def = 3, .min = 1,
               .max = 100},
    [CLIENTS] = {"clients", "echo: client tasks (--iters: messages each)", .def = 3, .min = 1,
                 .max = 100},
    [BLOCK_MS] = {"block-ms", "blocking-call: the blocking call, in ms", .def = 300, .min = 1,
                  .max = 5000},
    [FILE_IO] = {"file-io", "file-io: how the loop gets the file read (uring: if allowed here)",
                 .choices = file_io_names},
};

/* many-waiters --on threads: pid_max and max_map_count end near 32,000 */
#define MAX_THREADS 10000

static int prepare(struct cl_run *run, char *err, size_t len)
{
    const struct cl_opts *o = run->opts;
    enum kind kind = run->variant->kind;
    const char *name = run->variant->name;
    unit_ns = (uint64_t)cl_param(run, UNIT_MS) * 1000000;
    if (o->iters != 0 && kind != SWITCH_COST && kind != ECHO) {
        snprintf(err, len,
                 "async: --iters: not used by %s (switch-cost: hand-offs; echo: "
                 "messages per client)",
                 name);
        return 1;
    }
    if (o->threads != 0) { /* the variants whose .threads is 0 never get here */
        snprintf(err, len, "async: --threads: not used by %s (--on threads --tasks N: N threads)",
                 name);
        return 1;
    }
    if (kind == MANY_WAITERS) {
        run->iters = (uint64_t)cl_param(run, TASKS);
        if (cl_param(run, ON) == ON_THREADS) {
            if (run->iters > MAX_THREADS) {
                snprintf(err, len,
                         "async: --tasks: at most 10,000 with --on threads (pid_max "
                         "and max_map_count stop threads near 32,000)");
                return 1;
            }
            run->threads = (int)run->iters; /* a record each: lib starts them behind its gate */
            run->iters = 1;
        }
    }
    if (kind == FAN_OUT)
        run->iters = (uint64_t)cl_param(run, REQUESTS);
    if (kind == BLOCKING && o->trace != NULL)
        run->threads = 5; /* the timeline's rows: 3 tickers, the blocking call, the monitor */
    return 0;
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    ((const struct family *)run->variant->data)->judge(run, res);
}

/* While the loop is stuck: what it does, and what each task awaits. */
static void report(int fd, const struct cl_run *run)
{
    (void)run;
    struct cl_loop *loop = atomic_load_explicit(&shown, memory_order_acquire);
    if (loop != NULL)
        cl_task_report(fd, loop, 12);
}

static const struct cl_chapter chapter = {
    .name = "async",
    .summary = "async: asyncio's event loop, tasks and their pitfalls, in C",
    .look_for = "one thread, many tasks: each waits at its awaits while the others run; "
                "an operation is one callback of the loop",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 1,
    .max_threads = MAX_THREADS,
    .prepare = prepare,
    .check = check,
    .report = report,
};

int main(int argc, char **argv)
{
    /* The fan-out's responder: this program, spawned again (net.c). */
    const char *responder = getenv(RESPONDER_ENV);
    if (responder != NULL)
        return responder_main(responder);
    return cl_main(&chapter, argc, argv);
}
