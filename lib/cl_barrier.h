/* A barrier with what pthread_barrier_t lacks (Python's threading.Barrier has
 * all three): a timeout, a broken state that releases every waiter with an
 * error, and an action run by exactly one thread between phases.
 *
 * Generation counting: each phase is one generation. The last thread to arrive
 * runs the action, starts the next generation and wakes the others; a waiter
 * leaves when the generation it arrived in is over. A broken barrier stays
 * broken (every wait fails at once) until cl_barrier_reset(). */
#ifndef CL_BARRIER_H
#define CL_BARRIER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum cl_barrier_rc {
    CL_BARRIER_PASSED = 0,    /* the phase is over; carry on */
    CL_BARRIER_SERIAL = 1,    /* the same, and this thread ran the action (one per phase) */
    CL_BARRIER_BROKEN = -1,   /* aborted, timed out elsewhere, or the action failed */
    CL_BARRIER_TIMEDOUT = -2, /* this wait timed out, and broke the barrier for all */
};

/* Runs in the last thread to arrive, before any thread leaves: every other
 * thread is waiting, so it may read and write what they share. Nonzero breaks
 * the barrier. */
typedef int (*cl_barrier_action)(void *arg);

struct cl_barrier {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: a clock change cannot move a deadline */
    unsigned parties;
    unsigned arrived;    /* in the current generation */
    unsigned inside;     /* threads inside cl_barrier_wait, for reset */
    uint64_t generation; /* phases completed, plus one per break */
    uint64_t broken_gen; /* the generation that broke, UINT64_MAX for none */
    bool broken;         /* sticky until cl_barrier_reset */
    cl_barrier_action action;
    void *arg;
};

/* 0, or EINVAL for 0 parties, or the pthread error. action may be NULL. */
int cl_barrier_init(struct cl_barrier *b, unsigned parties, cl_barrier_action action, void *arg);
void cl_barrier_destroy(struct cl_barrier *b);

/* Wait for all parties. timeout_s <= 0 waits for ever. Returns a cl_barrier_rc. */
int cl_barrier_wait(struct cl_barrier *b, double timeout_s);

/* Break the barrier: every waiter, now and later, gets CL_BARRIER_BROKEN. */
void cl_barrier_abort(struct cl_barrier *b);

/* Make a broken barrier usable again, once the waiters of the broken phase have
 * left. Call it only when no thread is about to wait in a new phase. */
void cl_barrier_reset(struct cl_barrier *b);

bool cl_barrier_is_broken(struct cl_barrier *b);

/* Phases completed (breaks included); for tests and reports. */
uint64_t cl_barrier_generation(struct cl_barrier *b);

#endif
