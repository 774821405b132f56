#include "cl_time.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cl_check.h"

uint64_t cl_now_ns(void)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

struct timespec cl_deadline_ns(uint64_t ns)
{
    uint64_t at = cl_now_ns() + ns;
    return (struct timespec){.tv_sec = (time_t)(at / CL_NS_PER_S),
                             .tv_nsec = (long)(at % CL_NS_PER_S)};
}

int cl_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

void cl_sleep_ns(uint64_t ns)
{
    if (ns == 0) /* the timer would still take its slack: about 80 µs here */
        return;
    /* An absolute deadline, so a signal cannot stretch the total sleep. */
    struct timespec ts = cl_deadline_ns(ns);
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        ;
    CL_PT(rc);
}

static int ascending(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void cl_sort_ns(uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, ascending);
}

static int ascending_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cl_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, ascending_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void cl_busy_ns(uint64_t ns)
{
    for (uint64_t end = cl_now_ns() + ns; cl_now_ns() < end;)
        ;
}
