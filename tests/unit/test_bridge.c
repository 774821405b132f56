/* cl_bridge: a task awaits pool threads and is woken through the loop's eventfd;
 * calls from other threads coalesce into fewer wake-ups and none is lost; a
 * thread waits for a task's outcome, times out, cancels; the queue loses no
 * wake-up whichever side waits, and a wake-up that reaches a cancelled waiter
 * goes to the next. Orders are forced with gates, never with sleeps alone. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

/* ---- pool tasks ---- */

static _Atomic bool gate_open;
static _Atomic int started;

static int square(void *arg, uint64_t *result)
{
    uint64_t x = (uint64_t)(uintptr_t)arg;
    cl_sleep_ns(5 * MS);
    *result = x * x;
    return 0;
}

static int failing(void *arg, uint64_t *result)
{
    (void)arg;
    (void)result;
    return EDOM;
}

static int wait_gate(void *arg, uint64_t *result)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&gate_open))
        cl_sleep_ns(MS);
    *result = 7;
    return 0;
}

/* A task that awaits three pool calls in turn and sums them. */
struct summer {
    struct cl_task task;
    struct cl_pool *pool;
    int i;
    intptr_t sum;
    struct cl_future *f;
};

static int summer_run(struct cl_task *t)
{
    struct summer *s = (struct summer *)t;
    CL_BEGIN(t);
    for (s->i = 1; s->i <= 3; s->i++) {
        s->f = cl_run_in_pool(t->fut.loop, s->pool, square, (void *)(uintptr_t)s->i);
        CL_AWAIT(t, s->f);
        s->sum += s->f->value;
        cl_future_unref(s->f);
    }
    CL_RETURN(t, s->sum);
    CL_END(t);
}

static void test_run_in_pool_wakes_the_loop_with_each_result(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){0});
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = 2});
    struct summer *s = (struct summer *)cl_task_new(loop, summer_run, sizeof *s, "summer");
    s->pool = pool;
    /* nothing but the pool can complete the task: the calls hold the loop */
    assert_true(cl_loop_run_until(loop, &s->task.fut));
    assert_int_equal(s->task.fut.err, 0);
    assert_int_equal(s->task.fut.value, 1 + 4 + 9);
    assert_true(atomic_load(&loop->ts_wakes) >= 1);
    assert_int_equal(atomic_load(&loop->ts_posts), 3);
    cl_future_unref(&s->task.fut);
    cl_pool_shutdown(pool, false);
    cl_loop_free(loop);
}

static void test_run_in_pool_failure_and_cancel(void **state)
{
    (void)state;
    atomic_store(&gate_open, false);
    atomic_store(&started, 0);
    struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){0});
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = 1});
    struct cl_future *bad = cl_run_in_pool(loop, pool, failing, NULL);
    assert_true(cl_loop_run_until(loop, bad));
    assert_int_equal(bad->err, EDOM);
    cl_future_unref(bad);
    /* the one worker is held at the gate: the second call waits in the pool */
    struct cl_future *busy = cl_run_in_pool(loop, pool, wait_gate, NULL);
    struct cl_future *queued = cl_run_in_pool(loop, pool, wait_gate, NULL);
    while (atomic_load(&started) == 0)
        cl_sleep_ns(MS);
    assert_true(cl_future_cancel(queued));
    atomic_store(&gate_open, true);
    assert_true(cl_loop_run_until(loop, busy));
    assert_int_equal(busy->value, 7);
    cl_loop_run(loop); /* returns once the cancelled call's outcome is delivered */
    assert_true(cl_future_cancelled(queued));
    assert_int_equal(atomic_load(&started), 1); /* the cancelled task never ran */
    cl_future_unref(busy);
    cl_future_unref(queued);
    cl_pool_shutdown(pool, false);
    cl_loop_free(loop);
}

/* ---- call_soon_threadsafe: coalescing, nothing lost, each sender in order ---- */

#define SENDERS 4
#define POSTS   2000

static struct {
    struct cl_loop *loop;
    uint64_t ran;
    int last[SENDERS];
    bool in_order;
} cs;

