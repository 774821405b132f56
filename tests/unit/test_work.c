/* cl_work: the sum-of-squares kernel and its closed form, in wrapping uint64;
 * the responder's round trips (real blocking I/O). */
#include "unit.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conclab.h"

__extension__ typedef unsigned __int128 u128;

/* The exact sum, reduced mod 2^64: exact while (n-1)n(2n-1) fits 128 bits. */
static uint64_t exact_mod64(uint64_t n)
{
    if (n == 0)
        return 0;
    u128 m = n - 1;
    return (uint64_t)(m * (m + 1) * (2 * m + 1) / 6);
}

static void test_known_value(void **state)
{
    (void)state;
    assert_int_equal(cl_sum_squares(1000000), 333332833333500000ull);
    assert_int_equal(cl_sum_squares_closed(1000000), 333332833333500000ull);
}

static void test_small_values(void **state)
{
    (void)state;
    static const uint64_t want[] = {0, 0, 1, 5, 14, 30, 55}; /* n = 0 .. 6 */
    for (uint64_t n = 0; n < sizeof want / sizeof want[0]; n++) {
        assert_int_equal(cl_sum_squares(n), want[n]);
        assert_int_equal(cl_sum_squares_closed(n), want[n]);
    }
}

/* Every n up to 3000, by the running sum: the loop, the closed form and the
 * exact 128-bit value all agree. */
static void test_loop_equals_closed_small(void **state)
{
    (void)state;
    uint64_t running = 0;
    for (uint64_t n = 0; n <= 3000; n++) {
        if (n % 97 == 0 || n < 50)
            assert_int_equal(cl_sum_squares(n), running);
        assert_int_equal(cl_sum_squares_closed(n), running);
        assert_int_equal(exact_mod64(n), running);
        running += n * n;
    }
}

/* Past about n = 3.8e6 the true sum overflows 64 bits: both must wrap alike. */
static void test_loop_equals_closed_past_wrap(void **state)
{
    (void)state;
    static const uint64_t ns[] = {3000000, 3810778, 3810779, 4000000, 4000001, 4000002, 4194304};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        uint64_t loop = cl_sum_squares(ns[i]);
        assert_int_equal(loop, cl_sum_squares_closed(ns[i]));
        assert_int_equal(loop, exact_mod64(ns[i]));
    }
    /* 4e6+1 really is past the wrap: the exact sum exceeds 2^64. */
    u128 m = 4000000;
    assert_true(m * (m + 1) * (2 * m + 1) / 6 > (u128)UINT64_MAX);
}

/* For large n only the closed form is fast. Check it against the exact 128-bit
 * value where that fits, and against itself by the recurrence
 * S(n+1) = S(n) + n*n (mod 2^64) over a short run from each start. */
static void closed_form_consistent_from(uint64_t n0, uint64_t steps)
{
    uint64_t s = cl_sum_squares_closed(n0);
    for (uint64_t k = 0; k < steps; k++) {
        uint64_t n = n0 + k;
        if (cl_sum_squares_closed(n) != s)
            fail_msg("closed(%llu) = %llu, but closed(%llu) + the squares in between = %llu "
                     "(n mod 3 = %llu)",
                     (unsigned long long)n, (unsigned long long)cl_sum_squares_closed(n),
                     (unsigned long long)n0, (unsigned long long)s, (unsigned long long)(n % 3));
        s += n * n;
    }
}

static void test_closed_form_large(void **state)
{
    (void)state;
    static const uint64_t exact[] = {1ull << 20,     123456789,  1ull << 32,
                                     99999999999ull, 1ull << 40, (1ull << 41) + 7};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        for (uint64_t k = 0; k < 6; k++)
            assert_int_equal(cl_sum_squares_closed(exact[i] + k), exact_mod64(exact[i] + k));
    static const uint64_t starts[] = {1ull << 32, 3037000499ull, 1ull << 42, 1ull << 62,
                                      (1ull << 63) - 1000};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        closed_form_consistent_from(starts[i], 1000);
}

/* Regression (lib/cl_work.c, cl_sum_squares_closed), now fixed: above n = 2^63 the factor
 * c = 2n-1 wraps before `c /= 3`, so whenever n = 2 (mod 3) the 3 is divided
 * out of the wrapped value and the result is wrong. */
static void test_closed_form_above_2_63(void **state)
{
    (void)state;
    closed_form_consistent_from(1ull << 63, 1000);
    closed_form_consistent_from(UINT64_MAX - 1000, 1000);
}

