/* uv-timers: libuv's million_timers benchmark (test/benchmark-million-timers.c),
 * the peer of loop-timers (timers.c): the same flags, phases and JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "cl_exit.h"
#include "timers.h"

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

static void check(int rc, const char *call)
{
    if (rc != 0)
        cl_die(__FILE__, __LINE__, call, -rc);
}

int main(int argc, char **argv)
{
    struct timer_bench b;
    int rc = timer_bench_flags(
        &b, argc, argv,
        "N one-shot timers on libuv: its million_timers benchmark. Prints one JSON line.");
    if (rc >= 0)
        return rc;
    uv_timer_t *timers = cl_xcalloc(b.n, sizeof *timers);
    uv_loop_t *loop = uv_default_loop();

    timer_bench_mark(&b, ARMING);
    for (uint64_t i = 0; i < b.n; i++) {
        check(uv_timer_init(loop, &timers[i]), "uv_timer_init");
        check(uv_timer_start(&timers[i], timer_cb, timer_bench_delay_ms(&b, i), 0),
              "uv_timer_start");
    }
    timer_bench_mark(&b, RUNNING);
    check(uv_run(loop, UV_RUN_DEFAULT), "uv_run");
    timer_bench_mark(&b, CLEANING);
    for (uint64_t i = 0; i < b.n; i++)
        uv_close((uv_handle_t *)&timers[i], close_cb);
    check(uv_run(loop, UV_RUN_DEFAULT), "uv_run");
    check(uv_loop_close(loop), "uv_loop_close");
    free(timers);
    timer_bench_mark(&b, DONE);
    if (fired != b.n || closed != b.n) {
        fprintf(stderr, "uv-timers: %llu fired and %llu closed of %llu timers\n",
                (unsigned long long)fired, (unsigned long long)closed, (unsigned long long)b.n);
        return CL_EXIT_WRONG;
    }
    timer_bench_print(&b, "uv-timers", uv_version_string());
    return CL_EXIT_OK;
}
