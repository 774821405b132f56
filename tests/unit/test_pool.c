/* cl_pool: results and errors reach their futures, timed gets, cancel only while
 * pending, done callbacks, map in input order, as_completed in completion order,
 * both shutdowns, the completion fd, threads started on demand, and a stream of
 * tasks losing nothing. Orders are forced with gates or with task durations 50 ms
 * apart; time appears only as lower bounds, or upper bounds with wide margins. */
#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

/* A gate the tasks wait at until the test opens it. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static void gate_set(bool open)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = open;
    CL_PT(pthread_cond_broadcast(&gate.cv));
    CL_PT(pthread_mutex_unlock(&gate.mu));
}

struct job {
    uint64_t in;
    uint64_t sleep_ms;  /* before answering */
    bool wait_gate;     /* block until the gate opens */
    bool own_gate;      /* block until released on its own (release()) */
    bool released;      /* under gate.mu */
    int fail;           /* return this error instead */
    _Atomic int ran;    /* times it started */
    _Atomic bool began; /* set as it starts */
    pthread_t thread;   /* where it ran */
};

static int run_job(void *arg, uint64_t *result)
{
    struct job *j = arg;
    j->thread = pthread_self();
    atomic_fetch_add(&j->ran, 1);
    atomic_store(&j->began, true);
    if (j->wait_gate || j->own_gate) {
        CL_PT(pthread_mutex_lock(&gate.mu));
        while (j->wait_gate ? !gate.open : !j->released)
            CL_PT(pthread_cond_wait(&gate.cv, &gate.mu));
        CL_PT(pthread_mutex_unlock(&gate.mu));
    }
    if (j->sleep_ms)
        cl_sleep_ns(j->sleep_ms * MS);
    if (j->fail)
        return j->fail;
    *result = j->in * 2;
    return 0;
}

/* Let one job with its own gate finish. */
static void release(struct job *j)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    j->released = true;
    CL_PT(pthread_cond_broadcast(&gate.cv));
    CL_PT(pthread_mutex_unlock(&gate.mu));
}

static void wait_began(struct job *j)
{
    for (int i = 0; i < 5000 && !atomic_load(&j->began); i++)
        cl_sleep_ns(1 * MS);
    assert_true(atomic_load(&j->began));
}

static struct cl_pool *pool_of(int workers, bool completions)
{
    struct cl_pool *p = cl_pool_new(&(struct cl_pool_opts){workers, completions});
    assert_non_null(p);
    return p;
}

static void test_new_refuses_bad_sizes(void **state)
{
    (void)state;
    errno = 0;
    assert_null(cl_pool_new(&(struct cl_pool_opts){.workers = 0}));
    assert_int_equal(errno, EINVAL);
    assert_null(cl_pool_new(&(struct cl_pool_opts){.workers = CL_POOL_MAX_WORKERS + 1}));
    assert_int_equal(errno, EINVAL);
    struct cl_pool *p = pool_of(1, false);
    assert_int_equal(cl_pool_completion_fd(p), -1);
    assert_null(cl_pool_take_done(p));
    cl_pool_shutdown(p, false);
}

static void test_results_and_errors_reach_their_futures(void **state)
{
    (void)state;
    struct cl_pool *p = pool_of(1, false); /* one worker: every task on the same thread */
    enum { N = 300 };
    static struct job jobs[N];
    struct cl_pool_future *fs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = (uint64_t)i, .fail = i % 3 == 0 ? 1000 + i : 0};
        fs[i] = cl_pool_submit(p, run_job, &jobs[i]);
        assert_non_null(fs[i]);
    }
    for (int i = 0; i < N; i++) {
        uint64_t v = 0;
        int err = 0;
        enum cl_pool_status st = cl_pool_get(fs[i], CL_FOREVER, &v, &err);
        if (i % 3 == 0) { /* the error, exactly; the worker lived on to run the next */
            assert_int_equal(st, CL_POOL_FAILED);
            assert_int_equal(err, 1000 + i);
        } else {
            assert_int_equal(st, CL_POOL_OK);
            assert_int_equal(v, (uint64_t)i * 2);
        }
        assert_int_equal(cl_pool_state(fs[i]), st);
        cl_pool_release(fs[i]);
    }
    struct cl_pool_stats s = cl_pool_stats(p);
    assert_int_equal(s.submitted, N);
    assert_int_equal(s.failed, N / 3);
    assert_int_equal(s.ok, N - N / 3);
    assert_int_equal(s.threads, 1);
    cl_pool_shutdown(p, false);
}

