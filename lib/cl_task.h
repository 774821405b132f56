/* Futures and tasks on a cl_loop: asyncio's coroutines, written as stackless
 * state machines (protothreads, or what a compiler makes of a Python coroutine:
 * a frame object and a resume point).
 *
 * A task is a struct whose first member is a struct cl_task, and a function that
 * takes it. The function's body sits between CL_BEGIN and CL_END and reads in
 * order; each await is a macro that saves the line it is on and returns to the
 * loop, and the next call jumps back to that line (a switch on the saved line,
 * Duff's device). So:
 *   - what must survive an await lives in the struct, not in local variables;
 *   - one await per source line, and no switch statement around an await;
 *   - a sleeping task costs its struct, a heap entry and a registry slot, no
 *     stack: about 320 bytes here against a page or more for a stackful
 *     coroutine.
 *
 *   struct ticker {
 *       struct cl_task task;
 *       int i;                        // survives the awaits
 *   };
 *
 *   static int ticker_run(struct cl_task *t)
 *   {
 *       struct ticker *k = (struct ticker *)t;
 *       CL_BEGIN(t);
 *       for (k->i = 0; k->i < 3; k->i++)
 *           CL_SLEEP(t, CL_MS(100));  // asyncio.sleep(0.1)
 *       CL_RETURN(t, k->i);           // runs the CL_FINALLY section first
 *       CL_FINALLY(t);                // optional: runs exactly once, however
 *       puts("cleanup");              // the body ends (return, error, cancel)
 *       CL_END(t);
 *   }
 *
 *   struct cl_task *t = cl_task_new(loop, ticker_run, sizeof(struct ticker), "ticker");
 *
 * Errors are (code, message) pairs: an errno value and a static string. A task
 * ends with an error by CL_RAISE, or when a future it awaits with CL_AWAIT
 * failed (asyncio's exception propagation); CL_AWAIT_TRY awaits without
 * propagating. ECANCELED is cancellation.
 *
 * Cancellation (cl_task_cancel) is delivered at the task's next await: the await
 * is abandoned (a timer disarmed, an fd unwatched, an awaited future cancelled
 * too, as asyncio does), and the task jumps to its CL_FINALLY section, whose
 * code runs exactly once. Awaits inside CL_FINALLY work and are not
 * interrupted: a cancel that arrives during cleanup is ignored. A task cancelled
 * before its first step never runs (it has nothing to clean up).
 *
 * Ownership: each object made by a *_new call is returned with one reference,
 * which cl_future_unref gives back; a running task, an await and a combinator
 * hold references of their own, so dropping yours at once (fire and forget)
 * is safe. cl_loop_free frees whatever is left.
 *
 * For the watchdog, each task publishes what it awaits through atomic pointers
 * to static strings, in a registry whose slots are never freed while the loop
 * lives: cl_task_report reads only atomics, from any thread. */
#ifndef CL_TASK_H
#define CL_TASK_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_loop.h"
#include "cl_time.h" /* CL_FOREVER */

struct cl_future;
struct cl_task;

/* Called once when the future it is added to completes (cl_future_on_done). */
struct cl_waiter {
    struct cl_waiter *next, *prev;
    void (*fn)(struct cl_waiter *w, struct cl_future *f);
};

/* What a kind of future does when cancelled and when freed. */
struct cl_future_ops {
    const char *kind; /* "future", "task", "gather", ... */
    /* Start cancelling a pending future, which must then complete eventually;
     * false to refuse (nothing changed). NULL: complete it as cancelled at once. */
    bool (*cancel)(struct cl_future *f);
    /* Give back what the object holds (references to others, unless sweeping)
     * and its memory. */
    void (*destroy)(struct cl_future *f, bool sweeping);
};

struct cl_future {
    struct cl_loop *loop;
    const struct cl_future_ops *ops;
    const char *name; /* static string: what the watchdog calls it */
    int refs;         /* 0: embedded by its owner, never freed here */
    bool done;
    bool cancelling;                       /* cancel started, not finished */
    int err;                               /* 0, ECANCELED, or the error it failed with */
    intptr_t value;                        /* the result, when err == 0 */
    const char *msg;                       /* the error's message (static), or NULL */
    struct cl_waiter waiters;              /* list head: awaiting tasks and done callbacks */
    struct cl_future *obj_next, *obj_prev; /* the loop's objects, for cl_loop_free */
};

/* Embed a future in a struct of your own (not freed by the loop, not counted). */
void cl_future_init(struct cl_future *f, struct cl_loop *loop, const char *name);
/* A future on the heap, with one reference (loop.create_future()). */
struct cl_future *cl_future_new(struct cl_loop *loop, const char *name);

void cl_future_ref(struct cl_future *f);
void cl_future_unref(struct cl_future *f);

/* Complete it: with a result, an error, or as cancelled. Each is a no-op on a
 * future that is already done (set_result would raise; here the first wins).
 * Setting or failing a task or a combinator dies: they complete themselves.
 * Loop thread only; other threads go through cl_loop_call_soon_threadsafe. */
