/* The bridge between a cl_loop and other threads: asyncio's run_in_executor,
 * run_coroutine_threadsafe and a queue both sides can use.
 *
 * Everything a loop owns belongs to its thread (lib/cl_loop.h); another thread
 * reaches it only through cl_loop_call_soon_threadsafe, which queues a call under
 * a mutex and writes the loop's eventfd once per batch (libuv's uv_async_send:
 * N posts may cost fewer wake-ups, never lose a call). The three pieces here are
 * built on that one door:
 *
 *   cl_run_in_pool        loop -> pool -> loop. A task awaits a loop future that
 *                         a pool thread's done callback completes by posting to
 *                         the loop. The call holds the loop (cl_loop_hold) until
 *                         its result has been delivered, so the loop cannot
 *                         return idle while a thread still works for it.
 *   cl_run_coro_threadsafe thread -> loop -> thread. A thread starts a task on
 *                         the loop and waits for its outcome with a timeout
 *                         (a cl_xfuture: a mutex and a condition variable).
 *   cl_bqueue             a bounded FIFO of intptr_t with a blocking put and get
 *                         for threads and awaited ones for tasks. A waiter is
 *                         registered under the queue's lock in the same critical
 *                         section that found the queue empty (or full), so a
 *                         put that comes after the check always sees it: no
 *                         window for a lost wake-up.
 *
 * Order of teardown: shut the pools down first (their running tasks finish and
 * post their results), then let the loop run until idle (cl_loop_run returns
 * once every call has been delivered), then cl_loop_free. */
#ifndef CL_BRIDGE_H
#define CL_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_pool.h"
#include "cl_task.h"

/* ---- loop -> pool -> loop ---------------------------------------------------- */

/* Submit fn(arg) to pool and return a loop future (one reference) that completes
 * with the task's result, fails with its error (or ESHUTDOWN if the pool refused
 * it), or ends cancelled. Cancelling the future cancels the pool task if it has
 * not started (a running thread is never interrupted: its result is dropped).
 * Loop thread only. */
struct cl_future *cl_run_in_pool(struct cl_loop *loop, struct cl_pool *pool, cl_pool_fn *fn,
                                 void *arg);

/* ---- thread -> loop -> thread -------------------------------------------------- */

/* A future that threads wait on: concurrent.futures.Future. */
struct cl_xfuture;

/* Fills in the new task's frame before its first step (on the loop thread). */
typedef void cl_task_init_fn(struct cl_task *t, void *arg);

/* From any thread but the loop's: start a task running fn over a frame of
 * frame_size bytes, init(task, arg) first, and return a future (one reference)
 * that gets the task's outcome. */
struct cl_xfuture *cl_run_coro_threadsafe(struct cl_loop *loop, cl_task_fn *fn, size_t frame_size,
                                          const char *name, cl_task_init_fn *init, void *arg);

/* Wait at most timeout_ns (CL_FOREVER: no limit): OK with *value, FAILED
 * with *err, CANCELLED, or TIMEOUT (the task goes on). */
enum cl_pool_status cl_xfuture_wait(struct cl_xfuture *xf, uint64_t timeout_ns, intptr_t *value,
                                    int *err);

/* Ask the loop to cancel the task (delivered at its next await, or before its
 * first step): true if this call asked, or the future ended cancelled; false if
 * it settled otherwise, or a cancel was asked before and is still on its way. */
bool cl_xfuture_cancel(struct cl_xfuture *xf);

/* Call fn(xf, arg) once the future settles, whatever its outcome: on the loop
 * thread, or at once on this one if it has settled already. One per future. */
void cl_xfuture_on_done(struct cl_xfuture *xf, void (*fn)(struct cl_xfuture *xf, void *arg),
                        void *arg);

/* The outcome of a settled future (for a done callback): its status, and the
 * value or error. */
enum cl_pool_status cl_xfuture_result(struct cl_xfuture *xf, intptr_t *value, int *err);

void cl_xfuture_release(struct cl_xfuture *xf);

/* ---- a queue for both sides ------------------------------------------------------ */

/* One side's waiters: threads on a condition variable, tasks as loop futures in
 * arrival order. */
struct cl_bq_side {
    pthread_cond_t cond;
    size_t threads_waiting;
    struct cl_future **tasks; /* a ring of futures, one reference each */
    size_t head, len, cap;
    size_t wakes_due; /* wake-ups owed to waiting tasks, not yet delivered */
};

struct cl_bqueue {
    pthread_mutex_t mu;
    struct cl_loop *loop;
    intptr_t *items; /* a ring */
    size_t head, len, cap;
    bool closed;
    bool drain_posted; /* a deliver call is queued on the loop */
    struct cl_bq_side getters, putters;
    /* Counters, readable from any thread (a watchdog's report). */
    _Atomic uint64_t puts, gets;
    _Atomic uint64_t task_wakes; /* futures of waiting tasks completed */
    _Atomic size_t depth;        /* items in the queue */
};

/* 0, or EINVAL for a capacity of 0, or the pthread error. */
int cl_bqueue_init(struct cl_bqueue *q, struct cl_loop *loop, size_t capacity);
/* No waiter may remain; futures still registered are released. */
void cl_bqueue_destroy(struct cl_bqueue *q);

/* Threads: block until there is room / an item, or timeout_ns (CL_FOREVER).
 * 0, ETIMEDOUT, or EPIPE once the queue is closed (a get drains it first). */
int cl_bqueue_put(struct cl_bqueue *q, intptr_t item, uint64_t timeout_ns);
int cl_bqueue_get(struct cl_bqueue *q, intptr_t *item, uint64_t timeout_ns);

/* Wake every waiter: later puts fail with EPIPE, gets once it is empty. */
void cl_bqueue_close(struct cl_bqueue *q);

/* Tasks (loop thread), through the macros below. In one critical section: take
 * an item (or put one) and return 0; or return EPIPE if closed; or register a
 * fresh future in *wait (the queue's: the await takes its own reference) and
 * return EAGAIN: await it, then try again. A wake-up is only a "look again";
 * one that reaches a cancelled waiter is passed on to the next. */
int cl_bqueue_get_or_arm(struct cl_bqueue *q, intptr_t *item, struct cl_future **wait);
int cl_bqueue_put_or_arm(struct cl_bqueue *q, intptr_t item, struct cl_future **wait);

/* await q.get() / q.put(item): err_ is 0 (with the item in item_), or EPIPE.
 * item_, wait_ (a struct cl_future *) and err_ live in the frame. */
#define CL_BQUEUE_GET(t, q, item_, wait_, err_)                                                    \
    while (((err_) = cl_bqueue_get_or_arm((q), &(item_), &(wait_))) == EAGAIN)                     \
    CL_AWAIT_TRY(t, wait_)

#define CL_BQUEUE_PUT(t, q, item_, wait_, err_)                                                    \
    while (((err_) = cl_bqueue_put_or_arm((q), (item_), &(wait_))) == EAGAIN)                      \
    CL_AWAIT_TRY(t, wait_)

#endif