static void test_get_times_out_and_leaves_the_task_running(void **state)
{
    (void)state;
    gate_set(false);
    struct cl_pool *p = pool_of(1, false);
    struct job j = {.in = 21, .wait_gate = true};
    struct cl_pool_future *f = cl_pool_submit(p, run_job, &j);
    wait_began(&j);
    uint64_t t0 = cl_now_ns();
    assert_int_equal(cl_pool_get(f, 60 * MS, NULL, NULL), CL_POOL_TIMEOUT);
    uint64_t took = cl_now_ns() - t0;
    assert_true(took >= 60 * MS);
    assert_true(took < 5000 * MS);
    assert_int_equal(cl_pool_get(f, 0, NULL, NULL), CL_POOL_TIMEOUT); /* 0: no wait */
    assert_int_equal(cl_pool_state(f), CL_POOL_RUNNING);              /* untouched */
    gate_set(true);
    uint64_t v = 0;
    assert_int_equal(cl_pool_get(f, 5000 * MS, &v, NULL), CL_POOL_OK);
    assert_int_equal(v, 42);
    cl_pool_release(f);
    cl_pool_shutdown(p, false);
}

static void test_cancel_only_while_pending(void **state)
{
    (void)state;
    gate_set(false);
    struct cl_pool *p = pool_of(1, false);
    struct job a = {.in = 1, .wait_gate = true}, b = {.in = 2};
    struct cl_pool_future *fa = cl_pool_submit(p, run_job, &a);
    struct cl_pool_future *fb = cl_pool_submit(p, run_job, &b);
    wait_began(&a);
    assert_false(cl_pool_cancel(fa)); /* running: cannot be stopped, and says so */
    assert_int_equal(cl_pool_state(fa), CL_POOL_RUNNING);
    assert_int_equal(cl_pool_state(fb), CL_POOL_PENDING);
    assert_true(cl_pool_cancel(fb));
    assert_true(cl_pool_cancel(fb)); /* already cancelled: still true, as in Python */
    assert_int_equal(cl_pool_get(fb, 0, NULL, NULL), CL_POOL_CANCELLED);
    gate_set(true);
    assert_int_equal(cl_pool_get(fa, CL_FOREVER, NULL, NULL), CL_POOL_OK);
    assert_false(cl_pool_cancel(fa)); /* finished */
    cl_pool_release(fa);
    cl_pool_release(fb);
    cl_pool_shutdown(p, false); /* the worker pops b and skips it */
    assert_int_equal(atomic_load(&b.ran), 0);
    assert_int_equal(atomic_load(&a.ran), 1);
}

struct seen {
    pthread_mutex_t mu;
    int order[8];
    int n;
    pthread_t thread;
};

static void note(struct cl_pool_future *f, void *arg, int tag)
{
    (void)f;
    struct seen *s = arg;
    CL_PT(pthread_mutex_lock(&s->mu));
    s->order[s->n++] = tag;
    s->thread = pthread_self();
    CL_PT(pthread_mutex_unlock(&s->mu));
}

static void note1(struct cl_pool_future *f, void *arg)
{
    note(f, arg, 1);
}

static void note2(struct cl_pool_future *f, void *arg)
{
    note(f, arg, 2);
}

