/* pools: what the chapter's files share. pools.c declares the chapter and judges
 * the runs; futures.c has the thread pool's variants (orders, errors, timeouts and
 * cancellation), lifetime.c the pools' lifetimes (per request, never shut down,
 * a table that never shrinks, the hand-made pool), procs.c the process pool's
 * (chunking, map, cancel, nested threads) and the task table its workers run. */
#ifndef POOLS_H
#define POOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclab.h"

#define MS                    (1000 * 1000ull)
#define FUTURE_TASKS_MAX      64 /* tasks of the variants that collect them one by one */
#define HAND_MADE_MAX_WORKERS 16 /* threads of the hand-made pools */

/* The chapter's flags. */
enum {
    WORKERS, /* threads or processes in the pool */
    TASKS,   /* tasks, requests or items */
    STEP_MS, /* as-completed, map-ordered, total-timeout: a task's time unit */
    HANG_MS, /* the long tasks of the timeout and cancel variants */
    WAIT_MS, /* how long the caller waits before it gives up */
    CHUNK,   /* chunking: one chunk size instead of the sweep */
    POOL,    /* chunking: thread, process or both */
    TERMS,   /* chunking: the work of one item (terms of a sum of squares) */
    POOLS,   /* no-shutdown: pools created */
    INNER,   /* nested: threads inside each worker process */
    NPARAMS
};
enum { POOL_THREAD, POOL_PROCESS, POOL_BOTH }; /* --pool */

/* Each variant's family. The first seven, up to TOTAL_TIMEOUT, are futures.c's. */
enum kind {
    AS_COMPLETED,
    MAP_ORDERED,
    EXCEPTIONS,
    TIMEOUT_NOT_CANCEL,
    CANCEL_PENDING,
    CANCEL_TOKEN,
    TOTAL_TIMEOUT,
    CHUNKING,
    PER_REQUEST,
    REUSED,
    NO_SHUTDOWN,
    HAND_MADE,
    HAND_MADE_FIXED,
    PROCESS_MAP,
    PROCESS_CANCEL,
    FUTURES_LEAK,
    NESTED,
};

/* The tasks a worker process runs, by index (nothing is pickled). */
enum { PT_SUM_ITEM, PT_SLEEP_SQUARE, PT_HANG, PT_NESTED, NPROC_TASKS };
extern cl_proc_fn *const proc_tasks[NPROC_TASKS];

/* One result collected: the watchdog's progress. */
void progress(struct cl_run *run);
/* What the main thread waits for, for the watchdog's report. */
void waiting(struct cl_run *run, const char *what);

/* The pool a variant is using now, for the watchdog's report (NULL: none). */
extern struct cl_pool *_Atomic current_pool;

long ncpus(void);

/* The variants' .run functions. */
void run_as_completed(struct cl_run *run);
void run_map_ordered(struct cl_run *run);
void run_exceptions(struct cl_run *run);
void run_timeout_not_cancel(struct cl_run *run);
void run_cancel_pending(struct cl_run *run);
void run_cancel_token(struct cl_run *run);
void run_total_timeout(struct cl_run *run);
void run_per_request(struct cl_run *run);
void run_reused(struct cl_run *run);
void run_no_shutdown(struct cl_run *run);
void run_futures_leak(struct cl_run *run);
void run_hand_made(struct cl_run *run);
void run_hand_made_fixed(struct cl_run *run);
void run_chunking(struct cl_run *run);
void run_process_map(struct cl_run *run);
void run_process_cancel(struct cl_run *run);
void run_nested(struct cl_run *run);

/* Each file judges its own variants (check's work), and frees what they left. */
void check_futures(const struct cl_run *run, struct cl_result *res);
void check_lifetime(const struct cl_run *run, struct cl_result *res);
void check_procs(const struct cl_run *run, struct cl_result *res);
void teardown_lifetime(void);

/* The hand-made pool's counters, for the watchdog's report (atomics only). */
void report_hand_made(int fd);

#endif
