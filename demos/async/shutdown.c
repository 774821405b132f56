/* async, stopping a service: three workers process items (two of 1 unit, one
 * slow worker of 10), and a stop comes at 2.5 units with a timeout of 2 units.
 * cancel-cleanup drains: no new items, the current ones may finish within the
 * timeout, then only what overran is cancelled. stop-no-drain is the guides'
 * GracefulService.stop(timeout): it cancels every worker at once, mid-item, and
 * never uses its timeout. Each worker's cleanup must run exactly once. */
#include "async.h"

#define WORKERS 3
static const double item_units[WORKERS] = {1, 1, 10};
#define STOP_AT_UNITS 2.5
#define TIMEOUT_UNITS 2.0

static struct {
    bool running;
    struct cl_future *workers[WORKERS];
    uint64_t stop_at, stopped_at;
    int finished, finished_after_stop, cut, cut_needlessly;
    int cleanups[WORKERS];
} svc;

/* [snippet service-worker] */
struct worker {
    struct cl_task task;
    int id;
    uint64_t item_started; /* 0 between items */
};

static int worker_run(struct cl_task *t)
{
    struct worker *w = (struct worker *)t;
    CL_BEGIN(t);
    while (svc.running) {
        w->item_started = cl_now_ns();
        CL_SLEEP(t, ns_of(item_units[w->id])); /* process one item */
        w->item_started = 0;
        svc.finished++;
        svc.finished_after_stop += svc.stop_at != 0;
    }
    CL_FINALLY(t); /* except CancelledError / finally: clean up */
    svc.cleanups[w->id]++;
    if (w->item_started != 0) { /* cut off mid-item: could it have finished in time? */
        svc.cut++;
        uint64_t would_end = w->item_started + ns_of(item_units[w->id]);
        svc.cut_needlessly += would_end <= svc.stop_at + ns_of(TIMEOUT_UNITS);
    }
    CL_END(t);
}
/* [end service-worker] */

struct stopper {
    struct cl_task task;
    struct cl_future *wait, *all;
};

/* [snippet stop-drain] */
static int drain_run(struct cl_task *t)
{
    struct stopper *s = (struct stopper *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, ns_of(STOP_AT_UNITS));
    svc.stop_at = cl_now_ns();
    svc.running = false; /* no new items */
    s->wait =
        cl_wait_new(t->fut.loop, svc.workers, WORKERS, CL_ALL_COMPLETED, ns_of(TIMEOUT_UNITS));
    CL_AWAIT(t, s->wait); /* the current items may finish, within the timeout */
    for (int i = 0; i < WORKERS; i++)
        cl_future_cancel(svc.workers[i]); /* only those still running: they overran */
    s->all = cl_gather_new(t->fut.loop, svc.workers, WORKERS, CL_RETURN_EXCEPTIONS);
    CL_AWAIT(t, s->all); /* and their cleanup */
    svc.stopped_at = cl_now_ns();
    CL_FINALLY(t);
    cl_future_unref(s->wait);
    cl_future_unref(s->all);
    CL_END(t);
}
/* [end stop-drain] */

/* [snippet stop-no-drain] */
static int no_drain_run(struct cl_task *t)
{
    struct stopper *s = (struct stopper *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, ns_of(STOP_AT_UNITS));
    svc.stop_at = cl_now_ns();
    svc.running = false;
    for (int i = 0; i < WORKERS; i++)
        cl_future_cancel(svc.workers[i]); /* every worker, at once: mid-item */
    s->all = cl_gather_new(t->fut.loop, svc.workers, WORKERS, CL_RETURN_EXCEPTIONS);
    CL_AWAIT(t, s->all); /* "wait for all to complete with timeout": no timeout here */
    svc.stopped_at = cl_now_ns();
    CL_FINALLY(t);
    cl_future_unref(s->all);
    CL_END(t);
}
/* [end stop-no-drain] */

static void serve(struct cl_run *run, cl_task_fn *stop)
{
    struct cl_loop *loop = loop_open(run);
    svc.running = true;
    for (int i = 0; i < WORKERS; i++) {
        struct worker *w = (struct worker *)cl_task_new(loop, worker_run, sizeof *w, "worker");
        w->id = i;
        svc.workers[i] = &w->task.fut;
    }
    struct cl_task *s = cl_task_new(loop, stop, sizeof(struct stopper), "stop");
    loop_run_until(loop, &s->fut);
    cl_future_unref(&s->fut);
    for (int i = 0; i < WORKERS; i++)
        cl_future_unref(svc.workers[i]);
    loop_close(loop);
}

void run_cancel_cleanup(struct cl_run *run)
{
    serve(run, drain_run);
}

void run_stop_no_drain(struct cl_run *run)
{
    serve(run, no_drain_run);
}

static void judge_shutdown(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    bool once = true;
    for (int i = 0; i < WORKERS; i++)
        once &= svc.cleanups[i] == 1;
    double took = (double)(svc.stopped_at - svc.stop_at) / (double)unit_ns;
    res->exact = once && svc.cut_needlessly == 0;
    res->ops = WORKERS;
    cl_metric_int(res, "finished_after_stop", svc.finished_after_stop);
    cl_metric_int(res, "cut", svc.cut);
    cl_metric_int(res, "cut_needlessly", svc.cut_needlessly);
    cl_metric_real(res, "stop_units", took);
    cl_verdict(res,
               "stop with a %g-unit timeout: %d items finished, %d cut off mid-way (%d "
               "that would have finished in time); cleanup ran once each: %s; stopping took %.2f "
               "units",
               TIMEOUT_UNITS, svc.finished_after_stop, svc.cut, svc.cut_needlessly,
               once ? "yes" : "NO", took);
}

const struct family shutdown_f = {judge_shutdown};
