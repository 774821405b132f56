/* cl_queue: order, bounds, the non-blocking and timed calls, close while threads
 * are blocked, task_done/join, and many producers and consumers losing nothing.
 * Every wait is bounded (timed calls, or a watchdog-like timeout on joins), and
 * timing assertions are lower bounds, or upper bounds with a wide margin. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

static void *item(uintptr_t n)
{
    return (void *)n; /* NOLINT(performance-no-int-to-ptr): a number as the item */
}

static void test_init_refuses_bad_capacity(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 0), EINVAL);
    assert_int_equal(cl_queue_init(&q, CL_QUEUE_MAX + 1), EINVAL);
    assert_int_equal(cl_queue_init(&q, 1), 0);
    cl_queue_destroy(&q);
}

static void test_fifo_and_try_calls(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 3), 0);
    void *got = NULL;
    assert_int_equal(cl_queue_try_get(&q, &got), CL_Q_EMPTY);
    for (uintptr_t i = 1; i <= 3; i++)
        assert_int_equal(cl_queue_try_put(&q, item(i)), CL_Q_OK);
    assert_int_equal(cl_queue_try_put(&q, item(4)), CL_Q_FULL);
    assert_int_equal(cl_queue_len(&q), 3);
    struct cl_queue_snapshot s = cl_queue_peek(&q);
    assert_int_equal(s.len, 3);
    assert_int_equal(s.cap, 3);
    assert_false(s.closed);
    /* wrap around the ring a few times, order kept */
    for (uintptr_t i = 1; i <= 30; i++) {
        assert_int_equal(cl_queue_get(&q, &got), CL_Q_OK);
        assert_ptr_equal(got, item(i));
        assert_int_equal(cl_queue_put(&q, item(i + 3)), CL_Q_OK);
    }
    assert_int_equal(cl_queue_len(&q), 3);
    cl_queue_destroy(&q);
}

static void test_timeouts(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 1), 0);
    void *got;
    uint64_t t0 = cl_now_ns();
    assert_int_equal(cl_queue_get_timed(&q, &got, 50 * MS), CL_Q_TIMEOUT);
    uint64_t took = cl_now_ns() - t0;
    assert_true(took >= 50 * MS);
    assert_true(took < 5000 * MS);
    assert_int_equal(cl_queue_put_timed(&q, item(7), 0), CL_Q_OK);
    t0 = cl_now_ns();
    assert_int_equal(cl_queue_put_timed(&q, item(8), 30 * MS), CL_Q_TIMEOUT);
    assert_true(cl_now_ns() - t0 >= 30 * MS);
    assert_int_equal(cl_queue_get_timed(&q, &got, 0), CL_Q_OK); /* ready: no wait */
    assert_ptr_equal(got, item(7));
    assert_int_equal(cl_queue_len(&q), 0);
    cl_queue_destroy(&q);
}

/* A thread blocked in get or put. */
struct blocked {
    struct cl_queue *q;
    bool putter;
    enum cl_qstatus status;
    void *got;
    _Atomic bool done;
};

static void *block_in_queue(void *arg)
{
    struct blocked *b = arg;
    b->status = b->putter ? cl_queue_put(b->q, item(99)) : cl_queue_get(b->q, &b->got);
    atomic_store(&b->done, true);
    return NULL;
}

/* Wait (bounded) until n threads are asleep in the queue, as the peek shows. */
static void wait_for_waiters(struct cl_queue *q, int putters, int getters)
{
    for (int i = 0; i < 5000; i++) {
        struct cl_queue_snapshot s = cl_queue_peek(q);
        if (s.putters_waiting == putters && s.getters_waiting == getters)
            return;
        cl_sleep_ns(1 * MS);
    }
    fail_msg("waiters never reached %d putters, %d getters", putters, getters);
}

