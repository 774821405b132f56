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
 * flight); the rest went to an idle keep-alive connection it had closed. */
#include <signal.h>
#include <stdio.h>

#include "patterns.h"

/* [snippet stop-order] */
const struct stop_order stop_graceful = {CL_MS(1000)}, /* answer what is in flight, then exit */
    stop_event_first = {0}; /* the flag first: whatever is in flight is dropped */
/* [end stop-order] */

static struct {
    struct backend b;
    uint64_t t0, end_ns, term_at_ns, drain_ns;
    _Atomic uint64_t completed, refused, no_reply, errors;
} sd;

static void operator(struct cl_worker *w)
{
    cl_status(w, "waits to send SIGTERM");
    while (cl_now_ns() < sd.term_at_ns) {
        cl_sleep_ns(CL_MS(5));
        cl_tick(w);
    }
    cl_status(w, "waits for the backend to exit");
    backend_stop(&sd.b); /* SIGTERM, then reap: b.stop_ns is the drain */
    cl_status(w, NULL);
    cl_tick(w);
}

static void client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, sd.b.port);
    while (cl_now_ns() < sd.end_ns) {
        int status = 0;
        switch (client_get(&c, "/item?tag=1", &status)) {
        case CALL_OK:
            atomic_fetch_add(status == 200 ? &sd.completed : &sd.errors, 1);
            break;
        case CALL_REFUSED:
            atomic_fetch_add(&sd.refused, 1);
            cl_sleep_ns(CL_MS(20)); /* as a client would before it tries again */
            break;
        case CALL_RESET:
        case CALL_LOST:
            atomic_fetch_add(&sd.no_reply, 1);
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

void run_shutdown(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    f.drain_ns = ((const struct stop_order *)run->variant->data)->drain_ns;
    sd.drain_ns = f.drain_ns;
    sd.completed = sd.refused = sd.no_reply = sd.errors = 0;
    backend_start(run, &sd.b, &f);
    backend_go(&sd.b);
    sd.t0 = cl_now_ns();
    uint64_t d = (uint64_t)cl_param(run, DURATION_MS) * 1000000;
    sd.end_ns = sd.t0 + d;
    sd.term_at_ns = sd.t0 + d * 2 / 5;
    cl_run_workers(run, shutdown_worker);
}

void judge_shutdown(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = sd.b.sh;
    uint64_t read = atomic_load(&sh->counts.requests), written = atomic_load(&sh->counts.responses);
    uint64_t dropped = atomic_load(&sh->counts.dropped);
    double drain_ms = (double)sd.b.stop_ns / 1e6, latency_ms = (double)cl_param(run, LATENCY_MS);
    uint64_t no_reply = atomic_load(&sd.no_reply);
    uint64_t idle = no_reply > dropped ? no_reply - dropped : 0; /* never read by the server */
    /* Exact: the backend exited 0 having answered every request it read, every
     * answer reached its client, no request it read went unanswered, and the drain took at most the
     * longest request plus 500 ms (the benchmark measures it against 100 ms). */
    res->exact = sd.b.exit_status == 0 && read == written && dropped == 0 &&
                 atomic_load(&sd.completed) == written && atomic_load(&sd.errors) == 0 &&
                 drain_ms <= 2 * latency_ms + 500;
    res->ops = read;
    cl_metric_int(res, "server_requests", (long long)read);
    cl_metric_int(res, "server_responses", (long long)written);
    cl_metric_int(res, "server_dropped", (long long)dropped);
    cl_metric_int(res, "completed", (long long)atomic_load(&sd.completed));
    cl_metric_int(res, "refused", (long long)atomic_load(&sd.refused));
    cl_metric_int(res, "no_reply", (long long)no_reply);
    cl_metric_int(res, "idle_resets", (long long)idle);
    cl_metric_real(res, "drain_ms", drain_ms);
    cl_verdict(res,
               "SIGTERM at %.0f ms: the backend read %llu requests and answered %llu (%llu "
               "dropped), exiting %.0f ms later; clients saw %llu refused connects and %llu "
               "idle connections closed under them",
               (double)(sd.term_at_ns - sd.t0) / 1e6, (unsigned long long)read,
               (unsigned long long)written, (unsigned long long)dropped, drain_ms,
               (unsigned long long)atomic_load(&sd.refused), (unsigned long long)idle);
}

void shutdown_free(void)
{
    backend_free(&sd.b);
}
