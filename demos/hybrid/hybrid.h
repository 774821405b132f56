/* hybrid: what the chapter's files share. hybrid.c declares the chapter and the
 * plumbing (the run's loop, the lag monitor's figures, the CPU work); offload.c
 * holds the variants that hand work from the loop to a pool (blocking calls,
 * CPU work on threads or processes, a service mixing the three, a pool made in a
 * callback); bridge.c the ones where other threads talk to the loop (the lost
 * wake-up, loop state touched from a thread, a skipped callback, the loop in a
 * thread of its own, a message bus).
 *
 * Every variant is a .run. The loop's callbacks are worker 0's operations (the
 * watchdog's progress); lib/cl_bridge.h is the bridge between the loop and the
 * pools' threads. */
#ifndef HYBRID_H
#define HYBRID_H

#include <stdbool.h>
#include <stdint.h>

#include "conclab.h"

/* The chapter's flags. */
enum {
    UNIT_MS, /* the guides' second, in ms */
    CALLS,   /* to-thread, blocking-in-loop: blocking calls of one unit */
    JOBS,    /* cpu-to-thread, cpu-to-procs: CPU jobs of one unit each */
    WORKERS, /* pool size */
    GIL,     /* cpu-to-thread: the loop and the workers share a simulated GIL */
    ITEMS,   /* bridge queues, callbacks, round trips, requests */
    ON,      /* cpu-to-thread: the jobs on the pool, or in the loop itself */
    POSTERS, /* loop-thread: threads posting calls at once, for the coalescing */
    NPARAMS
};
enum { GIL_OFF, GIL_ON };
enum { ON_POOL, ON_LOOP };

enum kind {
    TO_THREAD,
    CPU_THREADS,
    CPU_PROCS,
    SERVICE,
    POOL_IN_CALLBACK,
    LOST_WAKEUP,
    CROSS_THREAD,
    CALLBACK_ON_ERROR,
    LOOP_THREAD,
    MESSAGE_BUS,
};

/* A variant's family: how check() judges what its run recorded. */
struct family {
    void (*judge)(const struct cl_run *run, struct cl_result *res);
};

/* ---- plumbing (hybrid.c) ---- */

extern uint64_t unit_ns; /* --unit-ms, in ns */

/* The run's loop: each callback is an operation of worker 0; a timer still due
 * counts as progress (a long sleep is not a hang). gil: NULL, or the GIL the
 * loop thread shares with the pool's threads. */
struct cl_loop *loop_open(struct cl_run *run, struct cl_gil *gil);
/* run_until_complete; waits for ever when nothing can complete f (a hang is
 * the watchdog's to end). */
void loop_run_until(struct cl_loop *loop, struct cl_future *f);
void loop_close(struct cl_loop *loop);

/* The lag monitor every offload variant runs: a sample every LAG_EVERY. */
#define LAG_EVERY_NS 2000000ull
void lag_open(struct cl_loop *loop);
void lag_close(void);
/* Samples taken while the loop ran: the 99th percentile and the maximum, in ms. */
double lag_p99_ms(void);
double lag_max_ms(void);
uint64_t lag_samples(void);

/* CPU work: terms of a sum of squares per unit, calibrated on this machine. */
extern uint64_t terms_per_unit;
void calibrate_cpu(void);

double units_since(uint64_t t0);
long ncpus(void);

/* The tasks a worker process runs (nothing is pickled). */
enum { PT_SUM_RANGE, PT_ECHO, NPROC_TASKS };
extern cl_proc_fn *const proc_tasks[NPROC_TASKS];

/* ---- the variants, by file ---- */

void run_to_thread(struct cl_run *run);
void run_blocking_in_loop(struct cl_run *run);
void run_cpu_to_thread(struct cl_run *run);
void run_cpu_to_procs(struct cl_run *run);
void run_service(struct cl_run *run);
void run_pool_in_callback(struct cl_run *run);
extern const struct family to_thread_f, cpu_f, service_f, pool_in_callback_f;

void run_lost_wakeup(struct cl_run *run);
void run_bridge_queue(struct cl_run *run);
void run_cross_thread(struct cl_run *run);
void run_callback_on_error(struct cl_run *run);
void run_callback_on_error_fixed(struct cl_run *run);
void run_loop_thread(struct cl_run *run);
void run_message_bus(struct cl_run *run);
extern const struct family lost_wakeup_f, cross_thread_f, callback_f, loop_thread_f, bus_f;
/* The watchdog's view of the lost wake-up's queue (atomics only). */
void report_lost_wakeup(int fd);

#endif
