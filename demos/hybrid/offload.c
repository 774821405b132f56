/* hybrid, offloading: the loop hands blocking calls to a thread pool and CPU
 * work to threads or processes, and keeps answering meanwhile; the lag monitor
 * (a timer every 2 ms that notes how late it runs) says whether it did. */
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "hybrid.h"

/* One run's record, for the judges. */
static struct {
    int n, ok;         /* results, and the right ones */
    double makespan_u; /* in units */
    bool gil;          /* cpu-to-thread --gil on */
    uint64_t gil_switches;
    int workers;
    /* hybrid-service: each part's span, in units since the start */
    double part_u[3];
    /* pool-in-callback: the loop's stall per request, in a callback and shared */
    double stall_ms[2], lag_max_ms[2];
} rec;

static uint64_t the_items;
static struct cl_procpool_opts pool_opts = {.completions = true};

static struct cl_pool *new_pool(struct cl_run *run, int workers)
{
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = workers});
    if (pool == NULL)
        cl_refuse(run, "cl_pool_new", errno, "%d threads", workers);
    return pool;
}

static struct cl_procpool *new_procpool(struct cl_run *run, int workers)
{
    struct cl_procpool *pp =
        cl_procpool_new(&(struct cl_procpool_opts){.workers = workers, .completions = true});
    if (pp == NULL)
        cl_refuse(run, "cl_procpool_new", errno, "%d worker processes", workers);
    return pp;
}

/* ---- to-thread and blocking-in-loop ----------------------------------------- */

static int blocking_call(void *arg, uint64_t *result)
{
    cl_sleep_ns(unit_ns); /* time.sleep(1) in the guides: a call that blocks its thread */
    *result = (uintptr_t)arg * 10 + 1;
    return 0;
}

/* [snippet to-thread] */
struct caller {
    struct cl_task task;
    uintptr_t i;
    struct cl_pool *pool; /* NULL: call it right here, in the loop */
    struct cl_future *f;
};

static int caller_run(struct cl_task *t)
{
    struct caller *c = (struct caller *)t;
    CL_BEGIN(t);
    if (c->pool == NULL) {
        uint64_t r;
        blocking_call((void *)c->i, &r); /* every other task waits meanwhile */
        CL_RETURN(t, (intptr_t)r);
    }
    c->f = cl_run_in_pool(t->fut.loop, c->pool, blocking_call, (void *)c->i);
    CL_AWAIT(t, c->f); /* await asyncio.to_thread(blocking_call, i) */
    CL_RETURN(t, c->f->value);
    CL_FINALLY(t);
    if (c->f != NULL)
        cl_future_unref(c->f);
    CL_END(t);
}
/* [end to-thread] */

#define MAX_PARTS 64

static int settle_run(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_SLEEP(t, 2 * LAG_EVERY_NS);
    CL_END(t);
}

static void gather_and_check(struct cl_loop *loop, struct cl_future **futs, int n,
                             intptr_t (*want)(int i))
{
    struct cl_future *all = cl_gather_new(loop, futs, (size_t)n, CL_RETURN_EXCEPTIONS);
    uint64_t t0 = cl_now_ns();
    loop_run_until(loop, all);
    rec.makespan_u = units_since(t0);
    /* a stall inside the last iteration shows at the monitor's next sample */
    struct cl_task *tick = cl_task_new(loop, settle_run, sizeof *tick, "settle");
    loop_run_until(loop, &tick->fut);
    cl_future_unref(&tick->fut);
    rec.n = n;
    rec.ok = 0;
    for (int i = 0; i < n; i++) {
        rec.ok += futs[i]->done && futs[i]->err == 0 && futs[i]->value == want(i);
        cl_future_unref(futs[i]);
    }
    cl_future_unref(all);
}

static intptr_t want_call(int i)
{
    return (intptr_t)i * 10 + 1;
}

static void to_thread(struct cl_run *run, bool offload)
{
    int calls = (int)cl_param(run, CALLS);
    rec.workers = (int)cl_param(run, WORKERS);
    struct cl_loop *loop = loop_open(run, NULL);
    struct cl_pool *pool = offload ? new_pool(run, rec.workers) : NULL;
    lag_open(loop);
    struct cl_future *futs[MAX_PARTS];
    for (int i = 0; i < calls; i++) {
        struct caller *c = (struct caller *)cl_task_new(loop, caller_run, sizeof *c, "caller");
        c->i = (uintptr_t)i;
        c->pool = pool;
        futs[i] = &c->task.fut;
    }
    gather_and_check(loop, futs, calls, want_call);
    lag_close();
    if (pool != NULL)
        cl_pool_shutdown(pool, false);
    loop_close(loop);
}

