/* loop-timers: libuv's million_timers benchmark (test/benchmark-million-timers.c)
 * on cl_loop. N timers, the deadline rising by 1 ms every --per-ms timers (1000,
 * as libuv's), armed, then dispatched by running the loop until all have fired,
 * then cleaned up. uv-timers.c is the same program on libuv.
 *
 * The dispatch phase's wall time is mostly waiting: the last deadline is
 * N / per-ms ms away (libuv's published "9.15 s dispatch" for 10 M timers is the
 * 10 s span less its 0.85 s of arming). The cost is the CPU time the process
 * used meanwhile, per timer: dispatch_cpu_ns. --per-ms N puts every deadline at
 * 1 ms, which makes the dispatch all CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "args.h"
#include "cl_check.h"
#include "cl_exit.h"
#include "cl_json.h"
#include "cl_loop.h"
#include "cl_time.h"

static uint64_t fired;

static void timer_cb(struct cl_timer *t)
{
    (void)t;
    fired++;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000, per_ms = 1000;
    struct flag flags[] = {
        {"timers", "timers to arm and fire", &n, 1, 100000000, NULL},
        {"per-ms", "timers sharing each 1 ms step of deadline", &per_ms, 1, 100000000, NULL},
    };
    int rc = parse_flags(argc, argv,
                         "N one-shot timers on cl_loop, in the shape of libuv's "
                         "million_timers benchmark.",
                         flags, sizeof flags / sizeof flags[0]);
    if (rc != 0)
        return rc == 1 ? CL_EXIT_OK : CL_EXIT_USAGE;

    struct cl_timer *timers = cl_xcalloc(n, sizeof *timers);
    struct cl_loop *loop = cl_loop_new(NULL);
    if (loop == NULL) {
        perror("loop-timers: cl_loop_new");
        exit(CL_EXIT_REFUSED);
    }

    uint64_t before_all = cl_now_ns(), cpu0 = cpu_ns();
    uint64_t timeout_ms = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (i % per_ms == 0)
            timeout_ms++;
        timers[i].cb = timer_cb;
        cl_timer_start(loop, &timers[i], CL_MS(timeout_ms));
    }
    uint64_t before_run = cl_now_ns(), cpu1 = cpu_ns();
    cl_loop_run(loop);
    uint64_t after_run = cl_now_ns(), cpu2 = cpu_ns();
    cl_loop_free(loop); /* the timers are plain memory: nothing to close one by one */
    free(timers);
    uint64_t after_all = cl_now_ns();
    if (fired != n) {
        fprintf(stderr, "loop-timers: %llu of %llu timers fired\n", (unsigned long long)fired,
                (unsigned long long)n);
        return CL_EXIT_WRONG;
    }

    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "program", "loop-timers");
    cl_json_uint(&j, "timers", n);
    cl_json_uint(&j, "per_ms", per_ms);
    cl_json_real(&j, "total_s", cl_seconds(after_all - before_all));
    cl_json_real(&j, "init_s", cl_seconds(before_run - before_all));
    cl_json_real(&j, "dispatch_s", cl_seconds(after_run - before_run));
    cl_json_real(&j, "cleanup_s", cl_seconds(after_all - after_run));
    cl_json_real(&j, "init_cpu_ns", (double)(cpu1 - cpu0) / (double)n);
    cl_json_real(&j, "dispatch_cpu_ns", (double)(cpu2 - cpu1) / (double)n);
    cl_json_end(&j);
    return CL_EXIT_OK;
}