static void counted(void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    int sender = (int)(v / POSTS), n = (int)(v % POSTS);
    if (n != cs.last[sender] + 1)
        cs.in_order = false;
    cs.last[sender] = n;
    if (++cs.ran == SENDERS * POSTS)
        cl_loop_stop(cs.loop);
}

static void *sender(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (uintptr_t n = 0; n < POSTS; n++)
        cl_loop_call_soon_threadsafe(cs.loop, counted, (void *)(id * POSTS + n));
    return NULL;
}

static void test_threadsafe_calls_coalesce_and_none_is_lost(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        cs.loop = cl_loop_new(&(struct cl_loop_opts){0});
        cs.ran = 0;
        cs.in_order = true;
        for (int i = 0; i < SENDERS; i++)
            cs.last[i] = -1;
        pthread_t t[SENDERS];
        for (uintptr_t i = 0; i < SENDERS; i++)
            CL_PT(pthread_create(&t[i], NULL, sender, (void *)i));
        if (round == 0) /* the loop not running yet: every post shares one wake-up */
            for (int i = 0; i < SENDERS; i++)
                CL_PT(pthread_join(t[i], NULL));
        cl_loop_hold(cs.loop);
        cl_loop_run(cs.loop);
        cl_loop_release(cs.loop);
        if (round == 1)
            for (int i = 0; i < SENDERS; i++)
                CL_PT(pthread_join(t[i], NULL));
        assert_int_equal(cs.ran, SENDERS * POSTS);
        assert_true(cs.in_order);
        uint64_t wakes = atomic_load(&cs.loop->ts_wakes);
        assert_int_equal(atomic_load(&cs.loop->ts_posts), SENDERS * POSTS);
        if (round == 0)
            assert_int_equal(wakes, 1);
        else
            assert_true(wakes >= 1 && wakes <= SENDERS * POSTS);
        cl_loop_free(cs.loop);
    }
}

/* ---- thread -> loop -> thread ---- */

struct napper {
    struct cl_task task;
    uint64_t ms;
    int fail;
};

static int napper_run(struct cl_task *t)
{
    struct napper *n = (struct napper *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, n->ms * MS);
    if (n->fail)
        CL_RAISE(t, n->fail, "the task failed");
    CL_RETURN(t, 42);
    CL_END(t);
}

struct nap_args {
    uint64_t ms;
    int fail;
};

static void napper_init(struct cl_task *t, void *arg)
{
    struct napper *n = (struct napper *)t;
    const struct nap_args *a = arg;
    n->ms = a->ms;
    n->fail = a->fail;
}

static void *loop_thread(void *arg)
{
    cl_loop_run(arg);
    return NULL;
}

static _Atomic int callbacks;
static void on_done(struct cl_xfuture *xf, void *arg)
{
    (void)arg;
    if (cl_xfuture_result(xf, NULL, NULL) != CL_POOL_RUNNING)
        atomic_fetch_add(&callbacks, 1);
}

