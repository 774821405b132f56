/* prodcons: producers and consumers around a bounded buffer, how to stop them,
 * and why the buffer must be bounded.
 *
 * The first --producers threads produce ids 0 .. items-1 between them, the rest
 * consume. Every variant is a queue design: a put and a get (and a close). The
 * producer and consumer loops below are the same for all of them (priority's
 * producers, which stop at --duration, have a loop of their own), and so is the
 * check: every id made must be consumed exactly once. The last producer to
 * finish stops the consumers the --shutdown way: close the queue, one poison
 * pill per consumer, or one pill that each consumer passes along. The designs
 * are in queues.c, backpressure.c and priority.c, the memory sampler in
 * sampler.c. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "prodcons.h"

enum { SHUT_CLOSE, SHUT_PILLS, SHUT_PASS_ALONG }; /* --shutdown */
enum kind { QUEUE, BACKPRESSURE, PRIORITY }; /* small items fast, memory under load, or order */

/* Run-wide settings, fixed by setup before the threads start. */
int nprod, ncons;
size_t capacity;
uint64_t nitems;
static int shutdown_mode;
static uint64_t consume_ns, produce_ns;

/* The check: how many times each id was consumed, and item latencies for a
 * sample of ids (one in LAT_EVERY, so the clock costs nothing measurable). */
#define LAT_EVERY 64
static _Atomic uint8_t *seen;
static _Atomic uint64_t *put_at; /* when sampled ids were put */
static uint64_t *latency_ns;     /* their put-to-get time, one slot per sampled id */
static _Atomic uint64_t stray;   /* ids no producer made */
static _Atomic int producers_left, consumers_left;

static const struct design *design_of(const struct cl_run *run)
{
    return run->variant->data;
}

/* ------------------------------------------------------ the shared loops */

/* [snippet producer] */
static void shut_down(struct cl_worker *w, const struct design *d);

static void produce(struct cl_worker *w, const struct design *d)
{
    for (uint64_t id = (uint64_t)w->id; id < nitems; id += (uint64_t)nprod) {
        if (produce_ns > 0)
            cl_busy_ns(produce_ns); /* making the item */
        if (id % LAT_EVERY == 0)
            atomic_store_explicit(&put_at[id / LAT_EVERY], cl_now_ns(), memory_order_relaxed);
        d->put(w, id);
        cl_tick(w);
    }
    if (atomic_fetch_sub(&producers_left, 1) == 1) /* the last producer out */
        shut_down(w, d);
}
/* [end producer] */

/* [snippet shutdown] */
static void shut_down(struct cl_worker *w, const struct design *d)
{
    cl_status(w, "shutting down the consumers");
    switch (shutdown_mode) {
    case SHUT_CLOSE: /* no more puts; gets drain what is left, then see "closed" */
        d->close();
        break;
    case SHUT_PILLS: /* one pill per consumer: each eats one and stops */
        for (int c = 0; c < ncons; c++)
            d->put(w, PILL);
        break;
    case SHUT_PASS_ALONG: /* one pill; each consumer puts it back for the next */
        d->put(w, PILL);
        break;
    }
    if (d->done != NULL) { /* the lib queue counts unfinished items, as Python's does */
        cl_status(w, "waits in join for every task_done");
        cl_queue_join(&queue); /* returns: every get, pills included, is task_done'd */
    }
    cl_status(w, NULL);
}
/* [end shutdown] */

