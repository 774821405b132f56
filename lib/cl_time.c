#include "cl_time.h"

#include <errno.h>
#include <time.h>

#include "cl_check.h"

uint64_t cl_now_ns(void)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

void cl_sleep_ns(uint64_t ns)
{
    /* An absolute deadline, so a signal cannot stretch the total sleep. */
    uint64_t deadline = cl_now_ns() + ns;
    struct timespec ts = {.tv_sec = (time_t)(deadline / CL_NS_PER_S),
                          .tv_nsec = (long)(deadline % CL_NS_PER_S)};
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        ;
    CL_PT(rc);
}
