/* What Python's threading module has and POSIX lacks: an Event, a
 * BoundedSemaphore, and a fair reader-writer lock.
 *
 * cl_event: a flag and a broadcast. A set before the wait is not lost (the wait
 *   reads the flag first), and every waiter wakes on one set. It is a level, not a
 *   count: two sets before a wait are one.
 * cl_bsem: a counting semaphore that refuses a release beyond its initial value
 *   (Python raises ValueError; this returns EOVERFLOW and changes nothing). A free
 *   permit costs one atomic instruction; only a thread that finds none sleeps, in
 *   a sem_t. Like Python's, it cannot tell a stray release from a holder's while
 *   some permit is held.
 * cl_rwlock: first come, first served. Readers who arrive one after another
 *   share the lock; a writer waits for the readers ahead of it, and the readers
 *   behind it wait for the writer. Neither side can starve the other.
 *
 * Timed waits use the forms ThreadSanitizer intercepts: pthread_cond_timedwait
 * on a CLOCK_MONOTONIC condition variable, and sem_timedwait. */
#ifndef CL_SYNC_H
#define CL_SYNC_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct cl_event {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    bool flag;
};

/* 0, or the pthread error. */
int cl_event_init(struct cl_event *e);
void cl_event_destroy(struct cl_event *e);
/* Set the flag and wake every waiter. */
void cl_event_set(struct cl_event *e);
void cl_event_clear(struct cl_event *e);
bool cl_event_is_set(struct cl_event *e);
/* Wait until the flag is set; timeout_s <= 0 waits for ever. Returns the flag
 * (false: timed out), as Python's Event.wait does. */
bool cl_event_wait(struct cl_event *e, double timeout_s);

struct cl_bsem {
    _Atomic long count; /* permits free, less the waiters not yet handed one */
    sem_t sem;          /* where a thread that found no permit sleeps */
    long bound;
};

/* value permits, which is also the bound. 0, or EINVAL (value above SEM_VALUE_MAX). */
int cl_bsem_init(struct cl_bsem *s, unsigned value);
void cl_bsem_destroy(struct cl_bsem *s);
void cl_bsem_acquire(struct cl_bsem *s);
/* true: acquired; false: no permit free now. */
bool cl_bsem_try_acquire(struct cl_bsem *s);
/* 0, or ETIMEDOUT after timeout_s seconds. */
int cl_bsem_timed_acquire(struct cl_bsem *s, double timeout_s);
/* 0, or EOVERFLOW: every permit is already free, so this release would raise the
 * value past its bound. Nothing changes then. */
int cl_bsem_release(struct cl_bsem *s);
/* Permits free now (a snapshot). */
long cl_bsem_value(struct cl_bsem *s);

struct cl_rwlock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next;    /* the ticket the next arrival takes */
    uint64_t serving; /* the ticket whose turn it is to enter */
    unsigned readers; /* inside, reading */
    bool writer;      /* a writer is inside */
};

int cl_rwlock_init(struct cl_rwlock *l);
void cl_rwlock_destroy(struct cl_rwlock *l);
void cl_rwlock_rdlock(struct cl_rwlock *l);
void cl_rwlock_rdunlock(struct cl_rwlock *l);
void cl_rwlock_wrlock(struct cl_rwlock *l);
void cl_rwlock_wrunlock(struct cl_rwlock *l);
/* Threads that took a ticket and are not inside yet (a snapshot, for tests and
 * reports). */
unsigned cl_rwlock_waiting(struct cl_rwlock *l);

#endif
