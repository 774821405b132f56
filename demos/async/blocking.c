/* async, blocking the loop: one blocking call in one task makes every other
 * task late, and only a lag monitor (a timer that notes how late it runs)
 * tells; the guides' "blocking detector", which times a whole await, flags a
 * plain sleep as well. These use the guides' own milliseconds, not units. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "async.h"

/* ---- blocking-call: 3 tickers every 100 ms for 1 s, a blocking call at 250 ms ---- */

#define TICKERS      3
#define TICKS        10
#define TICK_MS      100
#define BLOCK_AT_MS  250
#define LAG_EVERY_MS 100 /* the guides' monitor: every 0.1 s, warn above 0.15 s */
#define LAG_WARN_MS  150
#define MAX_SAMPLES  256

enum { ROW_BLOCKER = TICKERS, ROW_MONITOR, ROWS }; /* --trace: a row each, tickers first */

static struct {
    struct cl_trace *trace; /* NULL unless --trace */
    uint64_t origin, block_ns;
    int ticks;
    uint64_t late_max_ns;
    double blocked_ms;
    struct cl_lag_monitor mon;
    double sample_t[MAX_SAMPLES], sample_lag[MAX_SAMPLES];
    int nsamples;
} blk;

static void span(int row, enum cl_span_kind kind, uint64_t from, uint64_t to)
{
    if (blk.trace != NULL)
        cl_trace_add(&blk.trace->bufs[row], kind, from, to);
}

/* [snippet blocking-call] */
struct ticker {
    struct cl_task task;
    int id, n;
    uint64_t due, slept_at;
};

static int ticker_run(struct cl_task *t)
{
    struct ticker *k = (struct ticker *)t;
    CL_BEGIN(t);
    k->due = blk.origin;
    for (k->n = 0; k->n < TICKS; k->n++) {
        k->due += CL_MS(TICK_MS); /* a tick every 100 ms, on a fixed schedule */
        k->slept_at = cl_now_ns();
        CL_SLEEP(t, k->due > k->slept_at ? k->due - k->slept_at : 0);
        uint64_t now = cl_now_ns();
        if (now - k->due > blk.late_max_ns)
            blk.late_max_ns = now - k->due; /* how late this tick ran */
        span(k->id, CL_SPAN_WAIT, k->slept_at, now);
        blk.ticks++;
    }
    span(k->id, CL_SPAN_RUN, blk.origin, cl_now_ns());
    CL_END(t);
}

static int blocker_run(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_SLEEP(t, CL_MS(BLOCK_AT_MS));
    uint64_t from = cl_now_ns();
    cl_sleep_ns(blk.block_ns); /* time.sleep(0.3) in a coroutine: the whole loop stops */
    blk.blocked_ms = ms_since(from);
    span(ROW_BLOCKER, CL_SPAN_HOLD, from, cl_now_ns());
    CL_END(t);
}
/* [end blocking-call] */

static void on_sample(struct cl_lag_monitor *m, uint64_t due_ns, uint64_t ran_ns)
{
    (void)m;
    span(ROW_MONITOR, CL_SPAN_WAIT, due_ns, ran_ns); /* a bar as long as the lag */
    if (blk.nsamples < MAX_SAMPLES) {
        blk.sample_t[blk.nsamples] = (double)(ran_ns - blk.origin) / 1e9;
        blk.sample_lag[blk.nsamples++] = (double)(ran_ns - due_ns) / 1e6;
    }
}

/* With --trace FILE.csv, the monitor's samples also go to FILE.samples.tsv. */
static void write_samples(const char *trace)
{
    FILE *f = cl_samples_open(trace);
    if (f == NULL)
        return;
    fprintf(f, "t_s\tlag_ms\n");
    for (int i = 0; i < blk.nsamples; i++)
        fprintf(f, "%.4f\t%.3f\n", blk.sample_t[i], blk.sample_lag[i]);
    fclose(f);
}

void run_blocking_call(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    blk.trace = run->trace != NULL && run->threads >= ROWS ? run->trace : NULL;
    blk.block_ns = (uint64_t)cl_param(run, BLOCK_MS) * 1000000;
    blk.origin = cl_now_ns();
    cl_lag_start(&blk.mon, loop, CL_MS(LAG_EVERY_MS), CL_MS(LAG_WARN_MS), STDERR_FILENO);
    blk.mon.on_sample = on_sample;
    struct cl_future *futs[TICKERS + 1];
    for (int i = 0; i < TICKERS; i++) {
        struct ticker *k = (struct ticker *)cl_task_new(loop, ticker_run, sizeof *k, "ticker");
        k->id = i;
        futs[i] = &k->task.fut;
    }
    futs[TICKERS] = &cl_task_new(loop, blocker_run, sizeof(struct cl_task), "blocker")->fut;
    struct cl_future *all = cl_gather_new(loop, futs, TICKERS + 1, 0);
    loop_run_until(loop, all);
    cl_lag_stop(&blk.mon);
    for (int i = 0; i <= TICKERS; i++)
        cl_future_unref(futs[i]);
    cl_future_unref(all);
    loop_close(loop);
    if (run->opts->trace != NULL && blk.trace != NULL)
        write_samples(run->opts->trace);
}

