/* An instrumented mutex: a pthread mutex that also records its name, the thread
 * holding it and the threads waiting for it, so the watchdog can print the
 * wait-for graph of a deadlocked program and name its cycle. Every record is an
 * atomic that the watchdog reads without taking any lock. A plain
 * pthread_mutex_t stays the fast choice where nothing needs to be reported.
 * Threads are named by cl_thread_set_id (the runner names every worker); an
 * unnamed thread's holds and waits do not appear in reports. */
#ifndef CL_MUTEX_H
#define CL_MUTEX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct cl_mutex {
    pthread_mutex_t mu;
    const char *name;   /* "A", "fork 3": must outlive the mutex */
    _Atomic int holder; /* holding thread's id + 1, 0 when free */
    int depth;          /* recursive kind: how many times the holder has it */
    int lockdep_class;  /* cl_lockdep class checked on each lock, or -1 */
};

/* kind: PTHREAD_MUTEX_DEFAULT, _ERRORCHECK or _RECURSIVE. */
void cl_mutex_init(struct cl_mutex *m, const char *name, int kind);
void cl_mutex_destroy(struct cl_mutex *m);

/* Check each lock of m against the lock-order checker's class cls
 * (cl_lockdep_class), or stop checking it with -1. */
void cl_mutex_set_lockdep(struct cl_mutex *m, int cls);

/* Each returns 0 or the pthread error: EDEADLK from an error-checking relock,
 * EBUSY from trylock, ETIMEDOUT from timedlock. While a lock call blocks, the
 * thread is recorded as waiting for m. */
int cl_mutex_lock(struct cl_mutex *m);
int cl_mutex_trylock(struct cl_mutex *m);
int cl_mutex_timedlock(struct cl_mutex *m, uint64_t timeout_ns); /* CLOCK_REALTIME, as POSIX */
int cl_mutex_unlock(struct cl_mutex *m);

/* The watchdog's side: lock-free reads of the records. */
int cl_mutex_holder(const struct cl_mutex *m);           /* thread id, -1 if free or unnamed */
const struct cl_mutex *cl_mutex_waiting_for(int thread); /* NULL when not blocked */

/* Follows the wait-for graph (thread -> mutex it waits for -> its holder) from
 * every waiting thread. Stores a cycle's threads in order in cycle[] (at most
 * max) and returns its length, 0 when there is no cycle. */
size_t cl_mutex_find_cycle(int threads, int *cycle, size_t max);

/* Writes, with dprintf only, who holds and who waits for each of ms[0..n), then
 * the cycle if there is one, e.g.
 *   wait-for cycle: T1 holds A, waits for B; T2 holds B, waits for A
 * Returns the cycle's length (0: none). */
size_t cl_mutex_report(int fd, int threads, struct cl_mutex *const *ms, size_t n);

#endif
