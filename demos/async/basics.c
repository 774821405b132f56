/* async, the basics: gather, many sleepers on one thread (and on threads), when
 * a created task first runs, and the loop's timers. */
#include <stdlib.h>
#include <string.h>

#include "async.h"

/* ---- gather ---------------------------------------------------------------- */

static struct {
    double units; /* makespan */
    intptr_t value[3];
    int err;
} gathered;

/* [snippet gather] */
struct fetch {
    struct cl_task task; /* first: the task's own state */
    int id;              /* what must survive the await lives in the frame */
    double units;
};

static int fetch_run(struct cl_task *t)
{
    struct fetch *f = (struct fetch *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, ns_of(f->units));       /* await asyncio.sleep(units) */
    CL_RETURN(t, (intptr_t)10 * f->id); /* return id * 10 */
    CL_END(t);
}

void run_gather(struct cl_run *run)
{
    static const double units[] = {2, 1, 3};
    struct cl_loop *loop = loop_open(run);
    struct cl_future *futs[3];
    uint64_t t0 = cl_now_ns();
    for (int i = 0; i < 3; i++) {
        struct fetch *f = (struct fetch *)cl_task_new(loop, fetch_run, sizeof *f, "fetch");
        f->id = i + 1;
        f->units = units[i];
        futs[i] = &f->task.fut;
    }
    struct cl_future *all = cl_gather_new(loop, futs, 3, 0); /* asyncio.gather(*tasks) */
    loop_run_until(loop, all);
    gathered.units = units_since(t0);
    /* [end gather] */
    gathered.err = all->err;
    for (int i = 0; i < 3; i++) {
        gathered.value[i] = futs[i]->value;
        cl_future_unref(futs[i]);
    }
    cl_future_unref(all);
    loop_close(loop);
}

static void judge_gather(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    bool values = gathered.err == 0 && gathered.value[0] == 10 && gathered.value[1] == 20 &&
                  gathered.value[2] == 30;
    res->exact = values && gathered.units >= 3 && gathered.units < 6;
    res->ops = 3;
    cl_metric_real(res, "makespan_units", gathered.units);
    cl_metric_real(res, "overhead_ms", (gathered.units - 3) * (double)unit_ns / 1e6);
    cl_verdict(res,
               "tasks of 2, 1 and 3 units together took %.2f units: the longest, not the "
               "sum (6)%s",
               gathered.units, values ? "" : "; the results are wrong");
}

const struct family gather_f = {judge_gather};

/* ---- many-waiters ------------------------------------------------------------- */

static struct {
    uint64_t n, woke, early;
    uint64_t late_max_ns;
    uint64_t rss0, rss_half; /* before the first is made; while all of them sleep */
    uint64_t vm0, vm_half;   /* the same for the address space */
    double wall_s, create_s;
    bool threads;
} waiters;

/* [snippet many-waiters] */
struct sleeper {
    struct cl_task task;
    uint64_t due; /* when it should wake */
};

static int sleeper_run(struct cl_task *t)
{
    struct sleeper *s = (struct sleeper *)t;
    CL_BEGIN(t);
    s->due = cl_now_ns() + unit_ns;
    CL_SLEEP(t, unit_ns); /* await asyncio.sleep(1) */
    uint64_t now = cl_now_ns();
    waiters.early += now < s->due;
    if (now >= s->due && now - s->due > waiters.late_max_ns)
        waiters.late_max_ns = now - s->due;
    waiters.woke++;
    CL_END(t);
}
/* [end many-waiters] */

struct probe {
    struct cl_timer timer;
};

static void probe_rss(struct cl_timer *t)
{
    (void)t;
    waiters.rss_half = rss_bytes();
    waiters.vm_half = vm_bytes();
}

static void on_loop(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    struct probe probe = {{.cb = probe_rss}};
    uint64_t t0 = cl_now_ns();
    waiters.rss0 = rss_bytes();
    waiters.vm0 = vm_bytes();
    for (uint64_t i = 0; i < waiters.n; i++) /* fire and forget: the loop keeps them */
        cl_future_unref(&cl_task_new(loop, sleeper_run, sizeof(struct sleeper), "sleeper")->fut);
    waiters.create_s = cl_seconds(cl_now_ns() - t0);
    cl_timer_start(loop, &probe.timer, unit_ns / 2); /* halfway: every task sleeps */
    cl_loop_run(loop);
    waiters.wall_s = cl_seconds(cl_now_ns() - t0);
    loop_close(loop);
}