/* [snippet consumer] */
static void consume(struct cl_worker *w, const struct design *d)
{
    uint64_t id;
    while (d->get(w, &id)) { /* false: closed and drained */
        if (id == PILL) {
            if (d->done != NULL)
                d->done(); /* a pill is an item too: forget this and join hangs */
            if (shutdown_mode == SHUT_PASS_ALONG && atomic_fetch_sub(&consumers_left, 1) > 1)
                d->put(w, PILL); /* pass it on to the next consumer */
            return;
        }
        if (id < nitems)
            atomic_fetch_add_explicit(&seen[id], 1, memory_order_relaxed); /* the check */
        else
            atomic_fetch_add_explicit(&stray, 1, memory_order_relaxed);
        if (id < nitems && id % LAT_EVERY == 0)
            latency_ns[id / LAT_EVERY] =
                cl_now_ns() - atomic_load_explicit(&put_at[id / LAT_EVERY], memory_order_relaxed);
        if (consume_ns > 0)
            cl_busy_ns(consume_ns); /* processing the item */
        if (d->done != NULL)
            d->done();
        cl_tick(w);
    }
}
/* [end consumer] */

void stamp_put(uint64_t id)
{
    if (id % LAT_EVERY == 0)
        atomic_store_explicit(&put_at[id / LAT_EVERY], cl_now_ns(), memory_order_relaxed);
}

void producer_finished(struct cl_worker *w)
{
    if (atomic_fetch_sub(&producers_left, 1) == 1)
        shut_down(w, design_of(w->run));
}

void consume_items(struct cl_worker *w)
{
    consume(w, design_of(w->run));
}

static void prodcons(struct cl_worker *w)
{
    const struct design *d = design_of(w->run);
    if (w->id < nprod)
        produce(w, d);
    else
        consume(w, d);
}

/* ----------------------------------------------------------- the variants */

/* Sizes come from each design (prodcons.h), through prepare. */
static const struct cl_variant variants[] = {
    {"condvar", CL_CORRECT, "lib's bounded queue: a mutex and two condition variables",
     .kind = QUEUE, .worker = prodcons, .data = &condvar_design},
    {"one-cond-signal", CL_HANGS,
     "one condition for full and empty, signal not broadcast: a wakeup is lost, all sleep",
     .kind = QUEUE, .worker = prodcons, .data = &one_cond_design},
    {"semaphore", CL_CORRECT, "two counting semaphores (free and used slots) and a mutex",
     .kind = QUEUE, .worker = prodcons, .data = &semaphore_design},
    {"polling", CL_CORRECT, "trylock and look again, never sleep: correct, burns CPU",
     .kind = QUEUE, .worker = prodcons, .data = &polling_design},
    {"spsc-ring", CL_CORRECT, "lock-free ring, one producer and one consumer, acquire/release",
     .kind = QUEUE, .worker = prodcons, .data = &ring_design},
    {"pipe", CL_CORRECT, "the kernel's pipe as the bounded buffer (one page at least)",
     .kind = QUEUE, .worker = prodcons, .data = &pipe_design},
    {"unbounded", CL_CORRECT, "fast producer, slow consumer, a linked list: memory grows",
     .kind = BACKPRESSURE, .worker = prodcons, .data = &unbounded_design},
    {"bounded", CL_CORRECT, "the same through a bounded queue: the producer blocks, memory stays",
     .kind = BACKPRESSURE, .worker = prodcons, .data = &bounded_design},
    {"watermarks", CL_CORRECT, "pause the producer at 80% full, resume at 30%: hysteresis",
     .kind = BACKPRESSURE, .worker = prodcons, .data = &watermarks_design},
    {"priority", CL_CORRECT, "a heap, lowest number first; producers outrun it for --duration",
     .kind = PRIORITY, .worker = prioritised, .data = &priority_design},
};

static const char *const shutdown_names[] = {"close", "pill-per-consumer", "pass-along", NULL};