static void test_a_thread_waits_for_a_task(void **state)
{
    (void)state;
    atomic_store(&callbacks, 0);
    struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){0});
    cl_loop_hold(loop);
    pthread_t lt;
    CL_PT(pthread_create(&lt, NULL, loop_thread, loop));
    intptr_t v = 0;
    int err = 0;

    struct cl_xfuture *ok = cl_run_coro_threadsafe(loop, napper_run, sizeof(struct napper), "ok",
                                                   napper_init, &(struct nap_args){.ms = 5});
    cl_xfuture_on_done(ok, on_done, NULL);
    assert_int_equal(cl_xfuture_wait(ok, CL_FOREVER, &v, &err), CL_POOL_OK);
    assert_int_equal(v, 42);

    struct cl_xfuture *bad =
        cl_run_coro_threadsafe(loop, napper_run, sizeof(struct napper), "bad", napper_init,
                               &(struct nap_args){.ms = 1, .fail = EIO});
    cl_xfuture_on_done(bad, on_done, NULL);
    assert_int_equal(cl_xfuture_wait(bad, 2000 * MS, &v, &err), CL_POOL_FAILED);
    assert_int_equal(err, EIO);

    /* a timeout leaves the task running; a cancel then ends it */
    struct cl_xfuture *slow =
        cl_run_coro_threadsafe(loop, napper_run, sizeof(struct napper), "slow", napper_init,
                               &(struct nap_args){.ms = 10000});
    cl_xfuture_on_done(slow, on_done, NULL);
    assert_int_equal(cl_xfuture_wait(slow, 20 * MS, &v, &err), CL_POOL_TIMEOUT);
    assert_true(cl_xfuture_cancel(slow));
    assert_int_equal(cl_xfuture_wait(slow, 2000 * MS, &v, &err), CL_POOL_CANCELLED);
    assert_false(cl_xfuture_cancel(ok)); /* settled: nothing to cancel */
    /* the done callback runs on every path, on the loop thread after the waiters
     * are woken; one added to a settled future runs at once */
    for (int i = 0; i < 1000 && atomic_load(&callbacks) < 3; i++)
        cl_sleep_ns(MS);
    assert_int_equal(atomic_load(&callbacks), 3);
    cl_xfuture_on_done(ok, on_done, NULL);
    assert_int_equal(atomic_load(&callbacks), 4);

    cl_xfuture_release(ok);
    cl_xfuture_release(bad);
    cl_xfuture_release(slow);
    cl_loop_release(loop);
    CL_PT(pthread_join(lt, NULL));
    cl_loop_free(loop);
}

static _Atomic int napper_steps;

static int counted_napper_run(struct cl_task *t)
{
    atomic_fetch_add(&napper_steps, 1);
    return napper_run(t);
}

static void test_a_cancel_sent_before_the_task_starts(void **state)
{
    (void)state;
    atomic_store(&napper_steps, 0);
    struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){0});
    /* both calls wait in the loop's queue: the start, then the cancel */
    struct cl_xfuture *xf =
        cl_run_coro_threadsafe(loop, counted_napper_run, sizeof(struct napper), "never",
                               napper_init, &(struct nap_args){.ms = 10});
    assert_true(cl_xfuture_cancel(xf));
    assert_false(cl_xfuture_cancel(xf)); /* asked once already */
    intptr_t v;
    int err;
    assert_int_equal(cl_xfuture_wait(xf, 0, &v, &err), CL_POOL_TIMEOUT);
    cl_loop_run(loop); /* returns once both calls have run and the task has ended */
    assert_int_equal(cl_xfuture_wait(xf, 0, &v, &err), CL_POOL_CANCELLED);
    assert_int_equal(atomic_load(&napper_steps), 0); /* it never ran */
    cl_xfuture_release(xf);
    cl_loop_free(loop);
}

/* ---- the queue ---- */

#define ITEMS 3000

struct qtask {
    struct cl_task task;
    struct cl_bqueue *q;
    intptr_t item, n, expect;
    struct cl_future *wait;
    int err;
    bool putting;
};

static int qtask_run(struct cl_task *t)
{
    struct qtask *k = (struct qtask *)t;
    CL_BEGIN(t);
    for (k->n = 0; k->n < ITEMS; k->n++) {
        if (k->putting) {
            k->item = k->n;
            CL_BQUEUE_PUT(t, k->q, k->item, k->wait, k->err);
        } else {
            CL_BQUEUE_GET(t, k->q, k->item, k->wait, k->err);
            if (k->err != 0 || k->item != k->n)
                CL_RAISE(t, EPROTO, "out of order");
        }
    }
    CL_RETURN(t, k->n);
    CL_END(t);
}

struct qthread {
    struct cl_bqueue *q;
    bool putting;
    bool ok;
};

static void *qthread_run(void *arg)
{
    struct qthread *p = arg;
    p->ok = true;
    for (intptr_t n = 0; n < ITEMS; n++) {
        intptr_t item = -1;
        if (p->putting)
            p->ok &= cl_bqueue_put(p->q, n, CL_FOREVER) == 0;
        else
            p->ok &= cl_bqueue_get(p->q, &item, CL_FOREVER) == 0 && item == n;
    }
    return NULL;
}

