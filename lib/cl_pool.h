/* A thread pool with futures: Python's concurrent.futures.ThreadPoolExecutor in C.
 *
 *   cl_pool_new          a pool of at most `workers` threads, started as tasks need
 *                        them: a submit that finds no idle thread starts one, up to
 *                        the cap (Python's rule)
 *   cl_pool_submit       queue fn(arg); returns its future
 *   cl_pool_get          wait at most timeout_ns: the value, the task's error, or
 *                        CANCELLED; TIMEOUT only ends the wait, never the task
 *   cl_pool_cancel       succeeds only while the task is pending (not started) and
 *                        says so: false for a running or finished one
 *   cl_pool_on_done      call fn(f, arg) once f has finished or been cancelled
 *   cl_pool_map          submit fn over an array at once; cl_pool_next then yields
 *                        the futures in input order
 *   cl_pool_as_completed cl_pool_next yields the given futures as they finish
 *   cl_pool_shutdown     let every queued task run (or cancel the pending ones),
 *                        join the threads, free the pool
 *   completion fd        with .completions, every finished or cancelled future also
 *                        goes to a completion queue (cl_pool_take_done), and an
 *                        eventfd is readable while it holds any: an event loop can
 *                        wait on it with the rest of its fds
 *
 * A task reports an error by returning it (nonzero): the error reaches its future
 * (FAILED, with the code), is counted, and the worker goes on to the next task.
 * Every timed wait counts on CLOCK_MONOTONIC (cl_cond_init_monotonic), so a change
 * of the wall clock cannot move a deadline.
 *
 * A future is the caller's until cl_pool_release, and stays valid after the pool is
 * shut down. Every call is thread-safe; a done callback runs on the thread that
 * finished or cancelled the future (or at once, on the caller's, if it is done). */
#ifndef CL_POOL_H
#define CL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_time.h" /* CL_FOREVER */

#define CL_POOL_MAX_WORKERS 4096 /* threads in one pool; more is EINVAL */

/* A task: computes *result from arg. Returns 0, or an error code of its own
 * choosing (an errno, an application code): Python's raise. */
typedef int cl_pool_fn(void *arg, uint64_t *result);

struct cl_pool;
struct cl_pool_future;
struct cl_pool_iter;

/* What a future is, and what a wait returned. */
enum cl_pool_status {
    CL_POOL_PENDING,   /* queued, not started: the only state cancel works in */
    CL_POOL_RUNNING,   /* a worker runs it */
    CL_POOL_OK,        /* finished: the task returned 0; the value is its result */
    CL_POOL_FAILED,    /* finished: the task returned an error code */
    CL_POOL_CANCELLED, /* cancelled before it started: it never ran */
    CL_POOL_TIMEOUT,   /* a wait gave up first; the task is untouched */
    CL_POOL_END,       /* an iterator has yielded every future */
};

struct cl_pool_opts {
    int workers;      /* at most this many threads, 1 to CL_POOL_MAX_WORKERS */
    bool completions; /* keep finished futures for cl_pool_take_done, with an eventfd */
};

/* Counters read without a lock (for a watchdog's report): each is exact once the
 * pool is idle, and a moment out of date while tasks run. */
struct cl_pool_stats {
    uint64_t submitted; /* futures returned by submit */
    uint64_t ok, failed, cancelled;
    int threads;   /* started and not yet ended */
    int idle;      /* of those, waiting for a task */
    size_t queued; /* waiting for a thread, cancelled ones included until popped */
};

/* A new pool with no thread yet. NULL with errno: EINVAL (workers out of range),
 * ENOMEM, or eventfd's error. */
struct cl_pool *cl_pool_new(const struct cl_pool_opts *opts);

/* Queue fn(arg). NULL with errno: ESHUTDOWN once shutdown has begun, or
 * pthread_create's error when the pool has no thread and could start none. */
struct cl_pool_future *cl_pool_submit(struct cl_pool *pool, cl_pool_fn *fn, void *arg);

/* Wait until f is settled or timeout_ns has passed (0: do not wait;
 * CL_FOREVER). Returns OK (*value set), FAILED (*err set), CANCELLED or
 * TIMEOUT. value and err may be NULL. */
enum cl_pool_status cl_pool_get(struct cl_pool_future *f, uint64_t timeout_ns, uint64_t *value,
                                int *err);

/* What f is now: PENDING, RUNNING, OK, FAILED or CANCELLED. */
enum cl_pool_status cl_pool_state(const struct cl_pool_future *f);

/* Cancel f if it has not started: true when f is (now or already) cancelled,
 * false when it is running or finished, which nothing here can stop. */
bool cl_pool_cancel(struct cl_pool_future *f);

/* Call fn(f, arg) once, when f is settled; at once, on this thread, if it is. */
void cl_pool_on_done(struct cl_pool_future *f, void (*fn)(struct cl_pool_future *f, void *arg),
                     void *arg);

/* The caller is done with f (its value is lost with it). */
void cl_pool_release(struct cl_pool_future *f);

/* Python's executor.map: fn over n arguments, the i-th at args + i * stride,
 * all submitted now. cl_pool_next yields them in input order, each once it is
 * settled, until timeout_ns after this call (one deadline for the whole map).
 * NULL with errno as submit (the ones already submitted are cancelled). */
struct cl_pool_iter *cl_pool_map(struct cl_pool *pool, cl_pool_fn *fn, void *args, size_t stride,
                                 size_t n, uint64_t timeout_ns);

/* Python's as_completed: cl_pool_next yields the futures fs[0..n) in the order they
 * settle (those already settled first), until timeout_ns after this call. The
 * iterator holds its own reference to each. NULL only with ENOMEM. */
struct cl_pool_iter *cl_pool_as_completed(struct cl_pool_future *const *fs, size_t n,
                                          uint64_t timeout_ns);

/* The next settled future: OK, FAILED or CANCELLED as cl_pool_get says, with its
 * index (input order: the argument's; as_completed: in fs) and *value or *err;
 * TIMEOUT once the iterator's deadline has passed (later calls still yield
 * futures that settle); END after all n. */
enum cl_pool_status cl_pool_next(struct cl_pool_iter *it, size_t *index, uint64_t *value, int *err);

/* The future behind index i of a map (to cancel it, or read its state). */
struct cl_pool_future *cl_pool_iter_future(const struct cl_pool_iter *it, size_t i);

/* Free the iterator. A map's futures not yet started are cancelled, as Python's
 * map does when its loop is left early; as_completed's belong to the caller. */
void cl_pool_iter_end(struct cl_pool_iter *it);

/* With .completions: an eventfd (non-blocking, close-on-exec) that is readable
 * once a future has settled. Read its 8 bytes to clear it, then take every
 * future with cl_pool_take_done until NULL. -1 without .completions. */
int cl_pool_completion_fd(const struct cl_pool *pool);

/* The oldest settled future not yet taken, as a reference the caller releases;
 * NULL when there is none (or without .completions). */
struct cl_pool_future *cl_pool_take_done(struct cl_pool *pool);

/* Stop taking tasks; with cancel_pending, cancel every task not started (Python's
 * shutdown(cancel_futures=True)), else let them all run; wait for the running
 * ones, however long they take; join the threads; free the pool. */
void cl_pool_shutdown(struct cl_pool *pool, bool cancel_pending);

struct cl_pool_stats cl_pool_stats(const struct cl_pool *pool);

/* A status as a word, for messages: "ok", "failed", "timeout" ... */
const char *cl_pool_status_str(enum cl_pool_status s);

#endif
