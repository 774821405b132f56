/* async: what the chapter's files share. async.c declares the chapter and its
 * plumbing (the run's loop, the watchdog's view of it); each other file holds a
 * family of variants: basics.c (gather, many-waiters, starts-at-await, timers),
 * switch.c (switch-cost), combinators.c (wait, as_completed, gather's errors,
 * task groups, wait_for, shield), shutdown.c (stopping a service), sync.c
 * (races across an await, locks, a semaphore), events.c (events, a condition,
 * a queue and its join), blocking.c
 * (blocking calls, blocking detectors, file I/O) and net.c (fan-out to a
 * responder in a child process, an echo server).
 *
 * Every variant is a .run: it makes the loop with loop_open, runs its tasks on
 * this one thread, records what happened, and closes the loop. Its family's
 * judge, called by check(), turns the record into the result. */
#ifndef ASYNC_H
#define ASYNC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "conclab.h"

/* The chapter's flags. */
enum {
    UNIT_MS,  /* the guides' second, in ms */
    TASKS,    /* many-waiters: how many */
    ON,       /* many-waiters: tasks on the loop, or threads */
    REQUESTS, /* fan-out */
    LIMIT,    /* fan-out: requests in flight at most */
    CLIENTS,  /* echo */
    BLOCK_MS, /* blocking-call: the blocking call */
    FILE_IO,  /* file-io: how the file is read without blocking the loop */
};

enum { ON_LOOP, ON_THREADS };
enum { FILE_POOL, FILE_URING };

/* What each variant is, for prepare's checks of the flags. */
enum kind {
    GATHER,
    MANY_WAITERS,
    SWITCH_COST,
    STARTS_AT_AWAIT,
    WAIT_MODES,
    AS_COMPLETED,
    GATHER_ERRORS,
    TASKGROUP,
    WAIT_FOR,
    SHIELD,
    SHUTDOWN,
    RACE,
    LOCK_OVER_COMPUTE,
    SEMAPHORE,
    EVENT,
    CONDITION,
    QUEUE_JOIN,
    BLOCKING,
    AWAIT_TIMER,
    TIMERS,
    FILE_READ,
    FAN_OUT,
    ECHO,
};

/* A variant's family: how check() judges what its run recorded. */
struct family {
    void (*judge)(const struct cl_run *run, struct cl_result *res);
};

/* ---- the plumbing (async.c) ---- */

extern uint64_t unit_ns; /* one unit: the guides' second, --unit-ms */

/* The run's loop: each callback it runs is one operation of worker 0 (the
 * watchdog's progress), and the chapter's report hook names its tasks. A
 * timer still due counts as progress too (every 50 ms), so a long sleep is
 * not a hang; a loop that waits for nothing at all is one. */
struct cl_loop *loop_open(struct cl_run *run);
/* No heartbeat: for a run that never sleeps, where it would make every
 * iteration of the loop read the clock (switch-cost). */
void loop_quiet(struct cl_loop *loop);
/* asyncio's run_until_complete: run until f is done, waiting for ever when
 * nothing can happen any more (a deadlock hangs until the watchdog ends it). */
void loop_run_until(struct cl_loop *loop, struct cl_future *f);
void loop_close(struct cl_loop *loop);

/* A time in units (the guides' seconds), in ns. */
static inline uint64_t ns_of(double units)
{
    return (uint64_t)(units * (double)unit_ns);
}

/* Time since t0, in units and in ms. */
double units_since(uint64_t t0);
double ms_since(uint64_t t0);
/* Resident memory (VmRSS) and address space (VmSize) of this process, in bytes. */
uint64_t rss_bytes(void);
uint64_t vm_bytes(void);
/* n tasks of one kind, each set up by init(task, i), gathered (sync.c). */
struct cl_future *gather_of(struct cl_loop *loop, cl_task_fn *fn, size_t size, const char *name,
                            int n, void (*init)(struct cl_task *t, int i));

/* ---- the variants, by file ---- */

void run_gather(struct cl_run *run);
void run_many_waiters(struct cl_run *run);
void run_starts_at_await(struct cl_run *run);
void run_timers(struct cl_run *run);
extern const struct family gather_f, many_waiters_f, starts_at_await_f, timers_f;

void run_switch_cost(struct cl_run *run);
extern const struct family switch_cost_f;

void run_wait_modes(struct cl_run *run);
void run_as_completed(struct cl_run *run);
void run_gather_errors(struct cl_run *run);
void run_taskgroup(struct cl_run *run);
void run_wait_for(struct cl_run *run);
void run_shield(struct cl_run *run);
void run_cancel_cleanup(struct cl_run *run);
void run_stop_no_drain(struct cl_run *run);
extern const struct family wait_modes_f, as_completed_f, gather_errors_f, taskgroup_f, wait_for_f,
    shield_f, shutdown_f;

void run_race_across_await(struct cl_run *run);
void run_async_lock(struct cl_run *run);
void run_lock_over_compute(struct cl_run *run);
void run_semaphore(struct cl_run *run);
void run_event(struct cl_run *run);
void run_condition_signal(struct cl_run *run);
void run_queue_join(struct cl_run *run);
void run_queue_join_fixed(struct cl_run *run);
extern const struct family race_f, lock_over_compute_f, semaphore_f, event_f, condition_f,
    queue_join_f;

void run_blocking_call(struct cl_run *run);
void run_await_timer(struct cl_run *run);
void run_file_io(struct cl_run *run);
extern const struct family blocking_f, await_timer_f, file_io_f;

void run_fan_out(struct cl_run *run);
void run_echo(struct cl_run *run);
extern const struct family fan_out_f, echo_f;
/* The responder's process (net.c): the demo spawned with this variable set. */
#define RESPONDER_ENV "CONCLAB_ASYNC_RESPONDER"
int responder_main(const char *spec);

#endif
