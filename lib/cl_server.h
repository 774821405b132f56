/* A small HTTP/1.1 server in two designs, with one request-handler hook.
 *
 *   CL_SERVER_THREADS  a thread per connection, blocking reads and writes (Python's
 *                      ThreadingHTTPServer): the kernel switches between them
 *   CL_SERVER_LOOP     one thread, a cl_task per connection on a cl_loop (asyncio's
 *                      start_server): the tasks switch at their awaits
 *
 * bench/server/ adds a third, on libuv, through the same pieces: cl_http for the
 * bytes, cl_server_decide and the counts for each request, cl_server_serve for the
 * life of the process.
 *
 * Every request fully read is counted, then the reply is decided: the server's
 * defaults (200, CL_HTTP_BODY, work_ns of CPU, delay_ns of waiting), then the
 * handler, which may change any field of it: another status (an error), a longer
 * delay (latency; a queue ahead of a capacity limit), more work, status 0 (drop
 * the connection without a reply), close. A reply is counted when its last byte
 * has gone to the kernel. When the server has stopped, requests = responses +
 * dropped.
 *
 * Stopping. stop_fd readable (SIGTERM through a signalfd) starts a graceful stop,
 * as Go's Server.Shutdown does: the listener closes, idle connections close, each
 * request in flight gets its reply with "Connection: close", and the run returns
 * when no connection is left, or after drain_ns (then the rest is dropped, as at
 * once with drain_ns 0). abort_fd readable (SIGINT) drops everything at once.
 * duration_ns, when set, starts the graceful stop by itself. */
#ifndef CL_SERVER_H
#define CL_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cl_http.h"

enum cl_server_design { CL_SERVER_THREADS, CL_SERVER_LOOP };

/* What the server did. Atomics, so that they may live in shared memory that a
 * parent process reads while the server runs; each is only ever increased,
 * except open. */
struct cl_server_counts {
    _Atomic uint64_t accepted;  /* connections accepted */
    _Atomic uint64_t requests;  /* requests read whole (refused ones are in bad) */
    _Atomic uint64_t responses; /* replies whose last byte went to the kernel */
    _Atomic uint64_t dropped;   /* requests read and never answered: the handler's
                                   status 0, a client gone, a stop past its drain */
    _Atomic uint64_t bad;       /* malformed or too large: refused (400, 413, 431,
                                   501, 505) and closed */
    _Atomic uint64_t refused;   /* connections closed at once: no thread for them */
    _Atomic uint64_t open;      /* connections open now */
    _Atomic uint64_t peak_open; /* the most open at once */
};

/* The hook: called once per request read, on the thread that serves it (its
 * connection's thread, or the loop's), with the reply's defaults filled in.
 * In the threads design it runs on many threads at once. */
typedef void cl_server_handler(void *arg, const struct cl_http_req *req,
                               struct cl_http_reply *reply);

struct cl_server_opts {
    enum cl_server_design design;
    int listen_fd;              /* listening, non-blocking; the run closes it */
    int stop_fd;                /* readable: stop gracefully (-1: none) */
    int abort_fd;               /* readable: stop at once (-1: none) */
    uint64_t duration_ns;       /* stop gracefully after this long (0: never) */
    uint64_t drain_ns;          /* a graceful stop's deadline (0: drop at once) */
    uint64_t max_connections;   /* open at once; more wait in the listen backlog */
    uint64_t delay_ns, work_ns; /* every reply's defaults */
    cl_server_handler *handler; /* NULL: the defaults */
    void *handler_arg;
    struct cl_server_counts *counts; /* where to count (zeroed by the caller) */
};

/* Run the design until it stops. 0, or an errno value if it could not start
 * (then nothing is left open but listen_fd, still the caller's). */
int cl_server_run(const struct cl_server_opts *o);

/* ------------------------------------------------------------------------------
 * The pieces each design uses. */

/* A request was read: count it and decide its reply (defaults, then the hook). */
void cl_server_decide(const struct cl_server_opts *o, const struct cl_http_req *req,
                      struct cl_http_reply *reply);

/* Count one more of a counter: a relaxed atomic add. */
static inline void cl_server_count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* A connection opened / closed: open and peak_open. */
void cl_server_opened(struct cl_server_counts *c);
void cl_server_closed(struct cl_server_counts *c);

/* Keep the CPU busy for ns, in slices, returning early once *stop is set. */
void cl_server_work(uint64_t ns, const _Atomic bool *stop);

/* ------------------------------------------------------------------------------
 * The life of a server process, for a program of its own (bench/server/httpd) or
 * a demo's server mode: */

/* Raise RLIMIT_NOFILE's soft limit to its hard limit; the limit now in force. */
uint64_t cl_server_raise_nofile(void);

/* The most connections a server may be asked for: the file limit less 64 (the
 * server's own files, the loop's, stdio). */
uint64_t cl_server_max_connections(uint64_t nofile);

/* A socket listening on 127.0.0.1 at a free port (0 asks the kernel for one),
 * non-blocking and close-on-exec; -1 with errno set. *port: the port it got. */
int cl_server_listen(uint16_t *port);

/* What cl_server_serve adds to the options. */
struct cl_serve {
    struct cl_server_opts opts; /* listen_fd, stop_fd, abort_fd and counts are filled in */
    const char *name;           /* the design's name, for the last line */
    int (*run)(const struct cl_server_opts *o); /* cl_server_run, or another design's */
};

/* The whole process: dies with its parent (PR_SET_PDEATHSIG, as SIGTERM), blocks
 * SIGTERM and SIGINT and reads them through signalfds (SIGTERM: stop gracefully;
 * SIGINT: at once), listens on 127.0.0.1 at a free port and prints
 * `listening 127.0.0.1:PORT` as its first line, runs, then prints one JSON line of
 * its counts, its CPU time (cpu_s, user and system) and its context switches
 * (voluntary_cs, involuntary_cs). Call it before any other thread exists (the
 * signals must be blocked in all of them). The exit status: 0, 130 after SIGINT,
 * 1 if it could not start (one line on stderr). max_connections must already be
 * checked against cl_server_max_connections. */
int cl_server_serve(struct cl_serve *s);

#endif
