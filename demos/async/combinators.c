/* async, the combinators: wait's three modes, as_completed, gather's errors, a
 * task group, wait_for, shield, and stopping a service (drained, or the
 * guides' way, which cuts its workers off mid-item). */
#include "async.h"

/* ---- a job: works for a while, then returns 10 x id or fails ---------------- */

struct record {
    int cleanups;    /* times its cleanup ran: exactly once, on every path */
    int err;         /* how it ended */
    double ended_at; /* units since the run's start */
};

static struct record records[8];
static uint64_t t0;

struct job {
    struct cl_task task;
    int id;
    double units;         /* its work, a sleep */
    double cleanup_units; /* a cleanup that awaits too */
    bool fails;           /* raise EIO after the work */
};

static int job_run(struct cl_task *t)
{
    struct job *j = (struct job *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, ns_of(j->units));
    if (j->fails)
        CL_RAISE(t, EIO, "the job failed");
    CL_RETURN(t, (intptr_t)10 * j->id);
    CL_FINALLY(t); /* finally: runs once, however the body ends */
    if (j->cleanup_units > 0)
        CL_SLEEP(t, ns_of(j->cleanup_units));
    records[j->id].cleanups++;
    records[j->id].err = t->fut.err;
    records[j->id].ended_at = units_since(t0);
    CL_END(t);
}

static struct job *job(struct cl_loop *loop, int id, double units, bool fails)
{
    struct job *j = (struct job *)cl_task_new(loop, job_run, sizeof *j, "job");
    j->id = id;
    j->units = units;
    j->fails = fails;
    return j;
}

static void start(void)
{
    memset(records, 0, sizeof records);
    t0 = cl_now_ns();
}

static bool near(double x, double want)
{
    return x >= want && x < want + 0.5; /* never early; late by less than half a unit */
}

/* ---- wait-modes: jobs of 1, 2 (fails) and 3 units ---------------------------------- */

static struct {
    int done[3], pending[3];
    double at[3];
} waited;

void run_wait_modes(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    start();
    struct cl_future *futs[3] = {&job(loop, 1, 1, false)->task.fut,
                                 &job(loop, 2, 2, true)->task.fut,
                                 &job(loop, 3, 3, false)->task.fut};
    /* [snippet wait-modes] */
    static const enum cl_wait_mode modes[] = {CL_FIRST_COMPLETED, CL_FIRST_EXCEPTION,
                                              CL_ALL_COMPLETED};
    struct cl_future *pending[3];
    size_t npending = 3;
    memcpy(pending, futs, sizeof pending);
    for (int m = 0; m < 3; m++) { /* done, pending = await asyncio.wait(pending, mode) */
        struct cl_future *w = cl_wait_new(loop, pending, npending, modes[m], CL_FOREVER);
        loop_run_until(loop, w);
        size_t still = 0;
        for (size_t i = 0; i < npending; i++)
            if (!pending[i]->done)
                pending[still++] = pending[i];
        waited.done[m] = (int)(npending - still);
        waited.pending[m] = (int)still;
        waited.at[m] = units_since(t0);
        npending = still;
        cl_future_unref(w);
    }
    /* [end wait-modes] */
    for (int i = 0; i < 3; i++)
        cl_future_unref(futs[i]);
    loop_close(loop);
}

static void judge_wait_modes(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = true;
    for (int m = 0; m < 3; m++)
        res->exact &=
            waited.done[m] == 1 && waited.pending[m] == 2 - m && near(waited.at[m], m + 1);
    res->ops = 3;
    cl_verdict(res,
               "FIRST_COMPLETED: %d done, %d pending at %.2f units; FIRST_EXCEPTION: %d, %d "
               "at %.2f; ALL_COMPLETED: %d, %d at %.2f",
               waited.done[0], waited.pending[0], waited.at[0], waited.done[1], waited.pending[1],
               waited.at[1], waited.done[2], waited.pending[2], waited.at[2]);
}

const struct family wait_modes_f = {judge_wait_modes};

/* ---- as-completed: fetches of 3, 1 and 2 units ------------------------------------------ */

static struct {
    intptr_t order[3];
    int n;
} came;

/* [snippet as-completed] */
struct reader {
    struct cl_task task;
    struct cl_as_completed *ac;
    intptr_t index; /* which fetch finished next */
    int i;
};

static int reader_run(struct cl_task *t)
{
    struct reader *r = (struct reader *)t;
    CL_BEGIN(t);
    for (r->i = 0; r->i < 3; r->i++) { /* for coro in asyncio.as_completed(fetches): */
        CL_NEXT_COMPLETED(t, r->ac, r->index);
        came.order[came.n++] = r->index;
    }
    CL_END(t);
}
/* [end as-completed] */

