/* cl_barrier: phases, the serial action, reuse over many generations, the
 * timeout, abort and reset. Every wait that could block for ever in a broken
 * implementation has a timeout, so a bug fails a test instead of hanging it. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "conclab.h"

#define SAFETY_S 20.0 /* a wait that should pass never waits this long */

/* --- helpers ------------------------------------------------------------- */

struct party {
    pthread_t tid;
    struct cl_barrier *b;
    double timeout_s;
    int rc;
};

static void *wait_once(void *arg)
{
    struct party *p = arg;
    p->rc = cl_barrier_wait(p->b, p->timeout_s);
    return NULL;
}

static unsigned inside(struct cl_barrier *b)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    unsigned n = b->inside;
    CL_PT(pthread_mutex_unlock(&b->mu));
    return n;
}

/* Until n threads are blocked in the barrier (or the safety limit). */
static void await_inside(struct cl_barrier *b, unsigned n)
{
    double t0 = now_s();
    while (inside(b) < n) {
        assert_true(now_s() - t0 < SAFETY_S);
        cl_sleep_ns(100000);
    }
}

/* --- basics -------------------------------------------------------------- */

static void test_zero_parties_is_einval(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 0, NULL, NULL), EINVAL);
}

static int count_calls(void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_one_party_is_always_serial(void **state)
{
    (void)state;
    struct cl_barrier b;
    int calls = 0;
    assert_int_equal(cl_barrier_init(&b, 1, count_calls, &calls), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cl_barrier_wait(&b, 0), CL_BARRIER_SERIAL);
    assert_int_equal(calls, 1000);
    assert_int_equal(cl_barrier_generation(&b), 1000);
    assert_false(cl_barrier_is_broken(&b));
    cl_barrier_destroy(&b);
}

/* --- many generations ------------------------------------------------------ */

#define THREADS 4
#define PHASES  5000

static struct {
    struct cl_barrier b;
    _Atomic int arrived[PHASES]; /* threads that reached phase i's barrier */
    _Atomic int serial[PHASES];  /* SERIAL returns in phase i */
    int slot[THREADS];           /* each thread's phase, read by the action */
    int published;               /* written by the action, read by all after */
    int actions;
    _Atomic int errors;
} gen;

static int phase_action(void *arg)
{
    (void)arg;
    /* every thread has written its slot for this phase, and waits */
    for (int t = 0; t < THREADS; t++)
        if (gen.slot[t] != gen.actions)
            atomic_fetch_add(&gen.errors, 1);
    gen.published = gen.actions++;
    return 0;
}

static void *phases_worker(void *arg)
{
    int id = *(const int *)arg;
    for (int p = 0; p < PHASES; p++) {
        gen.slot[id] = p;
        atomic_fetch_add(&gen.arrived[p], 1);
        int rc = cl_barrier_wait(&gen.b, SAFETY_S);
        if (rc == CL_BARRIER_SERIAL)
            atomic_fetch_add(&gen.serial[p], 1);
        else if (rc != CL_BARRIER_PASSED)
            atomic_fetch_add(&gen.errors, 1);
        /* nobody leaves phase p before all have arrived, and the action ran */
        if (atomic_load(&gen.arrived[p]) != THREADS || gen.published != p)
            atomic_fetch_add(&gen.errors, 1);
        /* barrier p + 1 holds everyone until this thread arrives there too */
        if (p + 2 < PHASES && atomic_load(&gen.arrived[p + 2]) != 0)
            atomic_fetch_add(&gen.errors, 1);
    }
    return NULL;
}

static void test_reuse_across_many_generations(void **state)
{
    (void)state;
    assert_int_equal(cl_barrier_init(&gen.b, THREADS, phase_action, NULL), 0);
    pthread_t tids[THREADS];
    static int ids[THREADS];
    for (int t = 0; t < THREADS; t++) {
        ids[t] = t;
        CL_PT(pthread_create(&tids[t], NULL, phases_worker, &ids[t]));
    }
    for (int t = 0; t < THREADS; t++)
        CL_PT(pthread_join(tids[t], NULL));
    assert_int_equal(atomic_load(&gen.errors), 0);
    assert_int_equal(gen.actions, PHASES);
    for (int p = 0; p < PHASES; p++)
        assert_int_equal(atomic_load(&gen.serial[p]), 1); /* exactly one per phase */
    assert_int_equal(cl_barrier_generation(&gen.b), PHASES);
    cl_barrier_destroy(&gen.b);
}

/* --- timeout ----------------------------------------------------------------- */

static void test_timeout_breaks_the_barrier(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 2, NULL, NULL), 0);
    double t0 = now_s();
    assert_int_equal(cl_barrier_wait(&b, 0.05), CL_BARRIER_TIMEDOUT);
    double took = now_s() - t0;
    assert_true(took >= 0.049);
    assert_true(took < SAFETY_S);
    assert_true(cl_barrier_is_broken(&b));
    /* later arrivals fail at once, with or without a timeout */
    assert_int_equal(cl_barrier_wait(&b, 0), CL_BARRIER_BROKEN);
    assert_int_equal(cl_barrier_wait(&b, 10), CL_BARRIER_BROKEN);
    cl_barrier_destroy(&b);
}

