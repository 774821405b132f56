/* cl_gil: the core of the simulated GIL. One holder at a time, drop requests
 * honoured, hand-offs between CPU-bound threads, and a thread blocked in "I/O"
 * holding nothing. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "conclab.h"

#define INTERVAL_NS 1000000ull /* 1 ms switch interval */
#define SLICE       2000u      /* sum-of-squares terms per slice: a few µs */

struct gil_user {
    pthread_t tid;
    struct cl_gil *gil;
    struct cl_gil_thread t;
    int slices;
    _Atomic int *overlaps; /* times another thread was seen holding it */
    uint64_t sink;
};

/* CPU work in slices, checking for a drop request between them; while holding
 * the GIL, the owner must always be this thread. */
static void *cpu_user(void *arg)
{
    struct gil_user *u = arg;
    cl_gil_take(u->gil, &u->t);
    for (int i = 0; i < u->slices; i++) {
        if (atomic_load(&u->gil->owner) != u->t.id)
            atomic_fetch_add(u->overlaps, 1);
        u->sink += cl_sum_squares(SLICE);
        cl_gil_check(u->gil, &u->t);
    }
    cl_gil_drop(u->gil, &u->t);
    return NULL;
}

static void test_zero_interval_is_einval(void **state)
{
    (void)state;
    struct cl_gil g;
    assert_int_equal(cl_gil_init(&g, 0), EINVAL);
}

static void test_one_thread_never_switches(void **state)
{
    (void)state;
    struct cl_gil g;
    assert_int_equal(cl_gil_init(&g, INTERVAL_NS), 0);
    struct cl_gil_thread t = {.id = 0};
    for (int i = 0; i < 1000; i++) {
        cl_gil_take(&g, &t);
        assert_int_equal(atomic_load(&g.owner), 0);
        assert_false(cl_gil_check(&g, &t));
        cl_gil_drop(&g, &t);
        assert_int_equal(atomic_load(&g.owner), -1);
    }
    assert_int_equal(t.takes, 1000);
    assert_int_equal(t.forced_drops, 0);
    assert_int_equal(atomic_load(&g.switches), 0);
    cl_gil_destroy(&g);
}

/* Two CPU-bound threads: never both inside, and they take turns because each
 * waiter asks for a drop and the holder honours it at its next check. */
static void test_cpu_threads_take_turns_one_at_a_time(void **state)
{
    (void)state;
    struct cl_gil g;
    assert_int_equal(cl_gil_init(&g, INTERVAL_NS), 0);
    _Atomic int overlaps = 0;
    struct gil_user u[2];
    for (int i = 0; i < 2; i++) {
        u[i] = (struct gil_user){.gil = &g, .t = {.id = i}, .slices = 20000, .overlaps = &overlaps};
        CL_PT(pthread_create(&u[i].tid, NULL, cpu_user, &u[i]));
    }
    for (int i = 0; i < 2; i++)
        CL_PT(pthread_join(u[i].tid, NULL));
    assert_int_equal(atomic_load(&overlaps), 0);
    uint64_t requests = u[0].t.requests + u[1].t.requests;
    uint64_t forced = u[0].t.forced_drops + u[1].t.forced_drops;
    assert_true(requests > 0);
    assert_true(atomic_load(&g.switches) > 0);
    /* every request ends in one forced drop: none is lost, none invented */
    assert_int_equal(forced, requests);
    cl_gil_destroy(&g);
}

struct io_user {
    struct cl_gil *gil;
    struct cl_gil_thread t;
    _Atomic bool in_io;
};

static void *io_user(void *arg)
{
    struct io_user *u = arg;
    cl_gil_take(u->gil, &u->t);
    cl_gil_drop(u->gil, &u->t); /* around the blocking call */
    atomic_store(&u->in_io, true);
    cl_sleep_ns(50 * 1000 * 1000);
    atomic_store(&u->in_io, false);
    cl_gil_take(u->gil, &u->t);
    cl_gil_drop(u->gil, &u->t);
    return NULL;
}

/* While one thread sleeps in I/O, another takes the GIL without waiting. */
static void test_io_releases_the_gil(void **state)
{
    (void)state;
    struct cl_gil g;
    assert_int_equal(cl_gil_init(&g, INTERVAL_NS), 0);
    struct io_user io = {.gil = &g, .t = {.id = 1}};
    pthread_t tid;
    CL_PT(pthread_create(&tid, NULL, io_user, &io));
    double t0 = now_s();
    while (!atomic_load(&io.in_io))
        assert_true(now_s() - t0 < 20.0);
    struct cl_gil_thread me = {.id = 0};
    cl_gil_take(&g, &me);
    assert_int_equal(atomic_load(&g.owner), 0);
    assert_true(me.wait_ns < 20 * 1000 * 1000ull);
    assert_int_equal(me.requests, 0);
    cl_gil_drop(&g, &me);
    CL_PT(pthread_join(tid, NULL));
    cl_gil_destroy(&g);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_interval_is_einval),
        cmocka_unit_test(test_one_thread_never_switches),
        cmocka_unit_test(test_cpu_threads_take_turns_one_at_a_time),
        cmocka_unit_test(test_io_releases_the_gil),
    };
    return UNIT_MAIN("gil", tests);
}