static void join_within(pthread_t t, struct blocked *b)
{
    for (int i = 0; i < 5000 && !atomic_load(&b->done); i++)
        cl_sleep_ns(1 * MS);
    assert_true(atomic_load(&b->done));
    CL_PT(pthread_join(t, NULL));
}

static void test_close_wakes_blocked_getters(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 2), 0);
    struct blocked b[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        b[i] = (struct blocked){.q = &q};
        CL_PT(pthread_create(&t[i], NULL, block_in_queue, &b[i]));
    }
    wait_for_waiters(&q, 0, 3);
    cl_queue_close(&q);
    for (int i = 0; i < 3; i++) {
        join_within(t[i], &b[i]);
        assert_int_equal(b[i].status, CL_Q_CLOSED);
    }
    assert_true(cl_queue_peek(&q).closed);
    assert_int_equal(cl_queue_put(&q, item(1)), CL_Q_CLOSED);
    assert_int_equal(cl_queue_try_put(&q, item(1)), CL_Q_CLOSED);
    cl_queue_close(&q); /* twice is fine */
    cl_queue_destroy(&q);
}

static void test_close_wakes_blocked_putter_and_get_drains(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 2), 0);
    assert_int_equal(cl_queue_put(&q, item(1)), CL_Q_OK);
    assert_int_equal(cl_queue_put(&q, item(2)), CL_Q_OK);
    struct blocked b = {.q = &q, .putter = true};
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, block_in_queue, &b));
    wait_for_waiters(&q, 1, 0);
    cl_queue_close(&q);
    join_within(t, &b);
    assert_int_equal(b.status, CL_Q_CLOSED); /* its item never went in */
    void *got;
    assert_int_equal(cl_queue_get(&q, &got), CL_Q_OK); /* what was there still comes out */
    assert_ptr_equal(got, item(1));
    assert_int_equal(cl_queue_try_get(&q, &got), CL_Q_OK);
    assert_ptr_equal(got, item(2));
    assert_int_equal(cl_queue_get(&q, &got), CL_Q_CLOSED); /* then: closed, without blocking */
    assert_int_equal(cl_queue_try_get(&q, &got), CL_Q_CLOSED);
    assert_int_equal(cl_queue_get_timed(&q, &got, 1000 * MS), CL_Q_CLOSED);
    cl_queue_destroy(&q);
}

static void test_put_wakes_a_blocked_getter(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 1), 0);
    struct blocked b = {.q = &q};
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, block_in_queue, &b));
    wait_for_waiters(&q, 0, 1);
    assert_int_equal(cl_queue_put(&q, item(42)), CL_Q_OK);
    join_within(t, &b);
    assert_int_equal(b.status, CL_Q_OK);
    assert_ptr_equal(b.got, item(42));
    cl_queue_destroy(&q);
}

static void test_task_done_and_join(void **state)
{
    (void)state;
    struct cl_queue q;
    assert_int_equal(cl_queue_init(&q, 4), 0);
    assert_int_equal(cl_queue_join_timed(&q, 0), CL_Q_OK); /* nothing put: done at once */
    cl_queue_join(&q);
    assert_int_equal(cl_queue_task_done(&q), CL_Q_TOO_MANY); /* Python: ValueError */
    void *got;
    for (uintptr_t i = 0; i < 3; i++)
        assert_int_equal(cl_queue_put(&q, item(i)), CL_Q_OK);
    assert_int_equal(cl_queue_get(&q, &got), CL_Q_OK);
    assert_int_equal(cl_queue_task_done(&q), CL_Q_OK);
    /* taken is not finished: join waits for task_done, not for an empty queue */
    assert_int_equal(cl_queue_get(&q, &got), CL_Q_OK);
    assert_int_equal(cl_queue_get(&q, &got), CL_Q_OK);
    assert_int_equal(cl_queue_len(&q), 0);
    assert_int_equal(cl_queue_join_timed(&q, 20 * MS), CL_Q_TIMEOUT);
    assert_int_equal(cl_queue_task_done(&q), CL_Q_OK);
    assert_int_equal(cl_queue_task_done(&q), CL_Q_OK);
    assert_int_equal(cl_queue_join_timed(&q, 1000 * MS), CL_Q_OK);
    assert_int_equal(cl_queue_task_done(&q), CL_Q_TOO_MANY);
    cl_queue_destroy(&q);
}