void run_as_completed(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    start();
    struct cl_future *futs[3] = {&job(loop, 1, 3, false)->task.fut,
                                 &job(loop, 2, 1, false)->task.fut,
                                 &job(loop, 3, 2, false)->task.fut};
    struct cl_as_completed *ac = cl_as_completed_new(loop, futs, 3, CL_FOREVER);
    struct reader *r = (struct reader *)cl_task_new(loop, reader_run, sizeof *r, "reader");
    r->ac = ac;
    loop_run_until(loop, &r->task.fut);
    cl_future_unref(&r->task.fut);
    cl_future_unref(cl_as_completed_future(ac));
    for (int i = 0; i < 3; i++)
        cl_future_unref(futs[i]);
    loop_close(loop);
}

static void judge_as_completed(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = came.n == 3 && came.order[0] == 1 && came.order[1] == 2 && came.order[2] == 0;
    res->ops = 3;
    cl_verdict(res,
               "fetches of 3, 1 and 2 units came back as url%ld, url%ld, url%ld: in the "
               "order they finished",
               (long)came.order[0] + 1, (long)came.order[1] + 1, (long)came.order[2] + 1);
}

const struct family as_completed_f = {judge_as_completed};

/* ---- gather-errors: the second of three fails ---------------------------------------------- */

static struct {
    intptr_t kept[3]; /* return_exceptions: each outcome (a value, or -errno) */
    double kept_at;
    int first_err;    /* without it: the gather's own error */
    double failed_at; /* ... when it failed */
    double third_at;  /* ... when the third job ended anyway */
} gerr;

void run_gather_errors(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    for (int pass = 0; pass < 2; pass++) {
        start();
        struct cl_future *futs[3] = {&job(loop, 1, 1, false)->task.fut,
                                     &job(loop, 2, 2, true)->task.fut,
                                     &job(loop, 3, 3, false)->task.fut};
        /* [snippet gather-errors] */
        unsigned flags = pass == 0 ? CL_RETURN_EXCEPTIONS : 0; /* return_exceptions=True? */
        struct cl_future *all = cl_gather_new(loop, futs, 3, flags);
        loop_run_until(loop, all);
        if (pass == 0) { /* every outcome kept, on its own future */
            for (int i = 0; i < 3; i++)
                gerr.kept[i] = futs[i]->err != 0 ? -futs[i]->err : futs[i]->value;
            gerr.kept_at = units_since(t0);
        } else { /* the first error, at once; the other jobs run on */
            gerr.first_err = all->err;
            gerr.failed_at = units_since(t0);
            loop_run_until(loop, futs[2]);
            gerr.third_at = records[3].ended_at;
        }
        /* [end gather-errors] */
        cl_future_unref(all);
        for (int i = 0; i < 3; i++)
            cl_future_unref(futs[i]);
    }
    loop_close(loop);
}

static void judge_gather_errors(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    bool kept =
        gerr.kept[0] == 10 && gerr.kept[1] == -EIO && gerr.kept[2] == 30 && near(gerr.kept_at, 3);
    bool first = gerr.first_err == EIO && near(gerr.failed_at, 2) && near(gerr.third_at, 3);
    res->exact = kept && first;
    res->ops = 6;
    cl_verdict(res,
               "return_exceptions: [%ld, %s, %ld] at %.2f units; without: %s at %.2f units, "
               "while the third ran on to %.2f",
               (long)gerr.kept[0], gerr.kept[1] == -EIO ? "EIO" : "?", (long)gerr.kept[2],
               gerr.kept_at, gerr.first_err == EIO ? "EIO" : "no error", gerr.failed_at,
               gerr.third_at);
}

const struct family gather_errors_f = {judge_gather_errors};

/* ---- taskgroup: workers of 0.1, 0.2 and 0.3 units; then the second fails ------------------- */

static struct {
    int parent_err[2];
    intptr_t values[3];
    size_t left; /* tasks not finished once the group is done */
} grouped;

/* [snippet taskgroup] */
struct parent {
    struct cl_task task;
    struct cl_group *group;
    int failing; /* the worker that raises, or 0 */
    int i;
};

static int parent_run(struct cl_task *t)
{
    struct parent *p = (struct parent *)t;
    CL_BEGIN(t);
    p->group = cl_group_new(t->fut.loop, t); /* async with asyncio.TaskGroup() as tg: */
    for (p->i = 1; p->i <= 3; p->i++) {
        struct job *j = (struct job *)cl_group_spawn(p->group, job_run, sizeof *j, "worker");
        j->id = p->i;
        j->units = 0.1 * p->i;
        j->fails = p->i == p->failing;
    }
    CL_FINALLY(t);                        /* leaving the block, on every path: */
    CL_AWAIT(t, cl_group_wait(p->group)); /* wait for all; the first error is ours */
    CL_END(t);
}
/* [end taskgroup] */

