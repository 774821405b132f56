/* sync: what one acquire and release of each primitive costs, with every thread of
 * the run on the same primitive at once (1 thread: uncontended; 2: contended).
 * Each primitive admits one holder at a time (a semaphore of 1), so the columns
 * compare like with like. Between primitives the threads meet at a barrier. */
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include "sync.h"

/* [snippet costs] */
static void op(enum prim p)
{
    switch (p) {
    case P_MUTEX:
        CL_PT(pthread_mutex_lock(&S.m));
        CL_PT(pthread_mutex_unlock(&S.m));
        break;
    case P_SEM:
        CL_SYS_RETRY(sem_wait(&S.items));
        CL_SYS(sem_post(&S.items));
        break;
    case P_BSEM:
        cl_bsem_acquire(&S.bpool);
        CL_PT(cl_bsem_release(&S.bpool));
        break;
    case P_EVENT: /* Event.wait() on a set event: the common case of a started gate */
        cl_event_wait(&S.start, 0);
        break;
    case P_RW_READ:
        rw_rdlock(&S.lock);
        rw_rdunlock(&S.lock);
        break;
    case P_RW_WRITE:
        rw_wrlock(&S.lock);
        rw_wrunlock(&S.lock);
        break;
    case P_FAIR_READ:
        cl_rwlock_rdlock(&S.fair);
        cl_rwlock_rdunlock(&S.fair);
        break;
    case P_FAIR_WRITE:
        cl_rwlock_wrlock(&S.fair);
        cl_rwlock_wrunlock(&S.fair);
        break;
    case NPRIMS:
        break;
    }
}
/* [end costs] */

/* Progress is counted per batch, an operation being one acquire and release:
 * often enough for the watchdog (a contended first-come-first-served write hands
 * the lock over at every operation, each hand-over a wake-up of up to 50 µs on a
 * virtual machine), rarely enough to stay out of a 5 ns timing. */
#define TICK_BATCH 1024

void costs_worker(struct cl_worker *w)
{
    for (int p = 0; p < NPRIMS; p++) {
        cl_pthread_barrier_wait(&S.gate); /* every thread on this primitive together */
        uint64_t t0 = cl_now_ns();
        for (uint64_t i = 0; i < w->iters; i += TICK_BATCH) {
            uint64_t n = w->iters - i < TICK_BATCH ? w->iters - i : TICK_BATCH;
            for (uint64_t j = 0; j < n; j++)
                op((enum prim)p);
            cl_tick_n(w, n);
        }
        S.tallies[w->id].prim_ns[p] = (double)(cl_now_ns() - t0) / (double)w->iters;
    }
}