static const struct cl_param params[] = {
    [PRODUCERS] = {"producers", "producer threads", .min = 1, .max = 64, .unset = "per variant"},
    [CONSUMERS] = {"consumers", "consumer threads", .min = 1, .max = 64, .unset = "per variant"},
    [CAPACITY] = {"capacity", "buffer slots (items)", .min = 1, .max = 65536,
                  .unset = "per variant"},
    [ITEMS] = {"items", "items to produce, in total", .min = 1, .max = 100000000,
               .unset = "per variant; queue designs: 200,000, or 1,000 per slot if fewer; "
                        "priority: 1,000,000 at most, as many as --duration allows"},
    [CONSUME_US] = {"consume-us", "busy time to process one item, in microseconds", .max = 100000,
                    .unset = "per variant"},
    [PRODUCE_US] = {"produce-us", "busy time to make one item, in microseconds", .max = 100000,
                    .unset = "per variant"},
    [SHUTDOWN] = {"shutdown", "how the consumers are stopped", .def = SHUT_CLOSE,
                  .choices = shutdown_names},
    [DURATION] = {"duration", "priority: the producers stop after this many ms", .def = 500,
                  .min = 1, .max = 60000},
};

/* ------------------------------------------------------------- the hooks */

/* A flag the command line did not give takes the design's default. */
static void fill_in(struct cl_run *run, int flag, long long design_default)
{
    if (!cl_param_given(run, (size_t)flag))
        run->param[flag] = design_default;
}

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct design *d = design_of(run);
    if (run->opts->threads != 0) {
        snprintf(err, errlen,
                 "prodcons: --threads: not used here (allowed: --producers and --consumers)");
        return 1;
    }
    if (run->opts->iters != 0) {
        snprintf(err, errlen, "prodcons: --iters: not used here (allowed: --items)");
        return 1;
    }
    fill_in(run, PRODUCERS, d->producers);
    fill_in(run, CONSUMERS, d->consumers);
    fill_in(run, CAPACITY, (long long)d->capacity);
    /* A tiny buffer means a thread switch per item or two: keep such runs short */
    long long items = (long long)d->items, per_slot = cl_param(run, CAPACITY) * ITEMS_PER_SLOT;
    fill_in(run, ITEMS,
            run->variant->kind == QUEUE && d->items == QUEUE_ITEMS && per_slot < items ? per_slot
                                                                                       : items);
    fill_in(run, CONSUME_US, d->consume_us);
    fill_in(run, PRODUCE_US, d->produce_us);
    if (d->spsc && (cl_param(run, PRODUCERS) != 1 || cl_param(run, CONSUMERS) != 1)) {
        snprintf(err, errlen,
                 "prodcons: --producers/--consumers: %s takes one producer and one consumer "
                 "(allowed: 1 and 1; got %lld and %lld)",
                 run->variant->name, cl_param(run, PRODUCERS), cl_param(run, CONSUMERS));
        return 1;
    }
    run->threads = (int)(cl_param(run, PRODUCERS) + cl_param(run, CONSUMERS));
    run->iters = (uint64_t)cl_param(run, ITEMS);
    return 0;
}

static struct rusage usage_at_start;

static void setup(const struct cl_run *run)
{
    const struct design *d = design_of(run);
    nprod = (int)cl_param(run, PRODUCERS);
    ncons = (int)cl_param(run, CONSUMERS);
    capacity = (size_t)cl_param(run, CAPACITY);
    nitems = (uint64_t)cl_param(run, ITEMS);
    consume_ns = (uint64_t)cl_param(run, CONSUME_US) * 1000;
    produce_ns = (uint64_t)cl_param(run, PRODUCE_US) * 1000;
    shutdown_mode = (int)cl_param(run, SHUTDOWN);
    seen = cl_xcalloc(nitems, sizeof *seen);
    put_at = cl_xcalloc(nitems / LAT_EVERY + 1, sizeof *put_at);
    latency_ns = cl_xcalloc(nitems / LAT_EVERY + 1, sizeof *latency_ns);
    atomic_store(&stray, 0);
    atomic_store(&producers_left, nprod);
    atomic_store(&consumers_left, ncons);
    for (int i = 0; i < run->threads; i++) /* a producer's share, for the watchdog's lines */
        run->workers[i].iters =
            i < nprod ? (nitems + (uint64_t)(nprod - 1 - i)) / (uint64_t)nprod : nitems;
    d->init();
    if (d->fill != NULL && consume_ns > 0)
        sampler_start(d->fill);
    CL_SYS(getrusage(RUSAGE_SELF, &usage_at_start));
}

