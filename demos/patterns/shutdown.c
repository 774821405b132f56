/* Stopping a server under load: SIGTERM to the backend at 40% of the run, which
 * the backend reads from a signalfd (cl_server_serve), never in a handler.
 *
 *   graceful     stop accepting, close idle connections, answer each request in
 *                flight with "Connection: close", exit once every request read
 *                has its response, or at the drain deadline
 *   event-first  the guides' order: the stop flag first, and nothing drains; the
 *                requests in flight are cut off
 *
 * Worker 0 is the operator who sends the signal; the others are clients, each
 * on one keep-alive connection. What the clients see is counted apart: refused
 * connects (nobody listens any more), and requests that got no reply: the
 * server's dropped count says how many of those it had read (cut off in
 * flight); the rest went to an idle keep-alive connection it had closed.
 *
 * --load wrk (the benchmark's load): wrk's --threads connections replace the
 * clients, each sending its next request as soon as the last is answered. wrk
 * reports replies and socket errors; it cannot tell a refused connect from a
 * closed connection (it connects without blocking, and both show up as read
 * errors), and it reconnects at once, so its error count is large and says
 * only that the server went away. wrk must be installed when this program is
 * built (PATTERNS_WRK); the operator stops it at the run's end. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patterns.h"

/* [snippet stop-order] */
const struct stop_order stop_graceful = {CL_MS(1000)}, /* answer what is in flight, then exit */
    stop_event_first = {0}; /* the flag first: whatever is in flight is dropped */
/* [end stop-order] */

enum outcome { ANSWERED, REFUSED, NO_REPLY, ERROR, NOUTCOMES };

#define EVENTS_MAX 65536 /* the clients' outcomes kept for --trace; more are counted only */

static struct {
    struct backend b;
    uint64_t t0, end_ns, term_at_ns, drain_ns;
    uint64_t term_ns, exit_ns;        /* SIGTERM sent, the backend reaped: since t0 */
    _Atomic uint64_t seen[NOUTCOMES]; /* what the clients saw, by outcome */
    uint64_t wrk_errors;              /* --load wrk: its socket errors of every kind */
    _Atomic uint32_t nevents;
    struct event {
        uint64_t t_ns; /* since t0 */
        enum outcome what;
    } events[EVENTS_MAX];
    int connections; /* --load wrk: wrk's connections (0: the clients make the load) */
    pid_t wrk;
    int wrk_out; /* wrk's stdout and stderr */
} sd;

static void count(enum outcome what)
{
    atomic_fetch_add(&sd.seen[what], 1);
    uint32_t i = atomic_fetch_add_explicit(&sd.nevents, 1, memory_order_relaxed);
    if (i < EVENTS_MAX)
        sd.events[i] = (struct event){cl_now_ns() - sd.t0, what};
}

#ifdef PATTERNS_WRK
static void wrk_start(struct cl_run *run)
{
    int out[2];
    CL_SYS(pipe2(out, O_CLOEXEC));
    posix_spawn_file_actions_t fa;
    CL_PT(posix_spawn_file_actions_init(&fa));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO));
    char conns[24], secs[24], url[64];
    snprintf(conns, sizeof conns, "%d", sd.connections);
    /* whole seconds past the run's end: the operator stops it at end_ns */
    snprintf(secs, sizeof secs, "%llus", (unsigned long long)cl_param(run, DURATION_MS) / 1000 + 2);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/item?tag=1", (unsigned)sd.b.port);
    char *argv[] = {"wrk", "-t1", "-c", conns, "-d", secs, url, NULL};
    int rc = cl_child_spawn(&sd.wrk, PATTERNS_WRK, &fa, argv);
    CL_PT(posix_spawn_file_actions_destroy(&fa));
    close(out[1]);
    if (rc != 0)
        cl_refuse(run, "posix_spawn", rc, "wrk (%s)", PATTERNS_WRK);
    sd.wrk_out = out[0];
}
#endif

/* The number after label in wrk's report (0 when the report has no such line). */
static long long number_after(const char *report, const char *label)
{
    const char *p = strstr(report, label);
    return p == NULL ? 0 : strtoll(p + strlen(label), NULL, 10);
}

/* Stop wrk at the run's end (SIGINT: it reports as if its time were up; SIGKILL
 * if it has not ended 5 s later) and take its counts as the clients' own. */