void run_to_thread(struct cl_run *run)
{
    to_thread(run, true);
}

void run_blocking_in_loop(struct cl_run *run)
{
    to_thread(run, false);
}

static void judge_to_thread(const struct cl_run *run, struct cl_result *res)
{
    res->exact = rec.ok == rec.n;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "calls", rec.n);
    cl_metric_real(res, "makespan_units", rec.makespan_u);
    cl_metric_real(res, "lag_p99_ms", lag_p99_ms());
    cl_metric_real(res, "lag_max_ms", lag_max_ms());
    cl_metric_int(res, "lag_samples", (long long)lag_samples());
    cl_verdict(res,
               "%d blocking calls of 1 unit %s: %.2f units in all; the loop lagged up to %.1f ms",
               rec.n, run->variant->tags & CL_SLOW ? "made in the loop" : "on the thread pool",
               rec.makespan_u, lag_max_ms());
}

const struct family to_thread_f = {judge_to_thread};

/* ---- CPU work on threads (with or without the GIL) and on processes ------------ */

static struct cl_gil gil;
static _Atomic int gil_ids;

struct job {
    uint64_t lo, hi;
};

#define SLICE 20000 /* terms between two GIL checks: CPython checks between bytecodes */

static int cpu_job(void *arg, uint64_t *result)
{
    const struct job *j = arg;
    if (!rec.gil) {
        *result = cl_sum_squares_range(j->lo, j->hi);
        return 0;
    }
    static _Thread_local struct cl_gil_thread me;
    static _Thread_local bool known;
    if (!known) { /* the loop thread is id 0 */
        me = (struct cl_gil_thread){.id = atomic_fetch_add(&gil_ids, 1) + 1};
        known = true;
    }
    uint64_t sum = 0;
    cl_gil_take(&gil, &me);
    for (uint64_t lo = j->lo; lo < j->hi; lo += SLICE) {
        sum += cl_sum_squares_range(lo, lo + SLICE < j->hi ? lo + SLICE : j->hi);
        cl_gil_check(&gil, &me);
    }
    cl_gil_drop(&gil, &me);
    *result = sum;
    return 0;
}

static struct job jobs[64];

static intptr_t want_job(int i)
{
    return (intptr_t)(cl_sum_squares_closed(jobs[i].hi) - cl_sum_squares_closed(jobs[i].lo));
}

struct cpu_caller {
    struct cl_task task;
    int i;
    struct cl_pool *pool;
    struct cl_future *f;
};

static int cpu_caller_run(struct cl_task *t)
{
    struct cpu_caller *c = (struct cpu_caller *)t;
    CL_BEGIN(t);
    if (c->pool == NULL) { /* --on loop: the job holds the loop while it computes */
        uint64_t r;
        cpu_job(&jobs[c->i], &r);
        CL_RETURN(t, (intptr_t)r);
    }
    c->f = cl_run_in_pool(t->fut.loop, c->pool, cpu_job, &jobs[c->i]);
    CL_AWAIT(t, c->f);
    CL_RETURN(t, c->f->value);
    CL_FINALLY(t);
    if (c->f != NULL)
        cl_future_unref(c->f);
    CL_END(t);
}

static void make_jobs(int n)
{
    for (int i = 0; i < n; i++)
        jobs[i] = (struct job){(uint64_t)i * terms_per_unit, (uint64_t)(i + 1) * terms_per_unit};
}

void run_cpu_to_thread(struct cl_run *run)
{
    int n = (int)cl_param(run, JOBS);
    rec.workers = (int)cl_param(run, WORKERS);
    rec.gil = cl_param(run, GIL) == GIL_ON;
    calibrate_cpu();
    make_jobs(n);
    if (rec.gil)
        CL_PT(cl_gil_init(&gil, 5 * 1000 * 1000)); /* CPython's 5 ms switch interval */
    atomic_store(&gil_ids, 0);
    struct cl_loop *loop = loop_open(run, rec.gil ? &gil : NULL);
    bool in_loop = cl_param(run, ON) == ON_LOOP;
    struct cl_pool *pool = in_loop ? NULL : new_pool(run, rec.workers);
    rec.workers = in_loop ? 0 : rec.workers;
    lag_open(loop);
    struct cl_future *futs[MAX_PARTS];
    for (int i = 0; i < n; i++) {
        struct cpu_caller *c =
            (struct cpu_caller *)cl_task_new(loop, cpu_caller_run, sizeof *c, "cpu caller");
        c->i = i;
        c->pool = pool;
        futs[i] = &c->task.fut;
    }
    gather_and_check(loop, futs, n, want_job);
    lag_close();
    if (pool != NULL)
        cl_pool_shutdown(pool, false);
    loop_close(loop);
    if (rec.gil) {
        rec.gil_switches = atomic_load(&gil.switches);
        cl_gil_destroy(&gil);
    }
}