static double cpu_seconds(const struct rusage *r)
{
    return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
           (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    const struct design *d = design_of(run);
    struct rusage now;
    CL_SYS(getrusage(RUSAGE_SELF, &now));
    if (sampler_running())
        sampler_stop();
    uint64_t lost = 0, dup = 0, bad = atomic_load(&stray), made = 0;
    size_t nlat = 0;
    for (uint64_t i = 0; i < nitems; i++) {
        uint8_t n = atomic_load_explicit(&seen[i], memory_order_relaxed);
        if (d->made != NULL && i / (uint64_t)nprod >= d->made((int)(i % (uint64_t)nprod))) {
            bad += n; /* never made, yet consumed */
            continue;
        }
        made++;
        lost += n == 0;
        dup += n > 1 ? (uint64_t)n - 1 : 0;
        if (i % LAT_EVERY == 0) /* the sampled ids that were made */
            latency_ns[nlat++] = latency_ns[i / LAT_EVERY];
    }
    cl_sort_ns(latency_ns, nlat);
    double cpu = cpu_seconds(&now) - cpu_seconds(&usage_at_start);
    double per_s = (double)made / run->wall_s;

    res->exact = lost == 0 && dup == 0 && bad == 0;
    res->ops = made;
    cl_metric_real(res, "items_per_s", per_s);
    cl_metric_int(res, "lost", (long long)lost);
    uint64_t doubled = dup + bad;
    cl_metric_int(res, "duplicated", (long long)doubled);
    size_t p50 = nlat / 2, p99 = nlat * 99 / 100;
    cl_metric_real(res, "p50_us", (double)latency_ns[p50] / 1e3);
    cl_metric_real(res, "p99_us", (double)latency_ns[p99] / 1e3);
    cl_metric_real(res, "cpu_s", cpu);
    cl_metric_real(res, "cpu_per_wall", cpu / run->wall_s);
    cl_metric_int(res, "peak_rss_kib", peak_rss_kib());
    if (d->fill != NULL && consume_ns > 0) {
        cl_metric_int(res, "rss_growth_kib", sampler_rss_growth_kib());
        if (run->opts->trace != NULL)
            sampler_write(run->opts->trace);
    }

    char a[32];
    if (res->exact) {
        cl_verdict(res, "all %s items consumed exactly once, %.3g items/s, CPU %.2f s for %.2f s",
                   cl_fmt_count(made, a), per_s, cpu, run->wall_s);
    } else {
        char b[32], c[32];
        cl_verdict(res, "WRONG: %s of %s items lost, %s duplicated or stray", cl_fmt_count(lost, a),
                   cl_fmt_count(made, b), cl_fmt_count(doubled, c));
    }
    if (d->metrics != NULL)
        d->metrics(res);
}

static void teardown(const struct cl_run *run)
{
    const struct design *d = design_of(run);
    if (d->fini != NULL)
        d->fini();
    free(seen);
    free(put_at);
    free(latency_ns);
    sampler_free();
}

static void report(int fd, const struct cl_run *run)
{
    const struct design *d = design_of(run);
    if (d->report != NULL)
        d->report(fd, run);
}

static const struct cl_chapter prodcons_chapter = {
    .name = "prodcons",
    .summary = "producer-consumer: bounded buffers, shutdown and backpressure",
    .look_for = "every item must be consumed exactly once (an operation is one item, "
                "whatever the threads); watch items/s per queue design, CPU against wall "
                "time, and memory with and without a bound",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 2,
    .pin_threads = true, /* the SPSC ring and polling spin: a core per thread */
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    return cl_main(&prodcons_chapter, argc, argv);
}