static void wrk_stop(struct cl_worker *w)
{
    while (cl_now_ns() < sd.end_ns) {
        cl_sleep_ns(CL_MS(5));
        cl_tick(w);
    }
    CL_SYS(kill(sd.wrk, SIGINT));
    uint64_t deadline = cl_now_ns() + CL_MS(5000);
    char report[8192];
    size_t len = 0;
    while (cl_now_ns() < deadline) {
        struct pollfd p = {.fd = sd.wrk_out, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            ssize_t got = read(sd.wrk_out, report + len, sizeof report - 1 - len);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0 || (len += (size_t)got) == sizeof report - 1)
                break;
        }
        cl_tick(w);
    }
    report[len] = '\0';
    close(sd.wrk_out);
    if (cl_now_ns() >= deadline)
        kill(sd.wrk, SIGKILL);
    int status = cl_child_wait(sd.wrk);
    /* "  48 requests in 1.00s, ...": the number that starts its line */
    const char *line = strstr(report, " requests in ");
    while (line != NULL && line > report && line[-1] != '\n')
        line--;
    if (line == NULL || status != 0)
        cl_fatal("patterns: wrk exited %d without its report:\n%s", status, report);
    long long replies = strtoll(line, NULL, 10),
              non2xx = number_after(report, "Non-2xx or 3xx responses:");
    sd.seen[ANSWERED] = (uint64_t)(replies - non2xx);
    sd.seen[ERROR] = (uint64_t)non2xx;
    const char *errors = strstr(report, "Socket errors:"); /* absent when there were none */
    if (errors != NULL)
        sd.wrk_errors = (uint64_t)(number_after(errors, "connect") + number_after(errors, "read") +
                                   number_after(errors, "write") + number_after(errors, "timeout"));
}

static void operator(struct cl_worker *w)
{
    cl_status(w, "waits to send SIGTERM");
    while (cl_now_ns() < sd.term_at_ns) {
        cl_sleep_ns(CL_MS(5));
        cl_tick(w);
    }
    cl_status(w, "waits for the backend to exit");
    sd.term_ns = cl_now_ns() - sd.t0;
    backend_stop(&sd.b); /* SIGTERM, then reap: b.stop_ns is the drain */
    sd.exit_ns = sd.term_ns + sd.b.stop_ns;
    cl_status(w, sd.connections > 0 ? "waits for wrk's report" : NULL);
    cl_tick(w);
    if (sd.connections > 0)
        wrk_stop(w);
    cl_status(w, NULL);
}

static void client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, sd.b.port);
    while (cl_now_ns() < sd.end_ns) {
        int status = 0;
        switch (client_get(&c, "/item?tag=1", &status)) {
        case CALL_OK:
            count(status == 200 ? ANSWERED : ERROR);
            break;
        case CALL_REFUSED:
            count(REFUSED);
            cl_sleep_ns(CL_MS(100)); /* as a client would before it tries again */
            break;
        case CALL_RESET:
        case CALL_LOST:
            count(NO_REPLY);
            break;
        }
        cl_tick(w);
        if (w->id % 2 == 0)
            cl_sleep_ns(CL_MS(60)); /* half the clients think: their connection idles */
    }
    client_close(&c);
}

static void shutdown_worker(struct cl_worker *w)
{
    (w->id == 0 ? operator : client)(w);
}

void shutdown_prepare(struct cl_run *run)
{
    sd.connections = cl_param(run, LOAD) == LOAD_WRK ? run->threads : 0;
    run->threads = sd.connections > 0 ? 1 : run->threads + 1;
}

void run_shutdown(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    f.drain_ns = ((const struct stop_order *)run->variant->data)->drain_ns;
    sd.drain_ns = f.drain_ns;
    for (int k = 0; k < NOUTCOMES; k++)
        sd.seen[k] = 0;
    sd.wrk_errors = 0;
    sd.nevents = 0;
    backend_start(run, &sd.b, &f);
    backend_go(&sd.b);
    sd.t0 = cl_now_ns();
    uint64_t d = (uint64_t)cl_param(run, DURATION_MS) * 1000000;
    sd.end_ns = sd.t0 + d;
    sd.term_at_ns = sd.t0 + d * 2 / 5;
    if (sd.connections > 0) {
#ifdef PATTERNS_WRK
        wrk_start(run);
#else
        cl_refuse(run, "wrk", ENOENT, "--load wrk: wrk was not installed when this was built");
#endif
    }
    cl_run_workers(run, shutdown_worker);
}

/* With --trace FILE: FILE.samples.tsv, what the clients saw so far every 10 ms
 * (running counts of each outcome), and 1 in `draining` from SIGTERM until the
 * backend exited. */