static void test_queue_both_directions_lose_nothing(void **state)
{
    (void)state;
    for (int dir = 0; dir < 2; dir++) { /* thread puts, task gets; then the reverse */
        struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){0});
        struct cl_bqueue q;
        assert_int_equal(cl_bqueue_init(&q, loop, 4), 0);
        struct qthread th = {.q = &q, .putting = dir == 0};
        struct qtask *k = (struct qtask *)cl_task_new(loop, qtask_run, sizeof *k, "q");
        k->q = &q;
        k->putting = dir == 1;
        pthread_t t;
        CL_PT(pthread_create(&t, NULL, qthread_run, &th));
        cl_loop_hold(loop); /* the thread will wake it */
        bool done = cl_loop_run_until(loop, &k->task.fut);
        cl_loop_release(loop);
        CL_PT(pthread_join(t, NULL));
        assert_true(done);
        assert_int_equal(k->task.fut.err, 0);
        assert_true(th.ok);
        assert_int_equal(atomic_load(&q.puts), ITEMS);
        assert_int_equal(atomic_load(&q.gets), ITEMS);
        cl_future_unref(&k->task.fut);
        cl_loop_run(loop); /* wake-ups still queued */
        cl_bqueue_destroy(&q);
        cl_loop_free(loop);
    }
}

static void test_queue_timeouts_close_and_a_cancelled_waiter(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(&(struct cl_loop_opts){0});
    struct cl_bqueue q;
    assert_int_equal(cl_bqueue_init(&q, loop, 1), 0);
    intptr_t item;
    assert_int_equal(cl_bqueue_get(&q, &item, 10 * MS), ETIMEDOUT);
    assert_int_equal(cl_bqueue_put(&q, 1, 0), 0);
    assert_int_equal(cl_bqueue_put(&q, 2, 10 * MS), ETIMEDOUT);
    assert_int_equal(cl_bqueue_get(&q, &item, 0), 0);
    assert_int_equal(item, 1);

    /* two tasks wait for an item; the first is cancelled; one item arrives from
     * a thread's side: the wake-up meant for the first goes to the second */
    struct qtask *a = (struct qtask *)cl_task_new(loop, qtask_run, sizeof *a, "a");
    struct qtask *b = (struct qtask *)cl_task_new(loop, qtask_run, sizeof *b, "b");
    a->q = b->q = &q;
    cl_loop_run(loop); /* both take their first step and wait */
    assert_int_equal(q.getters.len, 2);
    cl_task_cancel(&a->task);
    cl_loop_run(loop);
    assert_true(cl_future_cancelled(&a->task.fut));
    assert_int_equal(cl_bqueue_put(&q, 0, 0), 0); /* item 0: what b expects first */
    cl_loop_run(loop); /* runs the posted wake-up, then b, which waits again */
    assert_int_equal(atomic_load(&q.gets), 2);
    assert_false(b->task.fut.done); /* b took item 0 and waits for item 1 */

    /* close: the waiting task ends with EPIPE (its get fails the order check) */
    cl_bqueue_close(&q);
    cl_loop_run(loop);
    assert_true(b->task.fut.done);
    assert_int_equal(b->task.fut.err, EPROTO);
    assert_int_equal(cl_bqueue_put(&q, 3, 0), EPIPE);
    assert_int_equal(cl_bqueue_get(&q, &item, 0), EPIPE);
    assert_int_equal(cl_bqueue_init(&(struct cl_bqueue){0}, loop, 0), EINVAL);
    cl_future_unref(&a->task.fut);
    cl_future_unref(&b->task.fut);
    cl_bqueue_destroy(&q);
    cl_loop_free(loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_in_pool_wakes_the_loop_with_each_result),
        cmocka_unit_test(test_run_in_pool_failure_and_cancel),
        cmocka_unit_test(test_threadsafe_calls_coalesce_and_none_is_lost),
        cmocka_unit_test(test_a_thread_waits_for_a_task),
        cmocka_unit_test(test_a_cancel_sent_before_the_task_starts),
        cmocka_unit_test(test_queue_both_directions_lose_nothing),
        cmocka_unit_test(test_queue_timeouts_close_and_a_cancelled_waiter),
    };
    return UNIT_MAIN("bridge", tests);
}
