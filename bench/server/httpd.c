/* httpd: the small HTTP/1.1 server of lib/cl_server in one of its designs, for
 * wrk (bench/async.toml) and for the programs that start it as a child.
 *
 *   httpd --design threads|loop|libuv [--delay-ms N] [--work-us N] [--duration S]
 *         [--drain-ms N] [--connections N]
 *
 * Its first line is `listening 127.0.0.1:PORT`; its last, when it stops, one JSON
 * object of its counts, its CPU time and its context switches. SIGTERM (or its
 * parent's death, or --duration) stops it gracefully, SIGINT at once (exit 130). */
#include <stdio.h>

#include "args.h"
#include "conclab.h"
#include "uv_server.h"

static const char *const designs[] = {"threads", "loop", "libuv", NULL};
enum { THREADS, LOOP, LIBUV };

int main(int argc, char **argv)
{
    uint64_t design = LOOP, delay_ms = 0, work_us = 0, duration = 0, drain_ms = 1000, conns = 0;
    struct flag flags[] = {
        {"design", "thread per connection, lib's loop (cl_task), or libuv", &design,
         .words = designs},
        {"delay-ms", "each request's wait before its reply", &delay_ms, 0, 10000, .words = NULL},
        {"work-us", "each request's CPU work before its reply", &work_us, 0, 1000000,
         .words = NULL},
        {"duration", "stop gracefully after this many seconds", &duration, 1, 36000, .decimals = 1,
         .unset = "none: until SIGTERM"},
        {"drain-ms", "how long a graceful stop lets requests in flight finish", &drain_ms, 0, 60000,
         .words = NULL},
        {"connections", "connections open at once (more wait to be accepted)", &conns, 1,
         UINT32_MAX, .unset = "the open-file limit less 64"},
    };
    int rc = PARSE_FLAGS(argc, argv,
                         "A small HTTP/1.1 server on 127.0.0.1: keep-alive, a fixed reply.\n"
                         "First line: listening 127.0.0.1:PORT; last: its counts, as JSON.\n"
                         "SIGTERM stops it gracefully (exit 0), SIGINT at once (exit 130).",
                         flags);
    if (rc >= 0)
        return rc;
    if (design == LIBUV && uv_server_run == NULL) {
        fprintf(stderr, "httpd: --design libuv: not built here (no libuv, or a sanitizer build)\n");
        return CL_EXIT_USAGE;
    }
    uint64_t nofile = cl_server_raise_nofile();
    uint64_t most = cl_server_max_connections(nofile);
    if (flags[5].given && conns > most) {
        fprintf(stderr,
                "httpd: --connections: expected at most %llu (the open-file limit %llu less 64), "
                "got '%llu'\n",
                (unsigned long long)most, (unsigned long long)nofile, (unsigned long long)conns);
        return CL_EXIT_USAGE;
    }
    struct cl_serve s = {
        .opts =
            {
                .design = design == THREADS ? CL_SERVER_THREADS : CL_SERVER_LOOP,
                .duration_ns = duration * (CL_NS_PER_S / 10),
                .drain_ns = CL_MS(drain_ms),
                .max_connections = flags[5].given ? conns : most,
                .delay_ns = CL_MS(delay_ms),
                .work_ns = work_us * 1000,
            },
        .name = designs[design],
        .run = design == LIBUV ? uv_server_run : cl_server_run,
    };
    return cl_server_serve(&s);
}
