/* pools: the thread pool's variants. Orders (as-completed, map-ordered), errors
 * (exceptions), and what a timeout and a cancel do (timeout-not-cancel,
 * cancel-pending, cancel-token, total-timeout). Task durations are sleeps, so the
 * orders are the same on any number of cores; they are 50 ms apart by default. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pools.h"

/* One task: sleep, then answer (or fail). */
struct task {
    size_t index;
    uint64_t ms;         /* how long it runs */
    int fail;            /* the error it returns instead of a result, or 0 */
    bool hangs;          /* a long one (the timeout variants) */
    _Atomic bool *token; /* cancel-token: the long ones stop when it is set */
    _Atomic bool started;
};

/* [snippet task] */
static int sleepy_task(void *arg, uint64_t *result)
{
    struct task *t = arg;
    atomic_store(&t->started, true);
    if (t->token == NULL) {
        cl_sleep_ns(t->ms * MS); /* a blocking call: nothing can interrupt it */
    } else {
        for (uint64_t i = 0; i < t->ms; i++) { /* cooperative: look at the token */
            if (atomic_load_explicit(t->token, memory_order_relaxed))
                return ECANCELED;
            cl_sleep_ns(MS);
        }
    }
    if (t->fail != 0)
        return t->fail; /* Python's raise: the future holds it */
    *result = t->index * t->index;
    return 0;
}
/* [end task] */

/* What a run saw, for check. */
static struct {
    size_t n;
    int workers;
    struct task tasks[FUTURE_TASKS_MAX];
    size_t order[FUTURE_TASKS_MAX]; /* indices in the order they were yielded */
    uint64_t at_ns[FUTURE_TASKS_MAX];
    size_t yielded;
    size_t ok, failed, wrong_value;
    size_t timed_out, healthy_timed_out, cancel_refused, cancelled, still_running, stopped;
    size_t ran_after_cancel, handler_hits, returned, long_completed;
    int threads_after;
    uint64_t shutdown_ns;
} seen;

static struct cl_pool *new_pool(int workers)
{
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = workers});
    if (pool == NULL)
        cl_die(__FILE__, __LINE__, "cl_pool_new", errno);
    atomic_store(&current_pool, pool);
    return pool;
}

static void end_pool(struct cl_pool *pool, bool cancel_pending)
{
    uint64_t t0 = cl_now_ns();
    atomic_store(&current_pool, NULL);
    cl_pool_shutdown(pool, cancel_pending);
    seen.shutdown_ns = cl_now_ns() - t0;
}

static struct cl_pool_future *submit(struct cl_pool *pool, struct task *t)
{
    struct cl_pool_future *f = cl_pool_submit(pool, sleepy_task, t);
    if (f == NULL)
        cl_die(__FILE__, __LINE__, "cl_pool_submit", errno);
    return f;
}

static void start(const struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (size_t)cl_param(run, TASKS);
    seen.workers = (int)cl_param(run, WORKERS);
    if (seen.n > FUTURE_TASKS_MAX)
        seen.n = FUTURE_TASKS_MAX;
}

/* Task i runs (n - i) steps: the last submitted finishes first. */
static void staggered(const struct cl_run *run)
{
    start(run);
    for (size_t i = 0; i < seen.n; i++)
        seen.tasks[i] =
            (struct task){.index = i, .ms = (seen.n - i) * (uint64_t)cl_param(run, STEP_MS)};
}

static void note(struct cl_run *run, size_t index, enum cl_pool_status st, uint64_t value,
                 uint64_t t0)
{
    seen.order[seen.yielded] = index;
    seen.at_ns[seen.yielded++] = cl_now_ns() - t0;
    if (st == CL_POOL_OK) {
        seen.ok++;
        seen.wrong_value += value != index * index;
    } else if (st == CL_POOL_FAILED) {
        seen.failed++;
    }
    progress(run);
}