/* Await one batch of a process pool on its completion fd (the only batch in flight). */
struct batch_wait {
    struct cl_task task;
    struct cl_procpool *pp;
    bool done;
    uint64_t *ended; /* NULL, or where to note when it ended */
};

static uint64_t results[64];
static int errors[64];

/* [snippet procs-fd] */
static int batch_wait_run(struct cl_task *t)
{
    struct batch_wait *w = (struct batch_wait *)t;
    CL_BEGIN(t);
    while (!w->done) {
        CL_READABLE(t, cl_procpool_completion_fd(w->pp)); /* in the loop's epoll set */
        uint64_t count;
        (void)!read(cl_procpool_completion_fd(w->pp), &count, sizeof count);
        struct cl_procpool_batch *b;
        while ((b = cl_procpool_take_done(w->pp)) != NULL) {
            cl_procpool_release(b); /* the map's own reference stays with its caller */
            w->done = true;
        }
    }
    if (w->ended != NULL)
        *w->ended = cl_now_ns();
    CL_RETURN(t, (intptr_t)results[0]);
    CL_END(t);
}
/* [end procs-fd] */

void run_cpu_to_procs(struct cl_run *run)
{
    int n = (int)cl_param(run, JOBS);
    rec.workers = (int)cl_param(run, WORKERS);
    rec.gil = false;
    calibrate_cpu();
    make_jobs(n);
    struct cl_procpool *pp = new_procpool(run, rec.workers);
    struct cl_loop *loop = loop_open(run, NULL);
    lag_open(loop);
    uint64_t t0 = cl_now_ns();
    struct cl_procpool_batch *b =
        cl_procpool_map(pp, PT_SUM_RANGE, terms_per_unit, (size_t)n, 1, results, errors);
    if (b == NULL)
        cl_die(__FILE__, __LINE__, "cl_procpool_map", errno);
    struct batch_wait *w = (struct batch_wait *)cl_task_new(loop, batch_wait_run, sizeof *w,
                                                            "awaits the process pool");
    w->pp = pp;
    loop_run_until(loop, &w->task.fut);
    rec.makespan_u = units_since(t0);
    lag_close();
    rec.n = n;
    rec.ok = 0;
    for (int i = 0; i < n; i++)
        rec.ok += errors[i] == 0 && (intptr_t)results[i] == want_job(i);
    cl_future_unref(&w->task.fut);
    cl_procpool_release(b);
    loop_close(loop);
    cl_procpool_shutdown(pp, false);
}

static void judge_cpu(const struct cl_run *run, struct cl_result *res)
{
    bool procs = run->variant->kind == CPU_PROCS;
    double speedup = rec.makespan_u > 0 ? rec.n / rec.makespan_u : 0;
    res->exact = rec.ok == rec.n;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "jobs", rec.n);
    cl_metric_int(res, "workers", rec.workers);
    cl_metric_real(res, "makespan_units", rec.makespan_u);
    cl_metric_real(res, "speedup", speedup);
    cl_metric_real(res, "lag_p99_ms", lag_p99_ms());
    cl_metric_real(res, "lag_max_ms", lag_max_ms());
    cl_metric_int(res, "lag_samples", (long long)lag_samples());
    if (rec.gil)
        cl_metric_int(res, "gil_switches", (long long)rec.gil_switches);
    if (rec.workers == 0)
        cl_verdict(res,
                   "%d CPU jobs of 1 unit in the loop itself: %.2f units; the loop's lag "
                   "p99 %.1f ms",
                   rec.n, rec.makespan_u, lag_p99_ms());
    else
        cl_verdict(res,
                   "%d CPU jobs of 1 unit on %d %s%s: %.2f units, %.2fx the serial time; the "
                   "loop's lag p99 %.1f ms",
                   rec.n, rec.workers,
                   procs ? (rec.workers == 1 ? "worker process" : "worker processes") : "threads",
                   rec.gil ? " sharing a GIL" : "", rec.makespan_u, speedup, lag_p99_ms());
}

const struct family cpu_f = {judge_cpu};

/* ---- hybrid-service: the three kinds of work in one gather ------------------------ */