/* Many producers and consumers, shut down by close: every item exactly once,
 * and join returns once every consumer has task_done'd everything. */
#define PRODUCERS    3
#define CONSUMERS    3
#define PER_PRODUCER 20000

struct mpmc {
    struct cl_queue q;
    _Atomic int counts[PRODUCERS * PER_PRODUCER];
    _Atomic int producers_left;
    _Atomic int errors; /* cmocka's asserts belong to the main thread */
};

struct role {
    struct mpmc *m;
    int id;
};

static void *mpmc_producer(void *arg)
{
    struct role *r = arg;
    for (uintptr_t i = 0; i < PER_PRODUCER; i++)
        if (cl_queue_put(&r->m->q, item((uintptr_t)r->id * PER_PRODUCER + i)) != CL_Q_OK)
            atomic_fetch_add(&r->m->errors, 1);
    if (atomic_fetch_sub(&r->m->producers_left, 1) == 1) {
        if (cl_queue_join_timed(&r->m->q, 30000 * MS) != CL_Q_OK)
            atomic_fetch_add(&r->m->errors, 1);
        cl_queue_close(&r->m->q);
    }
    return NULL;
}

static void *mpmc_consumer(void *arg)
{
    struct role *r = arg;
    void *got;
    while (cl_queue_get(&r->m->q, &got) == CL_Q_OK) {
        atomic_fetch_add(&r->m->counts[(uintptr_t)got], 1);
        if (cl_queue_task_done(&r->m->q) != CL_Q_OK)
            atomic_fetch_add(&r->m->errors, 1);
    }
    return NULL;
}

static void test_many_producers_and_consumers(void **state)
{
    (void)state;
    struct mpmc *m = calloc(1, sizeof *m);
    assert_non_null(m);
    assert_int_equal(cl_queue_init(&m->q, 8), 0);
    atomic_store(&m->producers_left, PRODUCERS);
    pthread_t t[PRODUCERS + CONSUMERS];
    struct role roles[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        roles[i] = (struct role){m, i < PRODUCERS ? i : i - PRODUCERS};
        CL_PT(
            pthread_create(&t[i], NULL, i < PRODUCERS ? mpmc_producer : mpmc_consumer, &roles[i]));
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        CL_PT(pthread_join(t[i], NULL));
    assert_int_equal(atomic_load(&m->errors), 0);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        assert_int_equal(atomic_load(&m->counts[i]), 1);
    assert_int_equal(cl_queue_len(&m->q), 0);
    cl_queue_destroy(&m->q);
    free(m);
}

static void test_status_words(void **state)
{
    (void)state;
    assert_string_equal(cl_qstatus_str(CL_Q_OK), "ok");
    assert_string_equal(cl_qstatus_str(CL_Q_FULL), "full");
    assert_string_equal(cl_qstatus_str(CL_Q_EMPTY), "empty");
    assert_string_equal(cl_qstatus_str(CL_Q_TIMEOUT), "timeout");
    assert_string_equal(cl_qstatus_str(CL_Q_CLOSED), "closed");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_refuses_bad_capacity),
        cmocka_unit_test(test_fifo_and_try_calls),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_close_wakes_blocked_getters),
        cmocka_unit_test(test_close_wakes_blocked_putter_and_get_drains),
        cmocka_unit_test(test_put_wakes_a_blocked_getter),
        cmocka_unit_test(test_task_done_and_join),
        cmocka_unit_test(test_many_producers_and_consumers),
        cmocka_unit_test(test_status_words),
    };
    return UNIT_MAIN("queue", tests);
}
