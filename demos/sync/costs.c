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

void costs_worker(struct cl_worker *w)
{
    for (int p = 0; p < NPRIMS; p++) {
        cl_pthread_barrier_wait(&S.gate); /* every thread on this primitive together */
        uint64_t t0 = cl_now_ns();
        for (uint64_t i = 0; i < w->iters; i++)
            op((enum prim)p);
        S.tallies[w->id].prim_ns[p] = (double)(cl_now_ns() - t0) / (double)w->iters;
        cl_tick(w);
    }
}
