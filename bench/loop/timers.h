/* What loop-timers (timers.c) and its libuv peer uv-timers (uv_timers.c) share:
 * libuv's million_timers shape, its flags, the clocks of its phases, and the
 * JSON line, so that the two differ only in the loop they drive. */
#ifndef BENCH_TIMERS_H
#define BENCH_TIMERS_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "args.h"
#include "cl_check.h"
#include "cl_json.h"
#include "cl_time.h"

enum { ARMING, RUNNING, CLEANING, DONE }; /* the phases, each marked as it begins */

struct timer_bench {
    uint64_t n, per_ms;
    uint64_t wall[4], cpu[4]; /* CLOCK_MONOTONIC and the process's CPU time, in ns */
};

/* The flags; -1 to run, or the exit status. */
static inline int timer_bench_flags(struct timer_bench *b, int argc, char **argv, const char *what)
{
    b->n = 1000000;
    b->per_ms = 1000;
    struct flag flags[] = {
        {"timers", "timers to arm and fire", &b->n, 1, 100000000, .words = NULL},
        {"per-ms", "timers sharing each 1 ms step of deadline", &b->per_ms, 1, 100000000,
         .words = NULL},
    };
    return PARSE_FLAGS(argc, argv, what, flags);
}

/* Timer i's delay in ms: 1 ms more every per_ms timers, as libuv's benchmark. */
static inline uint64_t timer_bench_delay_ms(const struct timer_bench *b, uint64_t i)
{
    return i / b->per_ms + 1;
}

static inline void timer_bench_mark(struct timer_bench *b, int phase)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
    b->cpu[phase] = (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
    b->wall[phase] = cl_now_ns();
}

/* The JSON line; libuv is the peer's version string, or NULL. */
static inline void timer_bench_print(const struct timer_bench *b, const char *program,
                                     const char *libuv)
{
    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "program", program);
    if (libuv != NULL)
        cl_json_str(&j, "libuv", libuv);
    cl_json_uint(&j, "timers", b->n);
    cl_json_uint(&j, "per_ms", b->per_ms);
    cl_json_real(&j, "total_s", cl_seconds(b->wall[DONE] - b->wall[ARMING]));
    cl_json_real(&j, "init_s", cl_seconds(b->wall[RUNNING] - b->wall[ARMING]));
    cl_json_real(&j, "dispatch_s", cl_seconds(b->wall[CLEANING] - b->wall[RUNNING]));
    cl_json_real(&j, "cleanup_s", cl_seconds(b->wall[DONE] - b->wall[CLEANING]));
    cl_json_real(&j, "init_cpu_ns", (double)(b->cpu[RUNNING] - b->cpu[ARMING]) / (double)b->n);
    cl_json_real(&j, "dispatch_cpu_ns",
                 (double)(b->cpu[CLEANING] - b->cpu[RUNNING]) / (double)b->n);
    cl_json_end(&j);
}

#endif
