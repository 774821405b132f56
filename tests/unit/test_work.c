/* cl_work: the sum-of-squares kernel and its closed form, in wrapping uint64. */
#include "unit.h"

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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_value),
        cmocka_unit_test(test_small_values),
        cmocka_unit_test(test_loop_equals_closed_small),
        cmocka_unit_test(test_loop_equals_closed_past_wrap),
        cmocka_unit_test(test_closed_form_large),
        cmocka_unit_test(test_closed_form_above_2_63),
    };
    return UNIT_MAIN("work", tests);
}
