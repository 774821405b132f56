/* A bounded blocking queue: Python's queue.Queue(maxsize) in C, with close().
 *
 * One mutex and two condition variables (not_full for producers, not_empty for
 * consumers) over a ring buffer of void * items. Each waiter waits on the
 * condition that only the other side signals, so a signal can never wake a
 * thread of the wrong kind and be lost (the bug of a single condition).
 *
 *   put / get           block until there is room / an item, or the queue closes
 *   put_timed/get_timed the same, giving up after a timeout (CLOCK_MONOTONIC)
 *   try_put / try_get   never block (put_nowait / get_nowait)
 *   close               no more puts; wakes every waiter; get still drains what
 *                       is left, then reports CL_Q_CLOSED (a shutdown with no
 *                       sentinels to forget)
 *   task_done / join    join waits until every item put has been task_done'd,
 *                       as in Python; task_done past the count is refused
 *                       instead of corrupting it, and join_timed gives up
 *
 * Every call is thread-safe. The snapshot (cl_queue_peek) takes no lock, so a
 * watchdog can call it while workers are stuck inside the queue. */
#ifndef CL_QUEUE_H
#define CL_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cl_qstatus {
    CL_Q_OK = 0,
    CL_Q_FULL,     /* try_put: no room (queue.Full) */
    CL_Q_EMPTY,    /* try_get: nothing there (queue.Empty) */
    CL_Q_TIMEOUT,  /* a timed call gave up */
    CL_Q_CLOSED,   /* put after close; get on a closed, drained queue */
    CL_Q_TOO_MANY, /* task_done called more often than items were put (ValueError) */
};

#define CL_QUEUE_MAX ((size_t)1 << 28) /* capacity cap: 2 GiB of pointers */

struct cl_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_full;  /* producers wait here; get signals it */
    pthread_cond_t not_empty; /* consumers wait here; put signals it */
    pthread_cond_t all_done;  /* join waits here; the last task_done broadcasts */
    void **ring;
    size_t cap, head, len; /* items are ring[head], ring[head+1], ... (mod cap) */
    uint64_t unfinished;   /* put, not yet task_done'd */
    bool closed;
    /* Mirrors for cl_queue_peek, written under mu, read without it. */
    _Atomic size_t len_seen;
    _Atomic int putters_waiting, getters_waiting;
    _Atomic bool closed_seen;
};

/* What a lock-free look at the queue shows (possibly a moment out of date). */
struct cl_queue_snapshot {
    size_t len, cap;
    int putters_waiting, getters_waiting;
    bool closed;
};

/* Returns 0, or EINVAL for a capacity of 0 or above CL_QUEUE_MAX (the queue is
 * then untouched and must not be destroyed), or ENOMEM. */
int cl_queue_init(struct cl_queue *q, size_t capacity);
/* Frees the ring. No thread may be inside the queue or ever enter it again. */
void cl_queue_destroy(struct cl_queue *q);

/* Blocking: CL_Q_OK, or CL_Q_CLOSED. */
enum cl_qstatus cl_queue_put(struct cl_queue *q, void *item);
enum cl_qstatus cl_queue_get(struct cl_queue *q, void **item);
/* Timed: also CL_Q_TIMEOUT after timeout_ns nanoseconds (0: do not wait). */
enum cl_qstatus cl_queue_put_timed(struct cl_queue *q, void *item, uint64_t timeout_ns);
enum cl_qstatus cl_queue_get_timed(struct cl_queue *q, void **item, uint64_t timeout_ns);
/* Non-blocking: CL_Q_OK, CL_Q_FULL / CL_Q_EMPTY, or CL_Q_CLOSED. */
enum cl_qstatus cl_queue_try_put(struct cl_queue *q, void *item);
enum cl_qstatus cl_queue_try_get(struct cl_queue *q, void **item);

/* No more puts; wakes every blocked put (CL_Q_CLOSED) and get (which drains
 * what is left first). Idempotent. */
void cl_queue_close(struct cl_queue *q);

/* One item taken by get is finished: CL_Q_OK, or CL_Q_TOO_MANY. */
enum cl_qstatus cl_queue_task_done(struct cl_queue *q);
/* Wait until every item put so far is task_done'd: CL_Q_OK, or CL_Q_TIMEOUT. */
void cl_queue_join(struct cl_queue *q);
enum cl_qstatus cl_queue_join_timed(struct cl_queue *q, uint64_t timeout_ns);

/* Items in the queue now (qsize()), under the lock. */
size_t cl_queue_len(struct cl_queue *q);
/* The same and more, without the lock: for watchdogs and reports. */
struct cl_queue_snapshot cl_queue_peek(const struct cl_queue *q);

/* A status as a word, for messages: "ok", "full", "closed" ... */
const char *cl_qstatus_str(enum cl_qstatus s);

#endif