static void test_done_callbacks(void **state)
{
    (void)state;
    gate_set(false);
    struct cl_pool *p = pool_of(1, false);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct job j = {.in = 5, .wait_gate = true}, k = {.in = 6};
    struct cl_pool_future *f = cl_pool_submit(p, run_job, &j);
    struct cl_pool_future *g = cl_pool_submit(p, run_job, &k);
    cl_pool_on_done(f, note1, &s);
    cl_pool_on_done(f, note2, &s);
    assert_int_equal(s.n, 0);
    gate_set(true);
    assert_int_equal(cl_pool_get(f, CL_FOREVER, NULL, NULL), CL_POOL_OK);
    cl_pool_get(g, CL_FOREVER, NULL, NULL);
    cl_pool_shutdown(p, false); /* joined: the callbacks have run */
    assert_int_equal(s.n, 2);
    assert_int_equal(s.order[0], 1); /* in the order they were added */
    assert_int_equal(s.order[1], 2);
    assert_true(pthread_equal(s.thread, j.thread)); /* on the worker that finished it */
    cl_pool_on_done(f, note1, &s);                  /* already done: at once, on this thread */
    assert_int_equal(s.n, 3);
    assert_true(pthread_equal(s.thread, pthread_self()));
    cl_pool_release(f);
    cl_pool_release(g);
}

static void test_callback_of_a_cancelled_future(void **state)
{
    (void)state;
    gate_set(false);
    struct cl_pool *p = pool_of(1, false);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct job j = {.wait_gate = true}, k = {0};
    struct cl_pool_future *f = cl_pool_submit(p, run_job, &j);
    struct cl_pool_future *g = cl_pool_submit(p, run_job, &k);
    cl_pool_on_done(g, note1, &s);
    wait_began(&j);
    assert_true(cl_pool_cancel(g));
    assert_int_equal(s.n, 1); /* ran in the cancelling thread, before cancel returned */
    gate_set(true);
    cl_pool_release(f);
    cl_pool_release(g);
    cl_pool_shutdown(p, false);
}

/* Task i sleeps (n - i) x 50 ms: the last submitted finishes first. */
static struct job *staggered(size_t n)
{
    struct job *jobs = cl_xcalloc(n, sizeof *jobs);
    for (size_t i = 0; i < n; i++)
        jobs[i] = (struct job){.in = i, .sleep_ms = 50 * (n - i)};
    return jobs;
}