/* A range's sum is the difference of two closed forms, wrapping included. */
static void test_range_equals_closed_difference(void **state)
{
    (void)state;
    static const uint64_t bounds[][2] = {
        {0, 0}, {0, 1}, {5, 5}, {3, 7}, {1000, 5000}, {3810000, 3811000}, {4000000, 4002000}};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        uint64_t lo = bounds[i][0], hi = bounds[i][1];
        assert_int_equal(cl_sum_squares_range(lo, hi),
                         cl_sum_squares_closed(hi) - cl_sum_squares_closed(lo));
    }
    /* four slices of a range add up to the whole */
    uint64_t sum = 0;
    for (uint64_t t = 0; t < 4; t++)
        sum += cl_sum_squares_range(t * 25000, (t + 1) * 25000);
    assert_int_equal(sum, cl_sum_squares(100000));
}

#define LATENCY_NS 20000000ull /* 20 ms */

/* One round trip answers ~request, after the latency and not much later. */
static void test_round_trip_answers_after_latency(void **state)
{
    (void)state;
    char err[256] = "";
    struct cl_responder *r = cl_responder_start(2, LATENCY_NS, err, sizeof err);
    assert_non_null(r);
    uint64_t t0 = cl_now_ns();
    assert_int_equal(cl_round_trip(cl_responder_fd(r, 1), 41), ~41ull);
    uint64_t took = cl_now_ns() - t0;
    assert_true(took >= LATENCY_NS);
    assert_int_equal(cl_round_trip(cl_responder_fd(r, 0), 0), UINT64_MAX);
    assert_int_equal(cl_responder_answered(r), 2);
    cl_responder_stop(r);
}

struct client {
    struct cl_responder *r;
    int channel;
    uint64_t reply;
};

static void *ask(void *arg)
{
    struct client *c = arg;
    c->reply = cl_round_trip(cl_responder_fd(c->r, c->channel), (uint64_t)c->channel);
    return NULL;
}

/* Many clients in flight at once overlap: 16 round trips of 100 ms take about
 * 100 ms, not 1.6 s. Only "less than one after another" is asserted: under
 * valgrind, which runs one thread at a time, they took 0.6 s of a possible 0.8. */
static void test_round_trips_overlap(void **state)
{
    (void)state;
    enum { N = 16 };
    char err[256] = "";
    struct cl_responder *r = cl_responder_start(N, 5 * LATENCY_NS, err, sizeof err);
    assert_non_null(r);
    pthread_t t[N];
    struct client c[N];
    uint64_t t0 = cl_now_ns();
    for (int i = 0; i < N; i++) {
        c[i] = (struct client){r, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, ask, &c[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(c[i].reply, ~(uint64_t)i);
    }
    uint64_t took = cl_now_ns() - t0;
    cl_responder_stop(r);
    assert_true(took < 5ull * N * LATENCY_NS);
}

/* A forked child's inherited client end still works (the procs executor). */
static void test_round_trip_from_child(void **state)
{
    (void)state;
    char err[256] = "";
    struct cl_responder *r = cl_responder_start(1, 0, err, sizeof err);
    assert_non_null(r);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(cl_round_trip(cl_responder_fd(r, 0), 7) == ~7ull ? 0 : 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cl_responder_stop(r);
}

/* Too many channels for the descriptor limit: NULL and one line, no crash. */
static void test_responder_out_of_descriptors(void **state)
{
    (void)state;
    char err[256] = "";
    struct rlimit lim;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &lim), 0);
    int channels = (int)(lim.rlim_max < 100000 ? lim.rlim_max : 100000);
    assert_null(cl_responder_start(channels, 0, err, sizeof err));
    assert_contains(err, "file descriptors");
    /* and everything it opened is closed again: a small one still starts */
    struct cl_responder *r = cl_responder_start(4, 0, err, sizeof err);
    assert_non_null(r);
    cl_responder_stop(r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_small_values),
        cmocka_unit_test(test_loop_equals_closed_small),
        cmocka_unit_test(test_loop_equals_closed_past_wrap),
        cmocka_unit_test(test_closed_form_large),
        cmocka_unit_test(test_closed_form_above_2_63),
        cmocka_unit_test(test_range_equals_closed_difference),
        cmocka_unit_test(test_round_trip_answers_after_latency),
        cmocka_unit_test(test_round_trips_overlap),
        cmocka_unit_test(test_round_trip_from_child),
        cmocka_unit_test(test_responder_out_of_descriptors),
    };
    return UNIT_MAIN("work", tests);
}
