/* asyncio's synchronisation primitives for cl_task tasks: Lock, Semaphore,
 * Event, Condition, Queue (with task_done and join), and as_completed.
 *
 * Everything here belongs to the loop's thread, as in asyncio: no atomics, no
 * mutex. A waiting task awaits a future of the primitive's (its "entry" in the
 * primitive's wait queue), named after the primitive, so the watchdog's report
 * says what it waits for ("task 'consumer' #3: awaiting 'an item'").
 *
 * Waiters are served first come, first served, by hand-off: a release gives
 * the permit to the first waiter (the count never goes up meanwhile), a put
 * gives its item to the first waiting getter, so a task that arrives later
 * cannot barge in ahead of one that waits (a condition's notified waiter is
 * the exception: below). Cancellation is delivered at the
 * await as usual, and an await that ends cancelled holds nothing: a permit or
 * an item handed to a task that was cancelled before it could resume is passed
 * on to the next waiter (a lock) or put back at the front (a queue). Two
 * exceptions, both asyncio's: CL_COND_WAIT always returns with the lock held,
 * cancelled or not (it takes the lock back first); and a put whose item went
 * into the queue stays done even if its task was cancelled meanwhile.
 *
 * Each await is a macro that may suspend once, like those of cl_task.h (one per
 * source line, not inside a switch). A primitive lives as long as the loop, or
 * at least until no task waits on it. */
#ifndef CL_ASYNC_H
#define CL_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl_task.h"

struct cl_wentry; /* a waiting task's place in a queue: the future it awaits */

/* Waiters, first in first out. */
struct cl_waitq {
    struct cl_wentry *head, *tail;
    size_t len;
};

/* ---- Semaphore and Lock --------------------------------------------------- */

/* asyncio.Semaphore (bound 0) or BoundedSemaphore (bound > 0: a release that
 * would raise the count past it dies, as a ValueError would end Python). */
struct cl_asem {
    struct cl_loop *loop;
    const char *name; /* what a waiting task awaits (static) */
    long value;       /* permits free */
    long bound;       /* the most permits there may be; 0: no bound */
    struct cl_waitq waiters;
};

void cl_asem_init(struct cl_asem *s, struct cl_loop *loop, long value, long bound,
                  const char *name);
/* Give a permit back: to the first waiter if there is one. */
void cl_asem_release(struct cl_asem *s);

/* async with sem: take a permit, waiting while there is none. */
#define CL_SEM_ACQUIRE(t, s) CL_AWAIT_WITH_(t, cl_asem_arm_((t), (s)), cl_asem_resume_((t), (s)))

/* asyncio.Lock: a semaphore of one permit, never released twice. */
struct cl_alock {
    struct cl_asem sem;
};

void cl_alock_init(struct cl_alock *l, struct cl_loop *loop, const char *name);
/* Dies if the lock is not held (asyncio raises RuntimeError). */
void cl_alock_release(struct cl_alock *l);
bool cl_alock_locked(const struct cl_alock *l);

#define CL_LOCK(t, l) CL_SEM_ACQUIRE(t, &(l)->sem)

/* ---- Event ---------------------------------------------------------------- */

/* asyncio.Event: a flag that tasks wait for; setting it wakes every waiter. */
struct cl_aevent {
    struct cl_loop *loop;
    const char *name;
    bool set;
    struct cl_waitq waiters;
};

void cl_aevent_init(struct cl_aevent *e, struct cl_loop *loop, const char *name);
void cl_aevent_set(struct cl_aevent *e);
void cl_aevent_clear(struct cl_aevent *e);

/* await event.wait(): at once if the flag is set. */
#define CL_EVENT_WAIT(t, e) CL_AWAIT_WITH_(t, cl_aevent_arm_((t), (e)), cl_resume_((t), true))

/* ---- Condition ------------------------------------------------------------ */

/* asyncio.Condition over a lock. A waiter gives the lock up, waits for a
 * notify, then takes the lock back before it resumes. As in asyncio, a
 * notified waiter asks for the lock only when it would run (the next
 * iteration), so the notifier, or any task that runs before it, may take the
 * lock first and change the state it was notified about. */
struct cl_acond {
    struct cl_alock *lock;
    const char *name;
    struct cl_waitq waiters;
};

void cl_acond_init(struct cl_acond *c, struct cl_alock *lock, const char *name);
/* Wake the first n waiters (they then queue for the lock); the lock must be
 * held, or it dies, as in asyncio. */
void cl_acond_notify(struct cl_acond *c, size_t n);
void cl_acond_notify_all(struct cl_acond *c);

/* await cond.wait(), with the lock held: it is held again when this returns,
 * even when the wait ends cancelled. Dies if the lock is not held. */
#define CL_COND_WAIT(t, c) CL_AWAIT_WITH_(t, cl_acond_arm_((t), (c)), cl_resume_((t), true))