static void test_map_yields_in_input_order(void **state)
{
    (void)state;
    enum { N = 4 };
    struct job *jobs = staggered(N);
    jobs[1].fail = 77;
    struct cl_pool *p = pool_of(N, false);
    uint64_t t0 = cl_now_ns();
    struct cl_pool_iter *it = cl_pool_map(p, run_job, jobs, sizeof *jobs, N, CL_FOREVER);
    assert_non_null(it);
    size_t idx = 99;
    uint64_t v = 0;
    int err = 0;
    assert_int_equal(cl_pool_next(it, &idx, &v, &err), CL_POOL_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(v, 0);
    /* the first result waited for the slowest task: head-of-line blocking */
    assert_true(cl_now_ns() - t0 >= 200 * MS);
    assert_int_equal(cl_pool_next(it, &idx, &v, &err), CL_POOL_FAILED);
    assert_int_equal(idx, 1);
    assert_int_equal(err, 77);
    for (size_t i = 2; i < N; i++) {
        assert_int_equal(cl_pool_next(it, &idx, &v, &err), CL_POOL_OK);
        assert_int_equal(idx, i);
        assert_int_equal(v, 2 * i);
    }
    assert_int_equal(cl_pool_next(it, &idx, &v, &err), CL_POOL_END);
    cl_pool_iter_end(it);
    cl_pool_shutdown(p, false);
    free(jobs);
}

static void test_map_deadline_and_early_end(void **state)
{
    (void)state;
    gate_set(false);
    enum { N = 5 };
    struct job jobs[N];
    for (int i = 0; i < N; i++)
        jobs[i] = (struct job){.in = (uint64_t)i, .wait_gate = true};
    struct cl_pool *p = pool_of(1, false);
    uint64_t t0 = cl_now_ns();
    struct cl_pool_iter *it = cl_pool_map(p, run_job, jobs, sizeof *jobs, N, 60 * MS);
    size_t idx;
    assert_int_equal(cl_pool_next(it, &idx, NULL, NULL), CL_POOL_TIMEOUT);
    assert_true(cl_now_ns() - t0 >= 60 * MS); /* the deadline counts from the map call */
    wait_began(&jobs[0]);
    struct cl_pool_future *first = cl_pool_iter_future(it, 0);
    assert_int_equal(cl_pool_state(first), CL_POOL_RUNNING);
    assert_null(cl_pool_iter_future(it, N));
    cl_pool_iter_end(it); /* leaving early cancels the 4 not started */
    gate_set(true);
    cl_pool_shutdown(p, false);
    assert_int_equal(atomic_load(&jobs[0].ran), 1);
    for (int i = 1; i < N; i++)
        assert_int_equal(atomic_load(&jobs[i].ran), 0);
}

static void test_as_completed_yields_in_completion_order(void **state)
{
    (void)state;
    enum { N = 4 };
    static const size_t finish[N] = {2, 0, 3, 1}; /* the order the test lets them end in */
    struct job jobs[N];
    struct cl_pool *p = pool_of(N + 1, false);
    struct job quick = {.in = 100};
    struct cl_pool_future *fs[N + 1];
    fs[N] = cl_pool_submit(p, run_job, &quick);
    assert_int_equal(cl_pool_get(fs[N], CL_FOREVER, NULL, NULL), CL_POOL_OK);
    for (size_t i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = i, .own_gate = true};
        fs[i] = cl_pool_submit(p, run_job, &jobs[i]);
    }
    struct cl_pool_iter *it = cl_pool_as_completed(fs, N + 1, CL_FOREVER);
    size_t idx;
    uint64_t v;
    assert_int_equal(cl_pool_next(it, &idx, &v, NULL), CL_POOL_OK);
    assert_int_equal(idx, N); /* already done: first */
    assert_int_equal(v, 200);
    for (size_t k = 0; k < N; k++) { /* then each as it is let go, whatever its index */
        release(&jobs[finish[k]]);
        assert_int_equal(cl_pool_next(it, &idx, &v, NULL), CL_POOL_OK);
        assert_int_equal(idx, finish[k]);
        assert_int_equal(v, 2 * finish[k]);
    }
    assert_int_equal(cl_pool_next(it, &idx, &v, NULL), CL_POOL_END);
    cl_pool_iter_end(it);
    for (size_t i = 0; i <= N; i++)
        cl_pool_release(fs[i]);
    cl_pool_shutdown(p, false);
}

static void test_as_completed_deadline_then_end_before_all_settle(void **state)
{
    (void)state;
    gate_set(false);
    enum { N = 3 };
    struct job jobs[N];
    struct cl_pool *p = pool_of(N, false);
    struct cl_pool_future *fs[N];
    for (size_t i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = i, .wait_gate = true};
        fs[i] = cl_pool_submit(p, run_job, &jobs[i]);
    }
    uint64_t t0 = cl_now_ns();
    struct cl_pool_iter *it = cl_pool_as_completed(fs, N, 20 * MS);
    size_t idx;
    assert_int_equal(cl_pool_next(it, &idx, NULL, NULL), CL_POOL_TIMEOUT);
    assert_true(cl_now_ns() - t0 >= 20 * MS);
    cl_pool_iter_end(it); /* the futures settle after, with the iterator gone */
    gate_set(true);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(cl_pool_get(fs[i], CL_FOREVER, NULL, NULL), CL_POOL_OK);
        cl_pool_release(fs[i]);
    }
    cl_pool_shutdown(p, false);
}