void cl_future_set(struct cl_future *f, intptr_t value);
void cl_future_fail(struct cl_future *f, int err, const char *msg);
/* Cancel it (for a task: cl_task_cancel). False if it was already done. */
bool cl_future_cancel(struct cl_future *f);

/* Call w->fn(w, f) when f completes (at once if it is done). */
void cl_future_on_done(struct cl_future *f, struct cl_waiter *w);
/* Forget w if f has not completed yet. */
void cl_future_forget(struct cl_waiter *w);

static inline bool cl_future_cancelled(const struct cl_future *f)
{
    return f->done && f->err == ECANCELED;
}

/* ------------------------------------------------------------------------------
 * Tasks */

enum { CL_SUSPENDED = 0, CL_FINISHED = 1 }; /* what a task function returns */
enum { CL_AT_FINALLY = -1, CL_AT_END = -2 };

typedef int cl_task_fn(struct cl_task *t);

/* What the watchdog reads of a task. The loop recycles a finished task's slot,
 * so a report may show one field of the old task and one of the new. */
struct cl_task_slot {
    _Atomic(const char *) name;   /* NULL: the slot is free */
    _Atomic(const char *) status; /* "ready", "running", "sleeping", "awaiting", ... */
    _Atomic(const char *) detail; /* what it awaits ("reply"), or NULL */
    _Atomic int64_t num;          /* a deadline for a sleep, an fd for a wait */
    _Atomic uint64_t id;          /* the task's number, from 1 */
    uint32_t next_free;           /* loop thread only */
};

struct cl_task {
    struct cl_future fut; /* its outcome: awaiting a task awaits this */
    cl_task_fn *fn;
    int resume_at;              /* 0 before the first step, then the line of its await */
    unsigned flags;             /* CL_TASK_* below */
    uint64_t id;                /* 1, 2, ... in order of creation */
    struct cl_timer timer;      /* its sleeps */
    struct cl_io io;            /* its fd waits */
    struct cl_waiter waiter;    /* its await on a future */
    struct cl_future *awaiting; /* the future it awaits (a reference), or NULL */
    struct cl_task_slot *slot;  /* the watchdog's view */
    uint32_t slot_index;
};

#define CL_TASK_SCHEDULED  (1u << 0) /* in the ready queue */
#define CL_TASK_STARTED    (1u << 1) /* has taken its first step */
#define CL_TASK_CANCEL     (1u << 2) /* cancel requested, not yet delivered */
#define CL_TASK_IN_FINALLY (1u << 3) /* running its cleanup */
#define CL_TASK_FD_ERR     (1u << 4) /* the last fd wait could not be armed */

/* A task running fn over a zeroed frame of frame_size bytes (at least
 * sizeof(struct cl_task), which must begin the frame). It takes its first step
 * at the loop's next iteration, not now: fill in the frame's parameters after
 * this call. One reference for the caller. */
struct cl_task *cl_task_new(struct cl_loop *loop, cl_task_fn *fn, size_t frame_size,
                            const char *name);

/* Request cancellation. False if the task is done, or already cancelling. */
bool cl_task_cancel(struct cl_task *t);

/* The task being stepped by the loop, or NULL. */
struct cl_task *cl_task_current(struct cl_loop *loop);

/* Run the loop until f is done (loop.run_until_complete); also returns when
 * cl_loop_stop is called. True if f is done. */
bool cl_loop_run_until(struct cl_loop *loop, struct cl_future *f);

/* Tasks that have not finished yet. */
size_t cl_task_pending(struct cl_loop *loop);

/* For the watchdog, from any thread: what the loop thread does, then one line per
 * unfinished task (at most max_lines, then a count per status). Reads only
 * atomics, so it may run while the loop is stuck. */
void cl_task_report(int fd, struct cl_loop *loop, size_t max_lines);

/* The loop's progress for cl_watchdog_cfg.progress: callbacks run so far. */
uint64_t cl_loop_progress(void *loop);

/* For the modules that make kinds of future of their own (cl_async): a heap
 * future with its own ops, on the loop's list that cl_loop_free sweeps, with
 * one reference; and completing a future of any kind. */
void cl_future_adopt_(struct cl_future *f, struct cl_loop *loop, const char *name,
                      const struct cl_future_ops *ops);
void cl_future_complete_(struct cl_future *f, int err, intptr_t value, const char *msg);

/* The implementation of the macros below. */
bool cl_await_future_(struct cl_task *t, struct cl_future *f);
bool cl_await_sleep_(struct cl_task *t, uint64_t ns);
bool cl_await_fd_(struct cl_task *t, int fd, uint32_t events);
bool cl_resume_(struct cl_task *t, bool propagate);
void cl_return_(struct cl_task *t, intptr_t value);
void cl_raise_(struct cl_task *t, int err, const char *msg);
void cl_enter_finally_(struct cl_task *t);