/* The same on threads: one each, a blocking sleep each. lib's gate opens once
 * every thread exists; worker 0 measures the memory halfway through the sleep. */
static _Atomic uint64_t *late_ns; /* per thread */

static void thread_sleeper(struct cl_worker *w)
{
    uint64_t due = cl_now_ns() + unit_ns;
    if (w->id == 0) {
        cl_sleep_ns(unit_ns / 2);
        waiters.rss_half = rss_bytes();
        waiters.vm_half = vm_bytes();
    }
    uint64_t now = cl_now_ns();
    if (now < due)
        cl_sleep_ns(due - now); /* time.sleep(1) */
    atomic_store_explicit(&late_ns[w->id], cl_now_ns() - due, memory_order_relaxed);
    cl_tick(w);
}

static void on_threads(struct cl_run *run)
{
    late_ns = cl_xcalloc(waiters.n, sizeof *late_ns);
    uint64_t t0 = cl_now_ns();
    waiters.rss0 = rss_bytes();
    waiters.vm0 = vm_bytes();
    cl_run_workers(run, thread_sleeper);
    waiters.wall_s = cl_seconds(cl_now_ns() - t0);
    waiters.create_s = waiters.wall_s - run->wall_s; /* run->wall_s: from the open gate */
    for (uint64_t i = 0; i < waiters.n; i++) {
        uint64_t late = atomic_load_explicit(&late_ns[i], memory_order_relaxed);
        waiters.late_max_ns = late > waiters.late_max_ns ? late : waiters.late_max_ns;
        waiters.woke += atomic_load_explicit(&run->workers[i].progress, memory_order_relaxed);
    }
    free(late_ns);
}

void run_many_waiters(struct cl_run *run)
{
    waiters.threads = cl_param(run, ON) == ON_THREADS;
    waiters.n = waiters.threads ? (uint64_t)run->threads : run->iters;
    if (waiters.threads)
        on_threads(run);
    else
        on_loop(run);
}

static void judge_many_waiters(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    char n[32];
    double per = waiters.rss_half > waiters.rss0
                     ? (double)(waiters.rss_half - waiters.rss0) / (double)waiters.n
                     : 0;
    res->exact = waiters.woke == waiters.n && waiters.early == 0;
    res->ops = waiters.n;
    cl_metric_int(res, "tasks", (long long)waiters.n);
    cl_metric_real(res, "wall_units", waiters.wall_s * 1e9 / (double)unit_ns);
    cl_metric_real(res, "create_ms", waiters.create_s * 1e3);
    cl_metric_real(res, "late_max_ms", (double)waiters.late_max_ns / 1e6);
    cl_metric_int(res, "rss_per_task_bytes", (long long)per);
    cl_metric_int(res, "vm_per_task_bytes",
                  waiters.vm_half > waiters.vm0
                      ? (long long)((waiters.vm_half - waiters.vm0) / waiters.n)
                      : 0);
    cl_verdict(res, "%s %s slept 1 unit each %s: %.2f units in all, %.0f bytes resident each",
               cl_fmt_count(waiters.n, n), waiters.threads ? "threads" : "tasks",
               waiters.threads ? "at once" : "on one thread",
               waiters.wall_s * 1e9 / (double)unit_ns, per);
}

const struct family many_waiters_f = {judge_many_waiters};

/* ---- starts-at-await ----------------------------------------------------------------- */

enum step { CREATED, WORKED, CHILD_RUNS, RESUMED, NSTEPS };
static const char *const step_names[] = {"created", "worked", "child-runs", "resumed"};

static struct {
    enum step order[NSTEPS];
    uint64_t at[NSTEPS];
    int n;
} steps;

static void note(enum step s)
{
    if (steps.n < NSTEPS) {
        steps.order[steps.n] = s;
        steps.at[steps.n++] = cl_now_ns();
    }
}

/* [snippet starts-at-await] */
static int child_run(struct cl_task *t)
{
    CL_BEGIN(t);
    note(CHILD_RUNS);
    CL_RETURN(t, 1);
    CL_END(t);
}

struct creator {
    struct cl_task task;
    struct cl_task *child;
};

static int creator_run(struct cl_task *t)
{
    struct creator *c = (struct creator *)t;
    CL_BEGIN(t);
    c->child = cl_task_new(t->fut.loop, child_run, sizeof(struct cl_task), "child");
    note(CREATED);               /* asyncio.create_task(child()): scheduled, not run */
    cl_busy_ns(unit_ns);         /* a unit of work before the first await */
    note(WORKED);                /* the child still has not run */
    CL_AWAIT(t, &c->child->fut); /* the creator's first await: now it runs */
    note(RESUMED);
    CL_FINALLY(t);
    cl_future_unref(&c->child->fut);
    CL_END(t);
}
/* [end starts-at-await] */