enum { PART_REQUESTS, PART_BLOCKING, PART_CPU };
#define REQUESTS    3
#define BLOCKING    2
#define BLOCK_UNITS 1.5

static uint64_t service_t0;
static uint64_t span_from[8], span_to[8]; /* requests, blocking calls, the CPU job */

struct request {
    struct cl_task task;
    int i;
};

static int request_run(struct cl_task *t)
{
    struct request *r = (struct request *)t;
    CL_BEGIN(t);
    span_from[r->i] = cl_now_ns();
    CL_SLEEP(t, unit_ns); /* a network round trip: the loop's own kind of waiting */
    span_to[r->i] = cl_now_ns();
    CL_RETURN(t, r->i);
    CL_END(t);
}

static int service_block(void *arg, uint64_t *result)
{
    uintptr_t i = (uintptr_t)arg;
    span_from[i] = cl_now_ns();
    cl_sleep_ns((uint64_t)(BLOCK_UNITS * (double)unit_ns));
    span_to[i] = cl_now_ns();
    *result = i;
    return 0;
}

static intptr_t want_part(int i)
{
    return i < REQUESTS + BLOCKING ? i : want_job(0);
}

void run_service(struct cl_run *run)
{
    calibrate_cpu();
    make_jobs(1);
    rec.part_u[0] = rec.part_u[1] = rec.part_u[2] = 0;
    struct cl_procpool *pp = new_procpool(run, 1);
    struct cl_pool *pool = new_pool(run, BLOCKING);
    struct cl_loop *loop = loop_open(run, NULL);
    lag_open(loop);
    struct cl_future *futs[REQUESTS + BLOCKING + 1];
    for (int i = 0; i < REQUESTS; i++) {
        struct request *r = (struct request *)cl_task_new(loop, request_run, sizeof *r, "request");
        r->i = i;
        futs[i] = &r->task.fut;
    }
    for (int i = REQUESTS; i < REQUESTS + BLOCKING; i++)
        futs[i] = cl_run_in_pool(loop, pool, service_block, (void *)(uintptr_t)i);
    service_t0 = cl_now_ns();
    const int cpu = REQUESTS + BLOCKING;
    span_from[cpu] = service_t0;
    struct cl_procpool_batch *b =
        cl_procpool_map(pp, PT_SUM_RANGE, terms_per_unit, 1, 1, results, errors);
    if (b == NULL)
        cl_die(__FILE__, __LINE__, "cl_procpool_map", errno);
    struct batch_wait *w = (struct batch_wait *)cl_task_new(loop, batch_wait_run, sizeof *w,
                                                            "awaits the process pool");
    w->pp = pp;
    w->ended = &span_to[cpu];
    futs[cpu] = &w->task.fut;
    gather_and_check(loop, futs, cpu + 1, want_part);
    rec.ok -= errors[0] != 0;
    rec.makespan_u = units_since(service_t0);
    lag_close();
    for (int i = 0; i <= cpu; i++) {
        int part = i < REQUESTS ? PART_REQUESTS : i < cpu ? PART_BLOCKING : PART_CPU;
        double u = (double)(span_to[i] - service_t0) / (double)unit_ns;
        rec.part_u[part] = u > rec.part_u[part] ? u : rec.part_u[part];
    }
    if (run->trace != NULL && run->threads >= 3) /* a lane each: loop, threads, processes */
        for (int i = 0; i <= cpu; i++)
            cl_trace_add(&run->trace->bufs[i < REQUESTS ? 0
                                           : i < cpu    ? 1
                                                        : 2],
                         i < REQUESTS ? CL_SPAN_WAIT
                         : i < cpu    ? CL_SPAN_BLOCKED
                                      : CL_SPAN_RUNNING,
                         span_from[i], span_to[i]);
    cl_procpool_release(b);
    cl_pool_shutdown(pool, false);
    loop_close(loop);
    cl_procpool_shutdown(pp, false);
}

static void judge_service(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    double longest = 0, sum = 0;
    for (int p = 0; p < 3; p++) {
        longest = rec.part_u[p] > longest ? rec.part_u[p] : longest;
        sum += rec.part_u[p];
    }
    res->exact = rec.ok == rec.n;
    res->ops = (uint64_t)rec.n;
    cl_metric_real(res, "makespan_units", rec.makespan_u);
    cl_metric_real(res, "requests_units", rec.part_u[PART_REQUESTS]);
    cl_metric_real(res, "blocking_units", rec.part_u[PART_BLOCKING]);
    cl_metric_real(res, "cpu_units", rec.part_u[PART_CPU]);
    cl_metric_real(res, "longest_units", longest);
    cl_metric_real(res, "sum_units", sum);
    cl_metric_real(res, "lag_max_ms", lag_max_ms());
    cl_verdict(res,
               "%d requests (%.2f units), %d blocking calls on threads (%.2f) and a CPU job on "
               "a process (%.2f) in one gather: %.2f units, the longest part, not their sum "
               "%.2f",
               REQUESTS, rec.part_u[PART_REQUESTS], BLOCKING, rec.part_u[PART_BLOCKING],
               rec.part_u[PART_CPU], rec.makespan_u, sum);
}

