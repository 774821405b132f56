/* Workloads shared by the chapters. */
#ifndef CL_WORK_H
#define CL_WORK_H

#include <stdint.h>

/* CPU work: sum of i*i for i < n, in wrapping uint64 arithmetic (the true sum
 * overflows 64 bits above n of about 4e6, so wrapping is defined and checkable). */
uint64_t cl_sum_squares(uint64_t n);

/* The same sum in closed form, (n-1)n(2n-1)/6 modulo 2^64, to check the kernel. */
uint64_t cl_sum_squares_closed(uint64_t n);

#endif
