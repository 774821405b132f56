/* pipeline-stop: a producer feeds a bounded queue (4 items) that two consumers
 * drain into the backend, slower than the producer, so the producer spends its
 * time blocked in put. At 40% of the run the operator closes the queue: the
 * blocked put returns CL_Q_CLOSED with the item still in the producer's hands,
 * which hands it back; the consumers drain what is queued, then see the close.
 * Cancelling the producer instead (the guides' task.cancel()) would end it
 * inside put, its item in neither place.
 *
 * The referee: the backend read every item put, each exactly once, and the one
 * item taken and not put is the one the producer handed back. */
#include <stdio.h>
#include <stdlib.h>

#include "patterns.h"

#define QUEUE_CAP 4

static struct {
    struct backend b;
    struct cl_queue q;
    uint64_t close_at_ns;
    _Atomic uint64_t taken, put, handed_back, delivered, other;
    _Atomic bool blocked_at_close; /* the producer was inside put when the queue closed */
} pl;

static void operator(struct cl_worker *w)
{
    cl_status(w, "waits to stop the pipeline");
    while (cl_now_ns() < pl.close_at_ns) {
        cl_sleep_ns(CL_MS(5));
        cl_tick(w);
    }
    struct cl_queue_snapshot s = cl_queue_peek(&pl.q);
    atomic_store(&pl.blocked_at_close, s.putters_waiting == 1);
    cl_queue_close(&pl.q);
    cl_status(w, NULL);
    cl_tick(w);
}

/* [snippet pipeline-stop] */
static void producer(struct cl_worker *w)
{
    for (uint64_t item = 1;; item++) {
        atomic_fetch_add(&pl.taken, 1); /* out of the source: it must end up somewhere */
        cl_status(w, "waits for room in the queue");
        enum cl_qstatus st = cl_queue_put(&pl.q, (void *)(uintptr_t)item);
        cl_status(w, NULL);
        if (st == CL_Q_CLOSED) {
            atomic_store(&pl.handed_back, item); /* still ours: back to the source */
            return;
        }
        atomic_fetch_add(&pl.put, 1);
        cl_tick(w);
    }
}

static void consumer(struct cl_worker *w)
{
    struct client c;
    client_init(&c, pl.b.port);
    void *item;
    while (cl_queue_get(&pl.q, &item) == CL_Q_OK) { /* the close ends it once drained */
        char target[64];
        snprintf(target, sizeof target, "/item?tag=%llu", (unsigned long long)(uintptr_t)item);
        int status = 0;
        enum call_result r = client_get(&c, target, &status);
        atomic_fetch_add(r == CALL_OK && status == 200 ? &pl.delivered : &pl.other, 1);
        cl_tick(w);
    }
    client_close(&c);
}
/* [end pipeline-stop] */

static void pipeline_worker(struct cl_worker *w)
{
    (w->id == 0 ? operator : w->id == 1 ? producer : consumer)(w);
}

void run_pipeline(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    if (cl_queue_init(&pl.q, QUEUE_CAP) != 0)
        cl_fatal("patterns: cl_queue_init");
    pl.taken = pl.put = pl.handed_back = pl.delivered = pl.other = 0;
    pl.blocked_at_close = false;
    backend_start(run, &pl.b, &f);
    backend_go(&pl.b);
    pl.close_at_ns = cl_now_ns() + (uint64_t)cl_param(run, DURATION_MS) * 1000000 * 2 / 5;
    cl_run_workers(run, pipeline_worker);
    backend_stop(&pl.b);
}

void judge_pipeline(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    const struct shared *sh = pl.b.sh;
    uint64_t n = arrivals_seen(sh), put = atomic_load(&pl.put), dup = 0, missing = 0;
    uint8_t *seen = cl_xcalloc(put + 2, 1);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t tag = sh->arrivals[i].tag;
        if (tag >= 1 && tag <= put)
            dup += seen[tag]++ > 0;
        else
            missing++; /* a tag never put: counted as wrong below */
    }
    for (uint64_t t = 1; t <= put; t++)
        missing += seen[t] == 0;
    free(seen);
    uint64_t back = atomic_load(&pl.handed_back), taken = atomic_load(&pl.taken);
    res->exact = missing == 0 && dup == 0 && atomic_load(&pl.other) == 0 && back == put + 1 &&
                 taken == put + 1 && atomic_load(&pl.blocked_at_close) && answered_all(sh);
    res->ops = put;
    cl_metric_int(res, "taken", (long long)taken);
    cl_metric_int(res, "put", (long long)put);
    cl_metric_int(res, "server_read", (long long)n);
    cl_metric_int(res, "handed_back", (long long)back);
    cl_metric_int(res, "lost", (long long)(taken - n - (back != 0)));
    cl_metric_int(res, "blocked_at_close", atomic_load(&pl.blocked_at_close));
    cl_verdict(res,
               "the producer took %llu items and put %llu; the backend read %llu, %llu twice, "
               "%llu missing; the producer was %s put when the queue closed and handed item "
               "%llu back",
               (unsigned long long)taken, (unsigned long long)put, (unsigned long long)n,
               (unsigned long long)dup, (unsigned long long)missing,
               atomic_load(&pl.blocked_at_close) ? "blocked in" : "outside",
               (unsigned long long)back);
}

void pipeline_free(void)
{
    if (pl.q.ring != NULL)
        cl_queue_destroy(&pl.q);
    pl.q.ring = NULL;
    backend_free(&pl.b);
}