const struct family service_f = {judge_service};

/* ---- pool-in-callback: a pool made and shut down where the loop runs --------------- */

struct pooled {
    struct cl_task task;
    struct cl_procpool *shared; /* NULL: the guides' pool per request, made here */
    struct cl_procpool *pp;
    int i;
    struct batch_wait *w;
    struct cl_procpool_batch *b;
    uint64_t result;
    int err;
    uint64_t stall_ns; /* the loop's time spent starting and stopping pools */
};

/* [snippet pool-in-callback] */
static int pooled_run(struct cl_task *t)
{
    struct pooled *p = (struct pooled *)t;
    CL_BEGIN(t);
    for (p->i = 0; p->i < (int)the_items; p->i++) {
        CL_SLEEP(t, CL_MS(5)); /* the next request */
        uint64_t t0 = cl_now_ns();
        p->pp = p->shared != NULL ? p->shared : cl_procpool_new(&pool_opts); /* in the loop */
        p->stall_ns += cl_now_ns() - t0;
        if (p->pp == NULL)
            CL_RAISE(t, errno, "cl_procpool_new");
        p->b = cl_procpool_map(p->pp, PT_ECHO, 1000, 1, 1, &p->result, &p->err);
        p->w = (struct batch_wait *)cl_task_new(t->fut.loop, batch_wait_run, sizeof *p->w, "batch");
        p->w->pp = p->pp;
        CL_AWAIT(t, &p->w->task.fut); /* the loop runs meanwhile */
        cl_future_unref(&p->w->task.fut);
        cl_procpool_release(p->b);
        rec.ok += p->err == 0 && p->result == 1000;
        rec.n++;
        t0 = cl_now_ns();
        if (p->shared == NULL)
            cl_procpool_shutdown(p->pp, false); /* the with-block's exit: waits for the worker */
        p->stall_ns += cl_now_ns() - t0;
    }
    CL_END(t);
}
/* [end pool-in-callback] */

void run_pool_in_callback(struct cl_run *run)
{
    the_items = (uint64_t)cl_param(run, ITEMS);
    pool_opts.workers = (int)cl_param(run, WORKERS); /* ProcessPoolExecutor(): one per CPU */
    rec.n = rec.ok = 0;
    struct cl_procpool *shared = new_procpool(run, pool_opts.workers);
    for (int phase = 0; phase < 2; phase++) { /* a pool per request, then one shared */
        struct cl_loop *loop = loop_open(run, NULL);
        lag_open(loop);
        struct pooled *p = (struct pooled *)cl_task_new(loop, pooled_run, sizeof *p, "requests");
        p->shared = phase == 1 ? shared : NULL;
        loop_run_until(loop, &p->task.fut);
        if (p->task.fut.err != 0)
            cl_refuse(run, "cl_procpool_new", p->task.fut.err, "1 worker process per request");
        rec.stall_ms[phase] = (double)p->stall_ns / 1e6 / (double)the_items;
        lag_close();
        rec.lag_max_ms[phase] = lag_max_ms();
        cl_future_unref(&p->task.fut);
        loop_close(loop);
    }
    cl_procpool_shutdown(shared, false);
}

static void judge_pool_in_callback(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = rec.ok == rec.n;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "requests", rec.n / 2);
    cl_metric_real(res, "stall_per_request_ms", rec.stall_ms[0]);
    cl_metric_real(res, "stall_shared_ms", rec.stall_ms[1]);
    cl_metric_real(res, "lag_max_ms", rec.lag_max_ms[0]);
    cl_metric_real(res, "lag_max_shared_ms", rec.lag_max_ms[1]);
    cl_verdict(res,
               "a process pool started and shut down in the loop for each request stalled it "
               "%.1f ms a request (lag up to %.1f ms); one pool made beforehand: %.2f ms "
               "(lag up to %.1f ms)",
               rec.stall_ms[0], rec.lag_max_ms[0], rec.stall_ms[1], rec.lag_max_ms[1]);
}

const struct family pool_in_callback_f = {judge_pool_in_callback};