void run_starts_at_await(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    struct cl_task *c = cl_task_new(loop, creator_run, sizeof(struct creator), "creator");
    loop_run_until(loop, &c->fut);
    cl_future_unref(&c->fut);
    loop_close(loop);
}

static void judge_starts_at_await(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    static const enum step want[NSTEPS] = {CREATED, WORKED, CHILD_RUNS, RESUMED};
    res->exact = steps.n == NSTEPS;
    for (int i = 0; i < steps.n && res->exact; i++)
        res->exact = steps.order[i] == want[i];
    res->ops = 2;
    double wait = res->exact ? (double)(steps.at[2] - steps.at[0]) / (double)unit_ns : 0;
    cl_metric_real(res, "child_waited_units", wait);
    char seq[96] = "";
    size_t used = 0;
    for (int i = 0; i < steps.n && used < sizeof seq; i++)
        used += (size_t)snprintf(seq + used, sizeof seq - used, "%s%s", i ? ", " : "",
                                 step_names[steps.order[i]]);
    cl_verdict(res,
               "%s: the child ran %.2f units after it was created, at the creator's "
               "first await, not at once",
               seq, wait);
}

const struct family starts_at_await_f = {judge_starts_at_await};

/* ---- timers --------------------------------------------------------------------------- */

enum { SOON, LATER_A, LATER_B, AT, NCALLS };
static const char *const call_names[] = {"call_soon", "call_later A", "call_later B", "call_at"};

static struct {
    int order[NCALLS], n;
    double late_ms[NCALLS];
    bool early;
} fired;

struct call {
    struct cl_timer timer;
    int which;
    uint64_t due;
    struct cl_future *all_done;
};

static void call_fired(struct call *c)
{
    uint64_t now = cl_now_ns();
    fired.early |= now < c->due;
    fired.late_ms[c->which] = now >= c->due ? (double)(now - c->due) / 1e6 : 0;
    fired.order[fired.n++] = c->which;
    if (fired.n == NCALLS)
        cl_future_set(c->all_done, NCALLS);
}

static void timer_cb(struct cl_timer *t)
{
    call_fired((struct call *)t);
}

static void soon_cb(void *arg)
{
    call_fired(arg);
}

void run_timers(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    struct cl_future *all_done = cl_future_new(loop, "every callback");
    struct call c[NCALLS];
    for (int i = 0; i < NCALLS; i++)
        c[i] = (struct call){.timer.cb = timer_cb, .which = i, .all_done = all_done};
    uint64_t now = cl_now_ns();
    /* [snippet timers] */
    c[AT].due = now + unit_ns;
    cl_timer_start_at(loop, &c[AT].timer, c[AT].due); /* call_at(loop.time() + 1) */
    c[LATER_A].due = c[LATER_B].due = now + unit_ns / 2;
    cl_timer_start_at(loop, &c[LATER_A].timer, c[LATER_A].due); /* call_later(0.5) */
    cl_timer_start_at(loop, &c[LATER_B].timer, c[LATER_B].due); /* the same deadline */
    c[SOON].due = now;
    cl_loop_call_soon(loop, soon_cb, &c[SOON]); /* call_soon: the next iteration */
    /* [end timers] */
    loop_run_until(loop, all_done);
    cl_future_unref(all_done);
    loop_close(loop);
}

static void judge_timers(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = fired.n == NCALLS && !fired.early;
    for (int i = 0; i < fired.n && res->exact; i++)
        res->exact = fired.order[i] == i; /* soon, then A before B (armed first), then at */
    res->ops = NCALLS;
    cl_metric_real(res, "later_late_ms", fired.late_ms[LATER_A]);
    cl_metric_real(res, "at_late_ms", fired.late_ms[AT]);
    cl_verdict(res, "%s, %s, %s, %s; never early, at most %.2f ms late", call_names[fired.order[0]],
               call_names[fired.order[1]], call_names[fired.order[2]], call_names[fired.order[3]],
               fired.late_ms[LATER_B] > fired.late_ms[AT] ? fired.late_ms[LATER_B]
                                                          : fired.late_ms[AT]);
}

const struct family timers_f = {judge_timers};