/* ---- Queue ---------------------------------------------------------------- */

/* asyncio.Queue of intptr_t items: put waits while it is full, get while it is
 * empty; join waits until every item put has been marked task_done. */
struct cl_aqueue {
    struct cl_loop *loop;
    size_t maxsize;                   /* 0: unbounded */
    intptr_t *ring;                   /* the items, a ring of capacity cap */
    size_t head, len, cap;            /* capacity: a power of two */
    struct cl_waitq getters, putters; /* getters wait only while it is empty,
                                         putters only while it is full */
    uint64_t unfinished;              /* put and not yet task_done */
    struct cl_aevent finished;        /* set while unfinished is 0: join waits for it */
    int closed_err;                   /* 0, or the error of cl_aqueue_close */
    const char *closed_msg;
    const char *get_name, *put_name; /* what getters and putters await */
};

/* name: what a getter awaits ("an item"); putters await "a free slot", join
 * "every item task_done" (change the fields after init for others). */
void cl_aqueue_init(struct cl_aqueue *q, struct cl_loop *loop, size_t maxsize, const char *name);
/* Frees the ring; no task may wait on q any more. */
void cl_aqueue_free(struct cl_aqueue *q);

size_t cl_aqueue_size(const struct cl_aqueue *q);
/* put_nowait / get_nowait: false when full / empty (QueueFull, QueueEmpty). */
bool cl_aqueue_put_nowait(struct cl_aqueue *q, intptr_t item);
bool cl_aqueue_get_nowait(struct cl_aqueue *q, intptr_t *item);
/* One item put earlier is done with; dies if more are done than were put
 * (asyncio raises ValueError). */
void cl_aqueue_task_done(struct cl_aqueue *q);
/* Python 3.13's Queue.shutdown: putters (waiting and new) fail with err; getters
 * still get what is left, then fail with err too. */
void cl_aqueue_close(struct cl_aqueue *q, int err, const char *msg);

#define CL_QUEUE_PUT(t, q, item)                                                                   \
    CL_AWAIT_WITH_(t, cl_aqueue_put_arm_((t), (q), (item)), cl_resume_((t), true))
/* out: an intptr_t lvalue that survives awaits (in the task's frame). */
#define CL_QUEUE_GET(t, q, out)                                                                    \
    CL_AWAIT_WITH_(t, cl_aqueue_get_arm_((t), (q), &(out)), cl_aqueue_get_resume_((t), (q), &(out)))
#define CL_QUEUE_JOIN(t, q) CL_EVENT_WAIT(t, &(q)->finished)

/* ---- as_completed ---------------------------------------------------------- */

/* asyncio.as_completed(futs, timeout): each CL_NEXT_COMPLETED gives the index of
 * the next future to finish, in the order they finish; n of them in all. Once
 * timeout_ns has passed (CL_FOREVER: never), each one still to come fails with
 * ETIMEDOUT: the error comes out of the await itself (the loop's "iterator"),
 * not out of the futures. One reference for the caller (cl_future_unref). */
struct cl_as_completed;
struct cl_as_completed *cl_as_completed_new(struct cl_loop *loop, struct cl_future *const *futs,
                                            size_t n, uint64_t timeout_ns);
struct cl_future *cl_as_completed_future(struct cl_as_completed *ac);
struct cl_aqueue *cl_as_completed_queue_(struct cl_as_completed *ac);

/* out: an intptr_t lvalue in the frame; gets the index into futs. */
#define CL_NEXT_COMPLETED(t, ac, out) CL_QUEUE_GET(t, cl_as_completed_queue_(ac), out)

/* ---- the implementation of the macros -------------------------------------- */

/* Suspend if arm says so; on the way back, resume (true: jump to the cleanup). */
#define CL_AWAIT_WITH_(t, arm, resume)                                                             \
    do {                                                                                           \
        if (arm) {                                                                                 \
            (t)->resume_at = __LINE__;                                                             \
            return CL_SUSPENDED;                                                                   \
        case __LINE__:;                                                                            \
        }                                                                                          \
        if (resume)                                                                                \
            goto cl_reenter_;                                                                      \
    } while (0)

bool cl_asem_arm_(struct cl_task *t, struct cl_asem *s);
bool cl_asem_resume_(struct cl_task *t, struct cl_asem *s);
bool cl_aevent_arm_(struct cl_task *t, struct cl_aevent *e);
bool cl_acond_arm_(struct cl_task *t, struct cl_acond *c);
bool cl_aqueue_put_arm_(struct cl_task *t, struct cl_aqueue *q, intptr_t item);
bool cl_aqueue_get_arm_(struct cl_task *t, struct cl_aqueue *q, intptr_t *out);
bool cl_aqueue_get_resume_(struct cl_task *t, struct cl_aqueue *q, intptr_t *out);

#endif