static void test_shutdown_runs_every_queued_task(void **state)
{
    (void)state;
    enum { N = 50 };
    struct job jobs[N];
    struct cl_pool *p = pool_of(2, false);
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = (uint64_t)i};
        struct cl_pool_future *f = cl_pool_submit(p, run_job, &jobs[i]);
        cl_pool_release(f); /* fire and forget: the pool keeps its own reference */
    }
    cl_pool_shutdown(p, false);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&jobs[i].ran), 1);
}

struct shutdown_arg {
    struct cl_pool *p;
};

static void *shutdown_cancelling(void *arg)
{
    struct shutdown_arg *a = arg;
    cl_pool_shutdown(a->p, true);
    return NULL;
}

static struct cl_pool *late_pool;
static int late_errno;
static _Atomic bool late_began;

static int submit_late(void *arg, uint64_t *result)
{
    (void)arg;
    (void)result;
    atomic_store(&late_began, true);
    CL_PT(pthread_mutex_lock(&gate.mu));
    while (!gate.open)
        CL_PT(pthread_cond_wait(&gate.cv, &gate.mu));
    CL_PT(pthread_mutex_unlock(&gate.mu));
    struct cl_pool_future *f = cl_pool_submit(late_pool, run_job, NULL);
    late_errno = f == NULL ? errno : 0;
    return 0;
}

static void test_shutdown_cancels_pending_and_refuses_new_tasks(void **state)
{
    (void)state;
    gate_set(false);
    enum { N = 5 };
    struct job jobs[N];
    struct cl_pool *p = late_pool = pool_of(1, false);
    struct cl_pool_future *running = cl_pool_submit(p, submit_late, NULL);
    struct cl_pool_future *fs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = (uint64_t)i};
        fs[i] = cl_pool_submit(p, run_job, &jobs[i]);
    }
    for (int i = 0; i < 5000 && !atomic_load(&late_began); i++)
        cl_sleep_ns(1 * MS); /* running, so the shutdown cannot cancel it */
    assert_true(atomic_load(&late_began));
    struct shutdown_arg a = {p};
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, shutdown_cancelling, &a));
    for (int i = 0; i < N; i++) /* cancelled by the shutdown, while the first runs */
        assert_int_equal(cl_pool_get(fs[i], 5000 * MS, NULL, NULL), CL_POOL_CANCELLED);
    assert_int_equal(cl_pool_state(running), CL_POOL_RUNNING);
    gate_set(true); /* the running task now submits: refused */
    CL_PT(pthread_join(t, NULL));
    assert_int_equal(cl_pool_get(running, 0, NULL, NULL), CL_POOL_OK);
    assert_int_equal(late_errno, ESHUTDOWN);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&jobs[i].ran), 0);
        cl_pool_release(fs[i]);
    }
    cl_pool_release(running); /* valid after the pool is gone */
}

static void test_completion_fd(void **state)
{
    (void)state;
    enum { N = 3 };
    struct job jobs[N];
    struct cl_pool *p = pool_of(2, true);
    int fd = cl_pool_completion_fd(p);
    assert_true(fd >= 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0); /* nothing settled yet */
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.in = (uint64_t)i, .sleep_ms = 10};
        cl_pool_release(cl_pool_submit(p, run_job, &jobs[i]));
    }
    int taken = 0;
    uint64_t sum = 0;
    while (taken < N) { /* as an event loop would: wait, clear, take them all */
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        uint64_t count;
        assert_int_equal(read(fd, &count, sizeof count), sizeof count);
        assert_true(count >= 1);
        for (struct cl_pool_future *f; (f = cl_pool_take_done(p)) != NULL; taken++) {
            uint64_t v;
            assert_int_equal(cl_pool_get(f, 0, &v, NULL), CL_POOL_OK);
            sum += v;
            cl_pool_release(f);
        }
    }
    assert_int_equal(sum, 2 * (0 + 1 + 2));
    assert_int_equal(poll(&pfd, 1, 0), 0); /* every wake-up was consumed */
    assert_null(cl_pool_take_done(p));
    cl_pool_shutdown(p, false);
}