void run_as_completed(struct cl_run *run)
{
    staggered(run);
    struct cl_pool *pool = new_pool(seen.workers);
    struct cl_pool_future *fs[FUTURE_TASKS_MAX] = {NULL};
    uint64_t t0 = cl_now_ns();
    for (size_t i = 0; i < seen.n; i++)
        fs[i] = submit(pool, &seen.tasks[i]);
    waiting(run, "waits in as_completed for the next task to finish");
    /* [snippet as-completed] */
    struct cl_pool_iter *it = cl_pool_as_completed(fs, seen.n, CL_FOREVER);
    size_t i;
    uint64_t value;
    enum cl_pool_status st;
    while ((st = cl_pool_next(it, &i, &value, NULL)) != CL_POOL_END)
        note(run, i, st, value, t0); /* i: whichever finished first */
    cl_pool_iter_end(it);
    /* [end as-completed] */
    for (i = 0; i < seen.n; i++)
        cl_pool_release(fs[i]);
    end_pool(pool, false);
}

void run_map_ordered(struct cl_run *run)
{
    staggered(run);
    struct cl_pool *pool = new_pool(seen.workers);
    uint64_t t0 = cl_now_ns();
    waiting(run, "waits in map for the next task in input order");
    /* [snippet map-ordered] */
    struct cl_pool_iter *it =
        cl_pool_map(pool, sleepy_task, seen.tasks, sizeof(struct task), seen.n, CL_FOREVER);
    size_t i;
    uint64_t value;
    enum cl_pool_status st;
    while ((st = cl_pool_next(it, &i, &value, NULL)) != CL_POOL_END)
        note(run, i, st, value, t0); /* i: 0, 1, 2... whatever finished first */
    cl_pool_iter_end(it);
    /* [end map-ordered] */
    end_pool(pool, false);
}

void run_exceptions(struct cl_run *run)
{
    start(run);
    for (size_t i = 0; i < seen.n; i++) /* the guides' risky_task: n % 3 == 0 raises */
        seen.tasks[i] = (struct task){.index = i, .ms = 20, .fail = i % 3 == 0 ? EDOM : 0};
    struct cl_pool *pool = new_pool(seen.workers);
    struct cl_pool_future *fs[FUTURE_TASKS_MAX] = {NULL};
    uint64_t t0 = cl_now_ns();
    for (size_t i = 0; i < seen.n; i++)
        fs[i] = submit(pool, &seen.tasks[i]);
    waiting(run, "waits in as_completed for the next task to finish");
    /* [snippet exceptions] */
    struct cl_pool_iter *it = cl_pool_as_completed(fs, seen.n, CL_FOREVER);
    size_t i;
    uint64_t value;
    int err = 0;
    enum cl_pool_status st;
    while ((st = cl_pool_next(it, &i, &value, &err)) != CL_POOL_END) {
        if (st == CL_POOL_FAILED && err != seen.tasks[i].fail) /* the error, intact */
            seen.wrong_value++;
        note(run, i, st, value, t0);
    }
    cl_pool_iter_end(it);
    /* [end exceptions] */
    seen.threads_after = cl_pool_stats(pool).threads; /* every worker still there */
    for (i = 0; i < seen.n; i++)
        cl_pool_release(fs[i]);
    end_pool(pool, false);
}

/* The guides' timeout workload: every third task is a long one (--hang-ms) that
 * blocks a worker; the others take 1 ms. */
static void hanging_tasks(const struct cl_run *run, _Atomic bool *token)
{
    start(run);
    for (size_t i = 0; i < seen.n; i++) {
        bool hangs = i % 3 == 0;
        seen.tasks[i] = (struct task){.index = i,
                                      .hangs = hangs,
                                      .token = hangs ? token : NULL,
                                      .ms = hangs ? (uint64_t)cl_param(run, HANG_MS) : 1};
    }
}