/* The body: CL_BEGIN(t); ... [CL_FINALLY(t); ...] CL_END(t); */
#define CL_BEGIN(t)                                                                                \
    cl_reenter_:                                                                                   \
    __attribute__((unused));                                                                       \
    switch ((t)->resume_at) {                                                                      \
    case 0:

#define CL_FINALLY(t)                                                                              \
    __attribute__((fallthrough));                                                                  \
    case CL_AT_FINALLY:                                                                            \
        cl_enter_finally_(t)

#define CL_END(t)                                                                                  \
    __attribute__((fallthrough));                                                                  \
    case CL_AT_END:;                                                                               \
        }                                                                                          \
        return CL_FINISHED

/* Suspend if arm says so; on the way back, deliver a cancellation or (with
 * propagate) the awaited failure by jumping to the cleanup. */
#define CL_AWAIT_(t, arm, propagate)                                                               \
    do {                                                                                           \
        if (arm) {                                                                                 \
            (t)->resume_at = __LINE__;                                                             \
            return CL_SUSPENDED;                                                                   \
        case __LINE__:;                                                                            \
        }                                                                                          \
        if (cl_resume_((t), (propagate)))                                                          \
            goto cl_reenter_;                                                                      \
    } while (0)

/* await fut: its result is fut's value; its failure becomes the task's. */
#define CL_AWAIT(t, fut) CL_AWAIT_(t, cl_await_future_((t), (fut)), true)
/* try: await fut / except: pass. Read the outcome from fut itself. */
#define CL_AWAIT_TRY(t, fut) CL_AWAIT_(t, cl_await_future_((t), (fut)), false)
/* asyncio.sleep(ns / 1e9); CL_SLEEP(t, 0) lets every other ready task run once. */
#define CL_SLEEP(t, ns) CL_AWAIT_(t, cl_await_sleep_((t), (ns)), true)
/* Until fd is readable / writable (or has an error or hang-up to report). An fd
 * epoll cannot watch (a regular file) fails the task with EPERM. */
#define CL_READABLE(t, fd) CL_AWAIT_(t, cl_await_fd_((t), (fd), EPOLLIN), true)
#define CL_WRITABLE(t, fd) CL_AWAIT_(t, cl_await_fd_((t), (fd), EPOLLOUT), true)

/* return value / raise: through the CL_FINALLY section, if there is one. */
#define CL_RETURN(t, value)                                                                        \
    do {                                                                                           \
        cl_return_((t), (value));                                                                  \
        goto cl_reenter_;                                                                          \
    } while (0)
#define CL_RAISE(t, err, msg)                                                                      \
    do {                                                                                           \
        cl_raise_((t), (err), (msg));                                                              \
        goto cl_reenter_;                                                                          \
    } while (0)

/* ------------------------------------------------------------------------------
 * Combinators. Each returns a future with one reference for the caller, holds
 * references to the futures it was given, and never runs before the loop does. */

/* asyncio.gather: done when every future is; value n. Without
 * CL_RETURN_EXCEPTIONS, it fails as soon as one of them fails (the others keep
 * running); with it, the outcomes stay on each future. Cancelling the gather
 * cancels every future and completes once all of them are done. */
#define CL_RETURN_EXCEPTIONS 1u
struct cl_future *cl_gather_new(struct cl_loop *loop, struct cl_future *const *futs, size_t n,
                                unsigned flags);

/* asyncio.wait: done when the condition holds or after timeout_ns (CL_FOREVER
 * for none); never fails, and cancels nothing. Its value is how many of the
 * futures are done; each one says whether it is. */
enum cl_wait_mode { CL_FIRST_COMPLETED, CL_FIRST_EXCEPTION, CL_ALL_COMPLETED };
struct cl_future *cl_wait_new(struct cl_loop *loop, struct cl_future *const *futs, size_t n,
                              enum cl_wait_mode mode, uint64_t timeout_ns);

/* asyncio.wait_for: fut's outcome, or after timeout_ns, cancel fut, wait until
 * it has finished cancelling (its cleanup done), and fail with ETIMEDOUT (or
 * keep its result, if it finished anyway). Cancelling the wait_for cancels fut. */
struct cl_future *cl_wait_for_new(struct cl_loop *loop, struct cl_future *fut, uint64_t timeout_ns);

/* asyncio.shield: mirrors fut; cancelling the shield completes the shield (as
 * cancelled) and leaves fut running. */
struct cl_future *cl_shield_new(struct cl_loop *loop, struct cl_future *fut);

/* asyncio.TaskGroup. Spawned tasks belong to the group. The first one to fail
 * (with an error other than ECANCELED) cancels the others and, if the group has
 * not been awaited yet, the parent task (so that it stops at its next await
 * and, in its CL_FINALLY, awaits the group). cl_group_wait closes the group to
 * new tasks and returns its future: done once every task has finished, failed
 * with the first error (value: how many failed). Cancelling that future
 * cancels every task and completes once all of them have finished. */
struct cl_group;
struct cl_group *cl_group_new(struct cl_loop *loop, struct cl_task *parent);
/* A new task in the group; the pointer is the group's (valid while it lives).
 * NULL once the group is closed. */
struct cl_task *cl_group_spawn(struct cl_group *g, cl_task_fn *fn, size_t frame_size,
                               const char *name);
struct cl_future *cl_group_wait(struct cl_group *g);

#endif