static void test_threads_start_on_demand_up_to_the_cap(void **state)
{
    (void)state;
    struct cl_pool *p = pool_of(3, false);
    assert_int_equal(cl_pool_stats(p).threads, 0);
    struct job one = {.in = 1};
    struct cl_pool_future *f = cl_pool_submit(p, run_job, &one);
    cl_pool_get(f, CL_FOREVER, NULL, NULL);
    cl_pool_release(f);
    assert_int_equal(cl_pool_stats(p).threads, 1);
    gate_set(false);
    enum { N = 6 };
    struct job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.wait_gate = true};
        cl_pool_release(cl_pool_submit(p, run_job, &jobs[i]));
    }
    for (int i = 0; i < 3; i++) /* the idle one is reused, then two more: the cap */
        wait_began(&jobs[i]);
    struct cl_pool_stats s = cl_pool_stats(p);
    assert_int_equal(s.threads, 3);
    assert_int_equal(s.queued, N - 3);
    gate_set(true);
    cl_pool_shutdown(p, false);
}

static _Atomic uint64_t stream_sum;
static _Atomic int callbacks;

static int add_task(void *arg, uint64_t *result)
{
    uint64_t v = (uint64_t)(uintptr_t)arg;
    atomic_fetch_add_explicit(&stream_sum, v, memory_order_relaxed);
    *result = v;
    return v % 7 == 0 ? EDOM : 0;
}

static void count_callback(struct cl_pool_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&callbacks, 1);
}

static void test_a_stream_of_tiny_tasks_loses_nothing(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct cl_pool *p = pool_of(4, false);
    atomic_store(&stream_sum, 0);
    atomic_store(&callbacks, 0);
    for (uintptr_t i = 1; i <= N; i++) {
        struct cl_pool_future *f =
            cl_pool_submit(p, add_task, (void *)i); /* NOLINT(performance-no-int-to-ptr) */
        cl_pool_on_done(f, count_callback, NULL);
        cl_pool_release(f);
    }
    cl_pool_shutdown(p, false);
    assert_int_equal(atomic_load(&stream_sum), (uint64_t)N * (N + 1) / 2);
    assert_int_equal(atomic_load(&callbacks), N);
}

static void test_status_words(void **state)
{
    (void)state;
    assert_string_equal(cl_pool_status_str(CL_POOL_OK), "ok");
    assert_string_equal(cl_pool_status_str(CL_POOL_CANCELLED), "cancelled");
    assert_string_equal(cl_pool_status_str(CL_POOL_TIMEOUT), "timeout");
    assert_string_equal(cl_pool_status_str((enum cl_pool_status)99), "?");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_bad_sizes),
        cmocka_unit_test(test_results_and_errors_reach_their_futures),
        cmocka_unit_test(test_get_times_out_and_leaves_the_task_running),
        cmocka_unit_test(test_cancel_only_while_pending),
        cmocka_unit_test(test_done_callbacks),
        cmocka_unit_test(test_callback_of_a_cancelled_future),
        cmocka_unit_test(test_map_yields_in_input_order),
        cmocka_unit_test(test_map_deadline_and_early_end),
        cmocka_unit_test(test_as_completed_yields_in_completion_order),
        cmocka_unit_test(test_as_completed_deadline_then_end_before_all_settle),
        cmocka_unit_test(test_shutdown_runs_every_queued_task),
        cmocka_unit_test(test_shutdown_cancels_pending_and_refuses_new_tasks),
        cmocka_unit_test(test_completion_fd),
        cmocka_unit_test(test_threads_start_on_demand_up_to_the_cap),
        cmocka_unit_test(test_a_stream_of_tiny_tasks_loses_nothing),
        cmocka_unit_test(test_status_words),
    };
    return UNIT_MAIN("pool", tests);
}