void run_timeout_not_cancel(struct cl_run *run)
{
    hanging_tasks(run, NULL);
    struct cl_pool *pool = new_pool(seen.workers);
    struct cl_pool_future *fs[FUTURE_TASKS_MAX] = {NULL};
    for (size_t i = 0; i < seen.n; i++)
        fs[i] = submit(pool, &seen.tasks[i]);
    uint64_t wait_ns = (uint64_t)cl_param(run, WAIT_MS) * MS;
    waiting(run, "waits in result(timeout) for one future");
    /* [snippet timeout-not-cancel] */
    for (size_t i = 0; i < seen.n; i++) {
        if (cl_pool_get(fs[i], wait_ns, NULL, NULL) != CL_POOL_TIMEOUT) {
            seen.ok++;
            progress(run);
            continue;
        }
        seen.timed_out++; /* "Task i took too long!" -- or sat in the queue */
        seen.healthy_timed_out += !seen.tasks[i].hangs;
        if (cl_pool_cancel(fs[i]))
            seen.cancelled++; /* it had not even started */
        else
            seen.cancel_refused++; /* running: the worker stays blocked */
        progress(run);
    }
    /* [end timeout-not-cancel] */
    waiting(run, "waits in shutdown for the tasks cancel could not stop");
    end_pool(pool, false); /* the `with` block's exit: waits for the running ones */
    for (size_t i = 0; i < seen.n; i++) {
        seen.ran_after_cancel +=
            cl_pool_state(fs[i]) == CL_POOL_CANCELLED && atomic_load(&seen.tasks[i].started);
        cl_pool_release(fs[i]);
    }
}

/* cancel-pending and cancel-token: collect until one deadline, then cancel what
 * has not started and say what is still running; with a token, stop that too. */
static void cancel_at_deadline(struct cl_run *run, _Atomic bool *token)
{
    hanging_tasks(run, token);
    struct cl_pool *pool = new_pool(seen.workers);
    struct cl_pool_future *fs[FUTURE_TASKS_MAX] = {NULL};
    bool yielded[FUTURE_TASKS_MAX] = {false};
    for (size_t i = 0; i < seen.n; i++)
        fs[i] = submit(pool, &seen.tasks[i]);
    uint64_t t0 = cl_now_ns();
    waiting(run, "waits in as_completed until the deadline");
    struct cl_pool_iter *it =
        cl_pool_as_completed(fs, seen.n, (uint64_t)cl_param(run, WAIT_MS) * MS);
    size_t i;
    uint64_t value;
    enum cl_pool_status st;
    while ((st = cl_pool_next(it, &i, &value, NULL)) != CL_POOL_END && st != CL_POOL_TIMEOUT) {
        yielded[i] = true;
        note(run, i, st, value, t0);
    }
    cl_pool_iter_end(it);
    /* [snippet cancel-pending] */
    for (i = 0; i < seen.n; i++) {
        if (yielded[i])
            continue;
        if (cl_pool_cancel(fs[i]))
            seen.cancelled++; /* never started: it never will */
        else
            seen.still_running++; /* said so: cancel cannot stop a running task */
    }
    if (token != NULL) /* cancel-token: ask the running ones to stop */
        atomic_store(token, true);
    /* [end cancel-pending] */
    progress(run);
    waiting(run, "waits in shutdown for the running tasks");
    end_pool(pool, false);
    for (i = 0; i < seen.n; i++) {
        int err = 0;
        enum cl_pool_status end = cl_pool_get(fs[i], 0, NULL, &err);
        seen.ran_after_cancel += end == CL_POOL_CANCELLED && atomic_load(&seen.tasks[i].started);
        seen.stopped += !yielded[i] && end == CL_POOL_FAILED && err == ECANCELED;
        seen.returned += !yielded[i] && end == CL_POOL_OK; /* finished after the deadline */
        seen.long_completed += seen.tasks[i].hangs && end == CL_POOL_OK;
        cl_pool_release(fs[i]);
    }
}

void run_cancel_pending(struct cl_run *run)
{
    cancel_at_deadline(run, NULL);
}

void run_cancel_token(struct cl_run *run)
{
    static _Atomic bool token;
    atomic_store(&token, false);
    cancel_at_deadline(run, &token);
}

/* [snippet total-timeout] */
/* The guides' process_urls: one total deadline on as_completed, and a handler
 * for each future's own timeout. Returns how many results it collected, or -1
 * when the deadline passes: the guides' TimeoutError, raised by the iterator,
 * outside the try, so the results gathered so far leave with it. */
