/* A simulated GIL, after CPython 3.2+'s "new GIL" (Python/ceval_gil.c).
 *
 * A thread must hold the GIL to run "bytecode": CPU work is done in short
 * slices, with cl_gil_check() between them. A thread that has waited a whole
 * switch interval without seeing a hand-off sets a drop request; the holder
 * honours it at its next check, and then waits until another thread has taken
 * the GIL, so it cannot grab it straight back. Blocking calls run with the GIL
 * released: cl_gil_drop() before, cl_gil_take() after. */
#ifndef CL_GIL_H
#define CL_GIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cl_trace.h"

/* One thread's side of the GIL: its id and what happened to it. Only this
 * thread writes its fields; read them after it is joined. */
struct cl_gil_thread {
    int id;                /* >= 0, unique among the GIL's users */
    uint64_t takes;        /* times it took the GIL */
    uint64_t forced_drops; /* times it dropped on request, at a check or a drop */
    uint64_t requests;     /* drop requests it made while waiting */
    uint64_t wait_ns;      /* time spent waiting to take the GIL */
    uint64_t switched_in;  /* takes that took it over from another thread */
    /* NULL, or where to record each wait for the GIL (CL_SPAN_WAIT) and each
     * stretch of holding it (CL_SPAN_HOLD), for --trace. */
    struct cl_trace_buf *trace;
    uint64_t held_since; /* when it last took the GIL (with trace only) */
};

struct cl_gil {
    pthread_mutex_t mu;
    pthread_cond_t cond;        /* takers wait here, at most one interval at a time */
    pthread_cond_t switch_cond; /* a holder dropping on request waits here for a taker */
    bool locked;
    int last_holder;        /* id of the last thread to take it, -1 at first */
    uint64_t switch_number; /* takes so far: a waiter sees whether one happened */
    uint64_t interval_ns;   /* sys.setswitchinterval() */
    _Atomic int owner;      /* id of the holder, -1 when free: for checks and reports */
    _Atomic bool drop_request;
    _Atomic uint64_t request_ns;    /* when the pending request was made */
    _Atomic uint64_t switches;      /* takes by a thread other than the last holder */
    _Atomic uint64_t max_honour_ns; /* longest wait from a request to its drop */
};

/* 0, or EINVAL for a zero interval, or the pthread error. */
int cl_gil_init(struct cl_gil *g, uint64_t interval_ns);
void cl_gil_destroy(struct cl_gil *g);

/* Take the GIL, waiting (and asking for a drop) as long as it takes. */
void cl_gil_take(struct cl_gil *g, struct cl_gil_thread *t);

/* Release it; if a drop was requested, wait until another thread has taken it.
 * Dies if t is not the holder. */
void cl_gil_drop(struct cl_gil *g, struct cl_gil_thread *t);

/* Between two slices of work, as CPython's eval loop does: if a drop was
 * requested, hand the GIL over and take it back. True if it switched. */
bool cl_gil_yield_slow(struct cl_gil *g, struct cl_gil_thread *t);

/* [snippet check] */
static inline bool cl_gil_check(struct cl_gil *g, struct cl_gil_thread *t)
{
    if (!atomic_load_explicit(&g->drop_request, memory_order_relaxed))
        return false; /* the common case: one relaxed load, no lock */
    return cl_gil_yield_slow(g, t);
}
/* [end check] */

#endif
