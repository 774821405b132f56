/* loop-timers: libuv's million_timers benchmark (test/benchmark-million-timers.c)
 * on cl_loop. N timers, the deadline rising by 1 ms every --per-ms timers (1000,
 * as libuv's), armed, then dispatched by running the loop until all have fired,
 * then cleaned up. uv-timers (uv_timers.c) is the same program on libuv.
 *
 * The dispatch phase's wall time is mostly waiting: the last deadline is
 * N / per-ms ms away (libuv's published "9.15 s dispatch" for 10 M timers is the
 * 10 s span less its 0.85 s of arming). The cost is the CPU time the process
 * used meanwhile, per timer: dispatch_cpu_ns. --per-ms N puts every deadline at
 * 1 ms, which makes the dispatch all CPU. */
#include <stdio.h>
#include <stdlib.h>

#include "cl_exit.h"
#include "cl_loop.h"
#include "timers.h"

static uint64_t fired;

static void timer_cb(struct cl_timer *t)
{
    (void)t;
    fired++;
}

int main(int argc, char **argv)
{
    struct timer_bench b;
    int rc = timer_bench_flags(&b, argc, argv,
                               "N one-shot timers on cl_loop, in the shape of libuv's "
                               "million_timers benchmark. Prints one JSON line.");
    if (rc >= 0)
        return rc;
    struct cl_timer *timers = cl_xcalloc(b.n, sizeof *timers);
    struct cl_loop *loop = cl_loop_new(NULL);
    if (loop == NULL) {
        perror("loop-timers: cl_loop_new");
        return CL_EXIT_REFUSED;
    }

    timer_bench_mark(&b, ARMING);
    for (uint64_t i = 0; i < b.n; i++) {
        timers[i].cb = timer_cb;
        cl_timer_start(loop, &timers[i], CL_MS(timer_bench_delay_ms(&b, i)));
    }
    timer_bench_mark(&b, RUNNING);
    cl_loop_run(loop);
    timer_bench_mark(&b, CLEANING);
    cl_loop_free(loop); /* the timers are plain memory: nothing to close one by one */
    free(timers);
    timer_bench_mark(&b, DONE);
    if (fired != b.n) {
        fprintf(stderr, "loop-timers: %llu of %llu timers fired\n", (unsigned long long)fired,
                (unsigned long long)b.n);
        return CL_EXIT_WRONG;
    }
    timer_bench_print(&b, "loop-timers", NULL);
    return CL_EXIT_OK;
}