void run_taskgroup(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    for (int pass = 0; pass < 2; pass++) {
        start();
        struct parent *p = (struct parent *)cl_task_new(loop, parent_run, sizeof *p, "parent");
        p->failing = pass == 0 ? 0 : 2;
        loop_run_until(loop, &p->task.fut);
        grouped.parent_err[pass] = p->task.fut.err;
        grouped.left += cl_task_pending(loop);
        if (pass == 0)
            for (int i = 0; i < 3; i++)
                grouped.values[i] = records[i + 1].err == 0 ? 10 * (i + 1) : -1;
        cl_future_unref(cl_group_wait(p->group));
        cl_future_unref(&p->task.fut);
    }
    loop_close(loop);
}

static void judge_taskgroup(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    bool all = grouped.parent_err[0] == 0 && grouped.values[2] == 30;
    bool failed = grouped.parent_err[1] == EIO && records[1].err == 0 && records[2].err == EIO &&
                  records[3].err == ECANCELED;
    bool once = records[1].cleanups == 1 && records[2].cleanups == 1 && records[3].cleanups == 1;
    res->exact = all && failed && once && grouped.left == 0;
    res->ops = 6;
    cl_verdict(res,
               "all three: %s; worker 2 fails: worker 1 %s, worker 3 %s, the group raises "
               "%s; %zu tasks left behind",
               all ? "done" : "NOT done", records[1].err == 0 ? "done" : "not done",
               records[3].err == ECANCELED ? "cancelled" : "not cancelled",
               grouped.parent_err[1] == EIO ? "EIO" : "nothing", grouped.left);
}

const struct family taskgroup_f = {judge_taskgroup};

/* ---- wait-for: a 10-unit operation, 2 units allowed ---------------------------------------- */

static struct {
    int err;
    double at;
} timed_out;

void run_wait_for(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    start();
    struct job *op = job(loop, 1, 10, false);
    op->cleanup_units = 0.1; /* its cleanup takes a while, and wait_for waits for it */
    /* [snippet wait-for] */
    struct cl_future *w = cl_wait_for_new(loop, &op->task.fut, 2 * unit_ns); /* timeout=2 */
    loop_run_until(loop, w);
    timed_out.err = w->err; /* ETIMEDOUT: the operation was cancelled and cleaned up */
    /* [end wait-for] */
    timed_out.at = units_since(t0);
    cl_future_unref(w);
    cl_future_unref(&op->task.fut);
    loop_close(loop);
}

static void judge_wait_for(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = timed_out.err == ETIMEDOUT && records[1].err == ECANCELED &&
                 records[1].cleanups == 1 && near(timed_out.at, 2.1) &&
                 records[1].ended_at <= timed_out.at;
    res->ops = 1;
    cl_verdict(res,
               "wait_for gave up %s at %.2f units, after the operation's cleanup (once, at "
               "%.2f): it was cancelled, not left running",
               timed_out.err == ETIMEDOUT ? "(ETIMEDOUT)" : "(no timeout!)", timed_out.at,
               records[1].ended_at);
}

const struct family wait_for_f = {judge_wait_for};

/* ---- shield: a 2-unit critical operation, its caller cancelled at 0.5 -------------------------
 */

static struct {
    int caller_err;
    double caller_at;
} shielded;

/* [snippet shield] */
struct caller {
    struct cl_task task;
    struct cl_future *critical, *shield;
};

static int caller_run(struct cl_task *t)
{
    struct caller *c = (struct caller *)t;
    CL_BEGIN(t);
    c->shield = cl_shield_new(t->fut.loop, c->critical);
    CL_AWAIT(t, c->shield); /* await asyncio.shield(critical()) */
    CL_FINALLY(t);
    shielded.caller_err = t->fut.err; /* cancelled: the shield was, the operation was not */
    shielded.caller_at = units_since(t0);
    cl_future_unref(c->shield);
    CL_END(t);
}
/* [end shield] */

struct canceller {
    struct cl_timer timer;
    struct cl_task *target;
};

static void cancel_cb(struct cl_timer *t)
{
    cl_task_cancel(((struct canceller *)t)->target);
}

void run_shield(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    start();
    struct job *critical = job(loop, 1, 2, false);
    struct caller *c = (struct caller *)cl_task_new(loop, caller_run, sizeof *c, "caller");
    c->critical = &critical->task.fut;
    struct canceller k = {{.cb = cancel_cb}, &c->task};
    cl_timer_start(loop, &k.timer, unit_ns / 2);
    loop_run_until(loop, &critical->task.fut);
    cl_future_unref(&c->task.fut);
    cl_future_unref(&critical->task.fut);
    loop_close(loop);
}

static void judge_shield(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = shielded.caller_err == ECANCELED && near(shielded.caller_at, 0.5) &&
                 records[1].err == 0 && near(records[1].ended_at, 2);
    res->ops = 2;
    cl_verdict(res,
               "the caller was cancelled at %.2f units; the shielded operation finished at "
               "%.2f units %s",
               shielded.caller_at, records[1].ended_at,
               records[1].err == 0 ? "with its result" : "WITHOUT its result");
}

const struct family shield_f = {judge_shield};