/* One party times out; the other, already waiting with no timeout, is released
 * with "broken" instead of waiting for ever. */
static void test_timeout_releases_the_others(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 3, NULL, NULL), 0);
    struct party p = {.b = &b, .timeout_s = 0};
    CL_PT(pthread_create(&p.tid, NULL, wait_once, &p));
    await_inside(&b, 1);
    assert_int_equal(cl_barrier_wait(&b, 0.02), CL_BARRIER_TIMEDOUT);
    CL_PT(pthread_join(p.tid, NULL));
    assert_int_equal(p.rc, CL_BARRIER_BROKEN);
    cl_barrier_destroy(&b);
}

static void test_timeout_not_reached_passes(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 2, NULL, NULL), 0);
    for (int i = 0; i < 100; i++) {
        struct party p = {.b = &b, .timeout_s = SAFETY_S};
        CL_PT(pthread_create(&p.tid, NULL, wait_once, &p));
        int rc = cl_barrier_wait(&b, SAFETY_S);
        CL_PT(pthread_join(p.tid, NULL));
        /* exactly one of the two is the serial thread */
        assert_true((rc == CL_BARRIER_SERIAL && p.rc == CL_BARRIER_PASSED) ||
                    (rc == CL_BARRIER_PASSED && p.rc == CL_BARRIER_SERIAL));
    }
    assert_false(cl_barrier_is_broken(&b));
    cl_barrier_destroy(&b);
}

/* --- abort and reset ------------------------------------------------------- */

static void test_abort_releases_every_waiter(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 4, NULL, NULL), 0);
    struct party p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (struct party){.b = &b, .timeout_s = 0}; /* would wait for ever */
        CL_PT(pthread_create(&p[i].tid, NULL, wait_once, &p[i]));
    }
    await_inside(&b, 3);
    cl_barrier_abort(&b);
    for (int i = 0; i < 3; i++) {
        CL_PT(pthread_join(p[i].tid, NULL));
        assert_int_equal(p[i].rc, CL_BARRIER_BROKEN);
    }
    assert_true(cl_barrier_is_broken(&b));
    assert_int_equal(cl_barrier_wait(&b, 0), CL_BARRIER_BROKEN);
    cl_barrier_abort(&b); /* a second abort changes nothing */
    assert_int_equal(cl_barrier_generation(&b), 1);
    cl_barrier_destroy(&b);
}

static void test_reset_makes_it_usable_again(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 2, NULL, NULL), 0);
    cl_barrier_abort(&b);
    assert_int_equal(cl_barrier_wait(&b, 0), CL_BARRIER_BROKEN);
    cl_barrier_reset(&b);
    assert_false(cl_barrier_is_broken(&b));
    struct party p = {.b = &b, .timeout_s = SAFETY_S};
    CL_PT(pthread_create(&p.tid, NULL, wait_once, &p));
    int rc = cl_barrier_wait(&b, SAFETY_S);
    CL_PT(pthread_join(p.tid, NULL));
    assert_true(rc >= 0 && p.rc >= 0 && rc + p.rc == CL_BARRIER_SERIAL);
    cl_barrier_destroy(&b);
}

/* A reset while a thread waits releases it as broken, and waits for it to leave. */
static void test_reset_with_a_waiter(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 2, NULL, NULL), 0);
    struct party p = {.b = &b, .timeout_s = 0};
    CL_PT(pthread_create(&p.tid, NULL, wait_once, &p));
    await_inside(&b, 1);
    cl_barrier_reset(&b);
    assert_int_equal(inside(&b), 0);
    CL_PT(pthread_join(p.tid, NULL));
    assert_int_equal(p.rc, CL_BARRIER_BROKEN);
    assert_false(cl_barrier_is_broken(&b));
    cl_barrier_destroy(&b);
}

/* --- the action ---------------------------------------------------------- */

static int failing_action(void *arg)
{
    (void)arg;
    return -1;
}

static void test_failing_action_breaks_for_all(void **state)
{
    (void)state;
    struct cl_barrier b;
    assert_int_equal(cl_barrier_init(&b, 3, failing_action, NULL), 0);
    struct party p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (struct party){.b = &b, .timeout_s = 0};
        CL_PT(pthread_create(&p[i].tid, NULL, wait_once, &p[i]));
    }
    for (int i = 0; i < 3; i++) {
        CL_PT(pthread_join(p[i].tid, NULL));
        assert_int_equal(p[i].rc, CL_BARRIER_BROKEN); /* the action's thread too */
    }
    assert_true(cl_barrier_is_broken(&b));
    cl_barrier_destroy(&b);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_parties_is_einval),
        cmocka_unit_test(test_one_party_is_always_serial),
        cmocka_unit_test(test_reuse_across_many_generations),
        cmocka_unit_test(test_timeout_breaks_the_barrier),
        cmocka_unit_test(test_timeout_releases_the_others),
        cmocka_unit_test(test_timeout_not_reached_passes),
        cmocka_unit_test(test_abort_releases_every_waiter),
        cmocka_unit_test(test_reset_makes_it_usable_again),
        cmocka_unit_test(test_reset_with_a_waiter),
        cmocka_unit_test(test_failing_action_breaks_for_all),
    };
    return UNIT_MAIN("barrier", tests);
}
