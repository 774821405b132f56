/* cl_mutex: the holder and waiter records, the mutex kinds, and the wait-for
 * cycle the watchdog prints. Blocking is always bounded: the "deadlocks" here
 * are timed locks that give up after a second or two, and the test polls the
 * records while the threads wait. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

static void test_holder_recorded(void **state)
{
    (void)state;
    struct cl_mutex m;
    cl_mutex_init(&m, "A", PTHREAD_MUTEX_DEFAULT);
    cl_thread_set_id(4);
    assert_int_equal(cl_thread_id(), 4);
    assert_int_equal(cl_mutex_holder(&m), -1);
    assert_int_equal(cl_mutex_lock(&m), 0);
    assert_int_equal(cl_mutex_holder(&m), 4);
    assert_null(cl_mutex_waiting_for(4));
    assert_int_equal(cl_mutex_unlock(&m), 0);
    assert_int_equal(cl_mutex_holder(&m), -1);
    cl_thread_set_id(-1);
    assert_int_equal(cl_thread_id(), -1);
    cl_mutex_destroy(&m);
}

static void test_errorcheck_relock(void **state)
{
    (void)state;
    struct cl_mutex m;
    cl_mutex_init(&m, "E", PTHREAD_MUTEX_ERRORCHECK);
    cl_thread_set_id(0);
    assert_int_equal(cl_mutex_lock(&m), 0);
    assert_int_equal(cl_mutex_lock(&m), EDEADLK);
    assert_null(cl_mutex_waiting_for(0)); /* no longer waiting after the refusal */
    assert_int_equal(cl_mutex_holder(&m), 0);
    assert_int_equal(cl_mutex_unlock(&m), 0);
    if (!cl_under_tsan())                             /* TSan reports the wrong unlock, rightly */
        assert_int_equal(cl_mutex_unlock(&m), EPERM); /* not held any more */
    cl_thread_set_id(-1);
    cl_mutex_destroy(&m);
}

static void test_recursive_counts(void **state)
{
    (void)state;
    struct cl_mutex m;
    cl_mutex_init(&m, "R", PTHREAD_MUTEX_RECURSIVE);
    cl_thread_set_id(1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cl_mutex_lock(&m), 0);
    assert_int_equal(m.depth, 3);
    assert_int_equal(cl_mutex_unlock(&m), 0);
    assert_int_equal(cl_mutex_unlock(&m), 0);
    assert_int_equal(cl_mutex_holder(&m), 1); /* still held once */
    assert_int_equal(cl_mutex_unlock(&m), 0);
    assert_int_equal(cl_mutex_holder(&m), -1);
    cl_thread_set_id(-1);
    cl_mutex_destroy(&m);
}

static void test_trylock_and_timedlock(void **state)
{
    (void)state;
    struct cl_mutex m;
    cl_mutex_init(&m, "T", PTHREAD_MUTEX_DEFAULT);
    cl_thread_set_id(2);
    assert_int_equal(cl_mutex_trylock(&m), 0);
    assert_int_equal(cl_mutex_holder(&m), 2);
    assert_int_equal(cl_mutex_trylock(&m), EBUSY);
    double t0 = now_s();
    assert_int_equal(cl_mutex_timedlock(&m, 50 * MS), ETIMEDOUT);
    assert_true(now_s() - t0 >= 0.04);
    assert_null(cl_mutex_waiting_for(2));
    assert_int_equal(cl_mutex_holder(&m), 2);
    assert_int_equal(cl_mutex_unlock(&m), 0);
    assert_int_equal(cl_mutex_timedlock(&m, 50 * MS), 0);
    assert_int_equal(cl_mutex_unlock(&m), 0);
    cl_thread_set_id(-1);
    cl_mutex_destroy(&m);
}

/* AB/BA with timed second locks: both threads wait up to `wait` for each
 * other, long enough for the test to read a stable cycle. */
static struct cl_mutex ma, mb;
static pthread_barrier_t both_hold;
static _Atomic int gave_up;

struct side {
    int id;
    struct cl_mutex *first, *second;
    uint64_t wait_ns;
};

static void *one_side(void *arg)
{
    const struct side *s = arg;
    cl_thread_set_id(s->id);
    if (cl_mutex_lock(s->first) != 0)
        return NULL;
    pthread_barrier_wait(&both_hold);
    if (cl_mutex_timedlock(s->second, s->wait_ns) == ETIMEDOUT)
        atomic_fetch_add(&gave_up, 1);
    else
        cl_mutex_unlock(s->second);
    pthread_barrier_wait(&both_hold); /* both give up before either releases */
    cl_mutex_unlock(s->first);
    return NULL;
}

/* Poll until the records show n threads waiting, for at most limit_s. */
static bool wait_until_waiting(int n, double limit_s)
{
    double end = now_s() + limit_s;
    for (;;) {
        int waiting = 0;
        for (int t = 0; t < n; t++)
            waiting += cl_mutex_waiting_for(t) != NULL;
        if (waiting == n)
            return true;
        if (now_s() > end)
            return false;
        cl_sleep_ns(2 * MS);
    }
}

