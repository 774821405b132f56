/* Monotonic time and sleeping. */
#ifndef CL_TIME_H
#define CL_TIME_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CL_NS_PER_S 1000000000ull
#define CL_FOREVER  UINT64_MAX /* a timeout that never expires */

/* Nanoseconds on CLOCK_MONOTONIC: never jumps with the wall clock. */
uint64_t cl_now_ns(void);

/* Sleep for ns nanoseconds in total, resuming after a signal interrupts; 0
 * returns at once. */
void cl_sleep_ns(uint64_t ns);

/* Keep this CPU busy for ns nanoseconds (work, not a wait): for costs too short
 * to sleep, such as a consumer's processing or the work inside a lock. */
void cl_busy_ns(uint64_t ns);

/* The moment ns nanoseconds from now on CLOCK_MONOTONIC: an absolute deadline for
 * clock_nanosleep or for a timed wait on a cl_cond_init_monotonic() condvar. */
struct timespec cl_deadline_ns(uint64_t ns);

/* A condition variable whose timed waits count on CLOCK_MONOTONIC, so that a
 * change of the wall clock cannot move a deadline. 0, or the pthread error. */
int cl_cond_init_monotonic(pthread_cond_t *cv);

/* Sorts n durations in ns into ascending order, for their percentiles. */
void cl_sort_ns(uint64_t *ns, size_t n);

/* The median of n > 0 values (sorting them in place): of repeated timings, the
 * one a slow round or a fast outlier does not move. */
double cl_median(double *v, size_t n);

static inline double cl_seconds(uint64_t ns)
{
    return (double)ns / (double)CL_NS_PER_S;
}

#endif
