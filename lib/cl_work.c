#include "cl_work.h"

#include "cl_check.h"

uint64_t cl_sum_squares(uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        sum += i * i;
        /* Keep the loop: at -O2 gcc would otherwise use the closed form itself. */
        cl_compiler_barrier();
    }
    return sum;
}

uint64_t cl_sum_squares_closed(uint64_t n)
{
    if (n == 0)
        return 0;
    /* m(m+1)(2m+1)/6 with m = n-1. Divide the 2 and the 3 out of the factors that
     * hold them first, so the products can wrap modulo 2^64 like the loop does. */
    uint64_t a = n - 1, b = n, c = 2 * n - 1; /* c wraps above 2^63: never divide it */
    if (a % 2 == 0)
        a /= 2;
    else
        b /= 2;
    if (a % 3 == 0)
        a /= 3;
    else if (b % 3 == 0)
        b /= 3;
    else /* n = 3k + 2, so (2n - 1) / 3 = 2k + 1 */
        c = 2 * ((n - 2) / 3) + 1;
    return a * b * c;
}
