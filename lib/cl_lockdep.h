/* A small lock-order checker in the spirit of the Linux kernel's lockdep.
 *
 * Locks belong to classes (a name, such as "A" or "account"). Each time a
 * thread acquires a class while holding others, the checker records the edges
 * held -> acquired. The first time a new edge would close a cycle in that graph
 * (A -> B was seen, now B -> A), it reports a potential deadlock, even when the
 * timing of this run happens not to deadlock. Known edges cost one relaxed load
 * each; only a new edge takes the checker's own lock. */
#ifndef CL_LOCKDEP_H
#define CL_LOCKDEP_H

#include <stdbool.h>
#include <stddef.h>

#define CL_LOCKDEP_MAX_CLASSES 64
#define CL_LOCKDEP_MAX_HELD                                                                        \
    16 /* classes one thread may hold at once; deeper ones                                         \
          are reported once and not checked */

/* Forget every class, edge and report; reports will go to fd. Call it before
 * any thread uses the checker. */
void cl_lockdep_reset(int fd);

/* A new class; returns its id, or -1 when all are taken. Not thread-safe:
 * register classes before the threads start. */
int cl_lockdep_class(const char *name);

/* Call just before acquiring a lock of class cls, and after releasing it.
 * A class acquired twice by one thread is reported as a self-deadlock. */
void cl_lockdep_acquire(int cls);
void cl_lockdep_release(int cls);

/* After a successful try-lock: held from now on, but no new edge, since a try
 * never waits and cannot be part of a deadlock (as in the kernel's lockdep). */
void cl_lockdep_acquired_try(int cls);

/* Inversions (and self-deadlocks) found so far, and the first report's text. */
size_t cl_lockdep_reports(void);
const char *cl_lockdep_first_report(void);

/* Acquisitions that were not checked because the thread already held
 * CL_LOCKDEP_MAX_HELD classes (the first one is reported). */
size_t cl_lockdep_untracked(void);

/* Whether the edge from -> to has been seen. */
bool cl_lockdep_edge(int from, int to);

#endif
