/* cl_time: the monotonic clock and sleeping. Only lower bounds are exact; the
 * upper bounds are generous, for a loaded machine or a sanitizer build. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void test_now_is_monotonic(void **state)
{
    (void)state;
    uint64_t prev = cl_now_ns();
    for (int i = 0; i < 100000; i++) {
        uint64_t t = cl_now_ns();
        assert_true(t >= prev);
        prev = t;
    }
}

/* It is CLOCK_MONOTONIC, in nanoseconds. */
static void test_now_is_clock_monotonic(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++) {
        uint64_t before = mono_ns(), t = cl_now_ns(), after = mono_ns();
        assert_true(before <= t);
        assert_true(t <= after);
    }
}

static void test_sleep_at_least_requested(void **state)
{
    (void)state;
    static const uint64_t waits[] = {1 * MS, 20 * MS, 50 * MS};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        uint64_t t0 = mono_ns();
        cl_sleep_ns(waits[i]);
        uint64_t took = mono_ns() - t0;
        print_message("asked %llu ns, slept %llu ns\n", (unsigned long long)waits[i],
                      (unsigned long long)took);
        assert_true(took >= waits[i]);
        assert_true(took < 2 * CL_NS_PER_S);
    }
}

static void test_sleep_zero_returns(void **state)
{
    (void)state;
    uint64_t t0 = mono_ns();
    cl_sleep_ns(0);
    cl_sleep_ns(1);
    assert_true(mono_ns() - t0 < 2 * CL_NS_PER_S);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* Signals every 2 ms interrupt the sleep (no SA_RESTART); it resumes to the
 * same deadline instead of returning early or starting over. */
static void test_sleep_resumes_after_signals(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    alarms = 0;
    struct itimerval every = {.it_interval = {0, 2000}, .it_value = {0, 2000}};
    assert_int_equal(setitimer(ITIMER_REAL, &every, NULL), 0);
    uint64_t t0 = mono_ns();
    cl_sleep_ns(50 * MS);
    uint64_t took = mono_ns() - t0;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    print_message("slept %llu ns through %d signals\n", (unsigned long long)took, (int)alarms);
    assert_true(alarms > 0); /* the timer counts wall time, so it fired during the sleep */
    assert_true(took >= 50 * MS);
    assert_true(took < 2 * CL_NS_PER_S);
}

/* A deadline is on CLOCK_MONOTONIC, with tv_nsec normalised below one second. */
static void test_deadline_is_now_plus_ns(void **state)
{
    (void)state;
    uint64_t before = cl_now_ns();
    struct timespec d = cl_deadline_ns(1500000000ull);
    uint64_t after = cl_now_ns();
    uint64_t at = (uint64_t)d.tv_sec * CL_NS_PER_S + (uint64_t)d.tv_nsec;
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < (long)CL_NS_PER_S);
    assert_true(at >= before + 1500000000ull && at <= after + 1500000000ull);
}

/* A timed wait on a monotonic condvar ends at a cl_deadline_ns() deadline, not
 * earlier: the two agree on the clock. */
static void test_monotonic_cond_times_out_at_the_deadline(void **state)
{
    (void)state;
    pthread_cond_t cv;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    assert_int_equal(cl_cond_init_monotonic(&cv), 0);
    uint64_t t0 = cl_now_ns();
    struct timespec d = cl_deadline_ns(20000000ull);
    CL_PT(pthread_mutex_lock(&mu));
    int rc;
    while ((rc = pthread_cond_timedwait(&cv, &mu, &d)) == 0)
        ; /* a spurious wakeup: wait again */
    CL_PT(pthread_mutex_unlock(&mu));
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(cl_now_ns() - t0 >= 20000000ull);
    CL_PT(pthread_cond_destroy(&cv));
}

static void test_seconds(void **state)
{
    (void)state;
    assert_true(cl_seconds(0) == 0.0);
    assert_true(cl_seconds(CL_NS_PER_S) == 1.0);
    assert_true(cl_seconds(1500 * MS) == 1.5);
    assert_float_equal(cl_seconds(1), 1e-9, 1e-24);
    assert_float_equal(cl_seconds(3600 * CL_NS_PER_S), 3600.0, 1e-9);
}

static void test_sort_ns(void **state)
{
    (void)state;
    uint64_t v[] = {5, UINT64_MAX, 0, 3, 3, 1ull << 40};
    cl_sort_ns(v, 6);
    const uint64_t want[] = {0, 3, 3, 5, 1ull << 40, UINT64_MAX};
    for (int i = 0; i < 6; i++)
        assert_true(v[i] == want[i]);
    cl_sort_ns(v, 0); /* nothing to sort: no access at all */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_now_is_monotonic),
        cmocka_unit_test(test_now_is_clock_monotonic),
        cmocka_unit_test(test_sleep_at_least_requested),
        cmocka_unit_test(test_sleep_zero_returns),
        cmocka_unit_test(test_sleep_resumes_after_signals),
        cmocka_unit_test(test_deadline_is_now_plus_ns),
        cmocka_unit_test(test_monotonic_cond_times_out_at_the_deadline),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_sort_ns),
    };
    return UNIT_MAIN("time", tests);
}