static void test_abba_cycle_reported(void **state)
{
    (void)state;
    cl_mutex_init(&ma, "A", PTHREAD_MUTEX_DEFAULT);
    cl_mutex_init(&mb, "B", PTHREAD_MUTEX_DEFAULT);
    assert_int_equal(pthread_barrier_init(&both_hold, NULL, 2), 0);
    atomic_store(&gave_up, 0);
    struct side s1 = {0, &ma, &mb, 1000 * MS}, s2 = {1, &mb, &ma, 1000 * MS};
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, one_side, &s1), 0);
    assert_int_equal(pthread_create(&t2, NULL, one_side, &s2), 0);
    assert_true(wait_until_waiting(2, 0.9));

    int cycle[4];
    size_t len = cl_mutex_find_cycle(2, cycle, 4);
    assert_int_equal(len, 2);
    assert_int_equal(cycle[0], 0);
    assert_int_equal(cycle[1], 1);
    assert_ptr_equal(cl_mutex_waiting_for(0), &mb);
    assert_ptr_equal(cl_mutex_waiting_for(1), &ma);

    int fds[2];
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    struct cl_mutex *locks[] = {&ma, &mb};
    assert_int_equal(cl_mutex_report(fds[1], 2, locks, 2), 2);
    char buf[2048];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    close(fds[1]);
    assert_contains(buf, "lock A: held by T1, wanted by T2");
    assert_contains(buf, "lock B: held by T2, wanted by T1");
    assert_contains(buf, "wait-for cycle: T1 holds A, waits for B; T2 holds B, waits for A");
    assert_contains(buf, "deadlock: a cycle of 2 threads, T1 -> T2 -> T1");

    assert_int_equal(pthread_join(t1, NULL), 0);
    assert_int_equal(pthread_join(t2, NULL), 0);
    assert_int_equal(atomic_load(&gave_up), 2);
    assert_int_equal(cl_mutex_find_cycle(2, cycle, 4), 0); /* all clear again */
    assert_int_equal(cl_mutex_holder(&ma), -1);
    pthread_barrier_destroy(&both_hold);
    cl_mutex_destroy(&ma);
    cl_mutex_destroy(&mb);
}

/* One thread waiting for a lock it holds itself (a timed relock). */
static void *relock_self(void *arg)
{
    struct cl_mutex *m = arg;
    cl_thread_set_id(0);
    cl_mutex_lock(m);
    int rc = cl_mutex_timedlock(m, 800 * MS);
    if (rc == ETIMEDOUT)
        atomic_fetch_add(&gave_up, 1);
    else if (rc == 0)
        cl_mutex_unlock(m);
    cl_mutex_unlock(m);
    return NULL;
}

static void test_self_cycle_reported(void **state)
{
    (void)state;
    struct cl_mutex m;
    cl_mutex_init(&m, "M", PTHREAD_MUTEX_DEFAULT);
    atomic_store(&gave_up, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, relock_self, &m), 0);
    /* Poll for the cycle itself, not for "waiting": the thread also waits for a
     * moment in its first, uncontended lock, when M has no holder and there is
     * no cycle yet. The relock waits 800 ms, so 0.7 s stays inside it. */
    int cycle[2] = {-1, -1};
    size_t len = 0;
    for (double end = now_s() + 0.7; len == 0 && now_s() < end; cl_sleep_ns(2 * MS))
        len = cl_mutex_find_cycle(1, cycle, 2);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (atomic_load(&gave_up) == 0) /* glibc may refuse the relock at once */
        skip();
    assert_int_equal(len, 1);
    assert_int_equal(cycle[0], 0);
    cl_mutex_destroy(&m);
}

static void test_no_cycle_when_just_waiting(void **state)
{
    (void)state;
    struct cl_mutex m;
    cl_mutex_init(&m, "A", PTHREAD_MUTEX_DEFAULT);
    cl_thread_set_id(1); /* the main thread is T2 here, and holds A */
    assert_int_equal(cl_mutex_lock(&m), 0);
    atomic_store(&gave_up, 0);
    /* T1 waits for A, held by T2 which waits for nothing: a chain, no cycle */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, relock_self, &m), 0);
    (void)wait_until_waiting(1, 0.7);
    int cycle[2];
    assert_int_equal(cl_mutex_find_cycle(2, cycle, 2), 0);
    assert_int_equal(cl_mutex_unlock(&m), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    cl_thread_set_id(-1);
    cl_mutex_destroy(&m);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holder_recorded),
        cmocka_unit_test(test_errorcheck_relock),
        cmocka_unit_test(test_recursive_counts),
        cmocka_unit_test(test_trylock_and_timedlock),
        cmocka_unit_test(test_abba_cycle_reported),
        cmocka_unit_test(test_self_cycle_reported),
        cmocka_unit_test(test_no_cycle_when_just_waiting),
    };
    return UNIT_MAIN("mutex", tests);
}