static long process_all(struct cl_pool_future **fs, size_t n, uint64_t total_ns)
{
    uint64_t *results = cl_xcalloc(n, sizeof *results);
    long got = 0;
    struct cl_pool_iter *it = cl_pool_as_completed(fs, n, total_ns);
    size_t i;
    enum cl_pool_status st;
    while ((st = cl_pool_next(it, &i, NULL, NULL)) != CL_POOL_END) {
        if (st == CL_POOL_TIMEOUT) { /* no handler was written for this one */
            seen.yielded = (size_t)got;
            cl_pool_iter_end(it);
            free(results);
            return -1;
        }
        uint64_t value; /* the try: result(timeout=1) on a future that is done */
        if (cl_pool_get(fs[i], 1000 * MS, &value, NULL) == CL_POOL_TIMEOUT) {
            seen.handler_hits++; /* "Timeout for url": never runs */
            cl_pool_cancel(fs[i]);
        } else {
            results[got++] = value;
        }
    }
    cl_pool_iter_end(it);
    free(results); /* a real caller would keep them: none gets here in time */
    return got;
}
/* [end total-timeout] */

void run_total_timeout(struct cl_run *run)
{
    start(run);
    for (size_t i = 0; i < seen.n; i++)
        seen.tasks[i] = (struct task){.index = i, .ms = (uint64_t)cl_param(run, STEP_MS)};
    struct cl_pool *pool = new_pool(seen.workers);
    struct cl_pool_future *fs[FUTURE_TASKS_MAX] = {NULL};
    for (size_t i = 0; i < seen.n; i++)
        fs[i] = submit(pool, &seen.tasks[i]);
    waiting(run, "waits in as_completed until the total deadline");
    long got = process_all(fs, seen.n, (uint64_t)cl_param(run, WAIT_MS) * MS);
    seen.returned = got < 0 ? 0 : (size_t)got;
    if (got >= 0)
        seen.yielded = (size_t)got;
    progress(run);
    waiting(run, "waits in shutdown for the tasks still queued");
    end_pool(pool, false);
    for (size_t i = 0; i < seen.n; i++)
        cl_pool_release(fs[i]);
}

/* ------------------------------------------------------------ check */

/* The order the tasks finish in, from their durations on `workers` threads taking
 * them first come, first served: finish[i]. Ties have no order. */
static void expected_finish(uint64_t *finish)
{
    uint64_t free_at[FUTURE_TASKS_MAX] = {0};
    int w = seen.workers < (int)seen.n ? seen.workers : (int)seen.n;
    for (size_t i = 0; i < seen.n; i++) {
        int first = 0;
        for (int k = 1; k < w; k++)
            if (free_at[k] < free_at[first])
                first = k;
        finish[i] = free_at[first] += seen.tasks[i].ms;
    }
}

static bool in_completion_order(void)
{
    uint64_t finish[FUTURE_TASKS_MAX];
    expected_finish(finish);
    for (size_t k = 1; k < seen.yielded; k++)
        if (finish[seen.order[k]] < finish[seen.order[k - 1]])
            return false;
    return true;
}

static bool in_input_order(void)
{
    for (size_t k = 0; k < seen.yielded; k++)
        if (seen.order[k] != k)
            return false;
    return true;
}

static const char *order_text(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < seen.yielded && used + 8 < len; k++)
        used += (size_t)snprintf(buf + used, len - used, "%s%zu", k ? " " : "", seen.order[k]);
    return buf;
}

static void check_orders(struct cl_result *res, bool map)
{
    char order[160];
    bool ordered = map ? in_input_order() : in_completion_order();
    res->exact = seen.yielded == seen.n && seen.ok == seen.n && seen.wrong_value == 0 && ordered;
    res->ops = seen.yielded;
    double first_ms = seen.yielded ? (double)seen.at_ns[0] / 1e6 : 0;
    double last_ms = seen.yielded ? (double)seen.at_ns[seen.yielded - 1] / 1e6 : 0;
    cl_metric_int(res, "results", (long long)seen.ok);
    cl_metric_real(res, "first_ms", first_ms);
    cl_metric_real(res, "last_ms", last_ms);
    cl_metric_int(res, "in_order", ordered);
    if (!res->exact)
        cl_verdict(res, "%zu of %zu results, order %s: %s", seen.ok, seen.n,
                   order_text(order, sizeof order),
                   ordered ? "as expected"
                   : map   ? "not the input order"
                           : "not as they finished");
    else
        cl_verdict(res, "%zu results %s: %s; the first after %.0f ms%s, all after %.0f ms", seen.n,
                   map ? "in input order" : "as they finished", order_text(order, sizeof order),
                   first_ms, map ? " (it waited for the slowest)" : "", last_ms);
}

