/* barrier: what the chapter (barrier.c) and the reusable barrier that fails
 * (naive.c) share. */
#ifndef BARRIER_H
#define BARRIER_H

#include <stdbool.h>

#include "conclab.h"

#define NAIVE_STEPS 3 /* naive-reuse's phases: the fewest in which its hang is certain */

/* The Little Book of Semaphores' one-turnstile barrier, in naive.c: made for
 * `threads` parties, waited at by every worker once a phase, reported on by
 * the watchdog (atomics only), and destroyed. */
void naive_init(int threads);
bool naive_wait(struct cl_worker *w);
void naive_report(int fd, const struct cl_run *run);
void naive_fini(void);

#endif
