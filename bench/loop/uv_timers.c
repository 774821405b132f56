/* uv-timers: libuv's million_timers benchmark (test/benchmark-million-timers.c),
 * the peer of loop-timers (timers.c): the same flags, phases and JSON line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "args.h"
#include "cl_check.h"
#include "cl_exit.h"
#include "cl_json.h"
#include "cl_time.h"

static uint64_t fired, closed;

static void timer_cb(uv_timer_t *t)
{
    (void)t;
    fired++;
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
    closed++;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void check(int rc, const char *call)
{
    if (rc != 0)
        cl_die(__FILE__, __LINE__, call, -rc);
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000, per_ms = 1000;
    struct flag flags[] = {
        {"timers", "timers to arm and fire", &n, 1, 100000000, NULL},
        {"per-ms", "timers sharing each 1 ms step of deadline", &per_ms, 1, 100000000, NULL},
    };
    int rc = parse_flags(argc, argv, "N one-shot timers on libuv: its million_timers benchmark.",
                         flags, sizeof flags / sizeof flags[0]);
    if (rc != 0)
        return rc == 1 ? CL_EXIT_OK : CL_EXIT_USAGE;

    uv_timer_t *timers = cl_xcalloc(n, sizeof *timers);
    uv_loop_t *loop = uv_default_loop();

    uint64_t before_all = uv_hrtime(), cpu0 = cpu_ns();
    uint64_t timeout_ms = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (i % per_ms == 0)
            timeout_ms++;
        check(uv_timer_init(loop, &timers[i]), "uv_timer_init");
        check(uv_timer_start(&timers[i], timer_cb, timeout_ms, 0), "uv_timer_start");
    }
    uint64_t before_run = uv_hrtime(), cpu1 = cpu_ns();
    check(uv_run(loop, UV_RUN_DEFAULT), "uv_run");
    uint64_t after_run = uv_hrtime(), cpu2 = cpu_ns();
    for (uint64_t i = 0; i < n; i++)
        uv_close((uv_handle_t *)&timers[i], close_cb);
    check(uv_run(loop, UV_RUN_DEFAULT), "uv_run");
    uint64_t after_all = uv_hrtime();
    check(uv_loop_close(loop), "uv_loop_close");
    free(timers);
    if (fired != n || closed != n) {
        fprintf(stderr, "uv-timers: %llu fired and %llu closed of %llu timers\n",
                (unsigned long long)fired, (unsigned long long)closed, (unsigned long long)n);
        return CL_EXIT_WRONG;
    }

    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "program", "uv-timers");
    cl_json_str(&j, "libuv", uv_version_string());
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
