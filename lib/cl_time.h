/* Monotonic time and sleeping. */
#ifndef CL_TIME_H
#define CL_TIME_H

#include <stdint.h>

#define CL_NS_PER_S 1000000000ull

/* Nanoseconds on CLOCK_MONOTONIC: never jumps with the wall clock. */
uint64_t cl_now_ns(void);

/* Sleep for ns nanoseconds in total, resuming after a signal interrupts. */
void cl_sleep_ns(uint64_t ns);

static inline double cl_seconds(uint64_t ns)
{
    return (double)ns / (double)CL_NS_PER_S;
}

#endif