void check_futures(const struct cl_run *run, struct cl_result *res)
{
    double shutdown_s = cl_seconds(seen.shutdown_ns);
    switch ((enum kind)run->variant->kind) {
    case AS_COMPLETED:
        check_orders(res, false);
        return;
    case MAP_ORDERED:
        check_orders(res, true);
        return;
    case EXCEPTIONS: {
        size_t expect_failed = (seen.n + 2) / 3;
        int threads = seen.workers < (int)seen.n ? seen.workers : (int)seen.n;
        res->exact = seen.ok + seen.failed == seen.n && seen.failed == expect_failed &&
                     seen.wrong_value == 0 && seen.threads_after == threads;
        res->ops = seen.yielded;
        cl_metric_int(res, "results", (long long)seen.ok);
        cl_metric_int(res, "errors", (long long)seen.failed);
        cl_metric_int(res, "lost", (long long)(seen.n - seen.ok - seen.failed));
        cl_metric_int(res, "threads_after", seen.threads_after);
        cl_verdict(res,
                   "%zu of %zu arrived: %zu results and %zu errors (EDOM, every third task); "
                   "all %d workers still running",
                   seen.ok + seen.failed, seen.n, seen.ok, seen.failed, seen.threads_after);
        return;
    }
    case TIMEOUT_NOT_CANCEL:
        res->exact = seen.healthy_timed_out == 0 && seen.ran_after_cancel == 0;
        res->ops = seen.n;
        cl_metric_int(res, "timed_out", (long long)seen.timed_out);
        cl_metric_int(res, "healthy_timed_out", (long long)seen.healthy_timed_out);
        cl_metric_int(res, "cancelled", (long long)seen.cancelled);
        cl_metric_int(res, "cancel_refused", (long long)seen.cancel_refused);
        cl_metric_real(res, "shutdown_s", shutdown_s);
        cl_verdict(res,
                   "%zu of %zu reported timed out, %zu of them healthy tasks that never ran; "
                   "cancel() refused the %zu running, and shutdown then waited %.2f s for them",
                   seen.timed_out, seen.n, seen.healthy_timed_out, seen.cancel_refused, shutdown_s);
        return;
    case CANCEL_PENDING:
    case CANCEL_TOKEN: {
        bool token = run->variant->kind == CANCEL_TOKEN;
        /* every future accounted for, nothing cancelled ever ran, every running one
         * ended (with a token: no long one ran its whole course) */
        res->exact = seen.ok + seen.cancelled + seen.still_running == seen.n &&
                     seen.stopped + seen.returned == seen.still_running &&
                     seen.ran_after_cancel == 0 && (!token || seen.long_completed == 0);
        res->ops = seen.n;
        cl_metric_int(res, "done", (long long)seen.ok);
        cl_metric_int(res, "cancelled", (long long)seen.cancelled);
        cl_metric_int(res, "running", (long long)seen.still_running);
        cl_metric_int(res, "stopped", (long long)seen.stopped);
        cl_metric_real(res, "shutdown_s", shutdown_s);
        cl_verdict(res,
                   "by the %lld ms deadline %zu done; %zu cancelled before they started; "
                   "%zu running%s; shutdown took %.1f ms",
                   cl_param(run, WAIT_MS), seen.ok, seen.cancelled, seen.still_running,
                   token ? " saw the token and stopped" : " could not be cancelled, and said so",
                   shutdown_s * 1e3);
        return;
    }
    default: /* TOTAL_TIMEOUT */
        res->exact = seen.returned == seen.n;
        res->ops = seen.n;
        cl_metric_int(res, "finished", (long long)seen.yielded);
        cl_metric_int(res, "returned", (long long)seen.returned);
        cl_metric_int(res, "handler_hits", (long long)seen.handler_hits);
        cl_metric_int(res, "unfinished", (long long)(seen.n - seen.yielded));
        cl_metric_real(res, "shutdown_s", shutdown_s);
        cl_verdict(res,
                   "the %lld ms deadline escaped the handler: %zu results returned of the %zu "
                   "finished, %zu unfinished; the per-future timeout ran %zu times; shutdown "
                   "waited %.2f s",
                   cl_param(run, WAIT_MS), seen.returned, seen.yielded, seen.n - seen.yielded,
                   seen.handler_hits, shutdown_s);
    }
}