static void judge_blocking(const struct cl_run *run, struct cl_result *res)
{
    double block_ms = (double)cl_param(run, BLOCK_MS);
    double lag_ms = (double)atomic_load(&blk.mon.max_ns) / 1e6;
    uint64_t warnings = atomic_load(&blk.mon.warnings);
    /* Seen by the monitor: a block longer than its threshold plus one interval
     * always delays a sample past the threshold. */
    bool must_warn = block_ms > LAG_WARN_MS + LAG_EVERY_MS;
    res->exact = blk.ticks == TICKERS * TICKS && (!must_warn || warnings >= 1);
    res->ops = (uint64_t)TICKERS * TICKS;
    cl_metric_real(res, "blocked_ms", blk.blocked_ms);
    cl_metric_real(res, "late_max_ms", (double)blk.late_max_ns / 1e6);
    cl_metric_real(res, "lag_max_ms", lag_ms);
    cl_metric_int(res, "lag_warnings", (long long)warnings);
    cl_verdict(res,
               "one %.0f ms blocking call made the tickers up to %.0f ms late; the lag "
               "monitor saw %.0f ms (%llu warning%s)",
               blk.blocked_ms, (double)blk.late_max_ns / 1e6, lag_ms, (unsigned long long)warnings,
               warnings == 1 ? "" : "s");
}

const struct family blocking_f = {judge_blocking};

/* ---- await-timer: the guides' detector against the lag monitor ----------------------- */

#define DETECT_MS 50 /* the guides' threshold: 0.05 s */
#define CALL_MS   100

static struct {
    bool flagged[2];      /* by the detector: the plain sleep, the blocking call */
    uint64_t warnings[2]; /* by the lag monitor, during each */
} detect;

/* [snippet await-timer] */
struct timed {
    struct cl_task task;
    bool blocking; /* time.sleep(0.1), or await asyncio.sleep(0.1) */
    uint64_t start;
};

static int timed_run(struct cl_task *t)
{
    struct timed *d = (struct timed *)t;
    CL_BEGIN(t);
    d->start = cl_now_ns();
    if (d->blocking)
        cl_sleep_ns(CL_MS(CALL_MS)); /* the loop stops */
    else
        CL_SLEEP(t, CL_MS(CALL_MS)); /* the loop runs other tasks meanwhile */
    /* the detector: "took longer than 50 ms: possible blocking call" */
    detect.flagged[d->blocking] = cl_now_ns() - d->start > CL_MS(DETECT_MS);
    CL_SLEEP(t, CL_MS(20)); /* the program goes on: the monitor samples meanwhile */
    CL_END(t);
}
/* [end await-timer] */

void run_await_timer(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    struct cl_lag_monitor mon;
    cl_lag_start(&mon, loop, CL_MS(10), CL_MS(DETECT_MS), -1);
    for (int blocking = 0; blocking < 2; blocking++) {
        uint64_t before = atomic_load(&mon.warnings);
        struct timed *d = (struct timed *)cl_task_new(loop, timed_run, sizeof *d, "timed");
        d->blocking = blocking;
        loop_run_until(loop, &d->task.fut);
        detect.warnings[blocking] = atomic_load(&mon.warnings) - before;
        cl_future_unref(&d->task.fut);
    }
    cl_lag_stop(&mon);
    loop_close(loop);
}

static void judge_await_timer(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    /* Right only if it flags the blocking call and not the sleep. */
    res->exact = detect.flagged[1] && !detect.flagged[0];
    res->ops = 2;
    cl_metric_int(res, "detector_flags", detect.flagged[0] + detect.flagged[1]);
    cl_metric_int(res, "monitor_flags", (detect.warnings[0] > 0) + (detect.warnings[1] > 0));
    cl_verdict(res,
               "the await timer flagged the blocking call: %s, a plain sleep: %s; the lag "
               "monitor flagged the blocking call: %s, the sleep: %s",
               detect.flagged[1] ? "yes" : "no", detect.flagged[0] ? "YES" : "no",
               detect.warnings[1] ? "yes" : "no", detect.warnings[0] ? "YES" : "no");
}

const struct family await_timer_f = {judge_await_timer};