void shutdown_write_samples(const char *trace)
{
    FILE *f = cl_samples_open(trace);
    if (f == NULL)
        return;
    uint32_t n = atomic_load(&sd.nevents);
    n = n < EVENTS_MAX ? n : EVENTS_MAX;
    uint64_t slot = CL_MS(10), slots = (sd.end_ns - sd.t0) / slot + 2;
    uint64_t(*in_slot)[NOUTCOMES] = cl_xcalloc(slots, sizeof *in_slot);
    for (uint32_t i = 0; i < n; i++) { /* counted in the slot that ends after it */
        uint64_t s = sd.events[i].t_ns / slot + 1;
        in_slot[s < slots ? s : slots - 1][sd.events[i].what]++;
    }
    uint64_t so_far[NOUTCOMES] = {0};
    fprintf(f, "t_s\tanswered\trefused\tno_reply\terrors\tdraining\n");
    for (uint64_t s = 0; s < slots; s++) {
        uint64_t t = s * slot;
        for (int k = 0; k < NOUTCOMES; k++)
            so_far[k] += in_slot[s][k];
        fprintf(f, "%.3f\t%llu\t%llu\t%llu\t%llu\t%d\n", (double)t / 1e9,
                (unsigned long long)so_far[ANSWERED], (unsigned long long)so_far[REFUSED],
                (unsigned long long)so_far[NO_REPLY], (unsigned long long)so_far[ERROR],
                t + slot > sd.term_ns && t <= sd.exit_ns);
    }
    free(in_slot);
    fclose(f);
}

void judge_shutdown(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = sd.b.sh;
    uint64_t read = atomic_load(&sh->counts.requests), written = atomic_load(&sh->counts.responses);
    uint64_t dropped = atomic_load(&sh->counts.dropped);
    double drain_ms = (double)sd.b.stop_ns / 1e6, latency_ms = (double)cl_param(run, LATENCY_MS);
    uint64_t no_reply = atomic_load(&sd.seen[NO_REPLY]);
    uint64_t idle = no_reply > dropped ? no_reply - dropped : 0; /* never read by the server */
    /* Exact: the backend exited 0 having answered every request it read, every
     * answer reached its client, no request it read went unanswered, and the drain took at most the
     * longest request plus 500 ms (the benchmark measures it against 100 ms). */
    res->exact = sd.b.exit_status == 0 && read == written && dropped == 0 &&
                 atomic_load(&sd.seen[ANSWERED]) == written && atomic_load(&sd.seen[ERROR]) == 0 &&
                 drain_ms <= 2 * latency_ms + 500;
    res->ops = read;
    cl_metric_int(res, "server_requests", (long long)read);
    cl_metric_int(res, "server_responses", (long long)written);
    cl_metric_int(res, "server_dropped", (long long)dropped);
    cl_metric_int(res, "completed", (long long)atomic_load(&sd.seen[ANSWERED]));
    cl_metric_real(res, "drain_ms", drain_ms);
    double term_ms = (double)(sd.term_at_ns - sd.t0) / 1e6;
    if (sd.connections > 0) {
        cl_metric_int(res, "wrk_errors", (long long)sd.wrk_errors);
        cl_verdict(res,
                   "SIGTERM at %.0f ms: the backend read %llu requests and answered %llu (%llu "
                   "dropped), exiting %.0f ms later; wrk's %d connections got %llu replies, then "
                   "%llu socket errors once nobody listened",
                   term_ms, (unsigned long long)read, (unsigned long long)written,
                   (unsigned long long)dropped, drain_ms, sd.connections,
                   (unsigned long long)atomic_load(&sd.seen[ANSWERED]),
                   (unsigned long long)sd.wrk_errors);
        return;
    }
    cl_metric_int(res, "refused", (long long)atomic_load(&sd.seen[REFUSED]));
    cl_metric_int(res, "no_reply", (long long)no_reply);
    cl_metric_int(res, "idle_resets", (long long)idle);
    cl_verdict(res,
               "SIGTERM at %.0f ms: the backend read %llu requests and answered %llu (%llu "
               "dropped), exiting %.0f ms later; clients saw %llu refused connects and %llu "
               "idle connections closed under them",
               term_ms, (unsigned long long)read, (unsigned long long)written,
               (unsigned long long)dropped, drain_ms,
               (unsigned long long)atomic_load(&sd.seen[REFUSED]), (unsigned long long)idle);
}

void shutdown_free(void)
{
    backend_free(&sd.b);
}
