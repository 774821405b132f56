/* sync: semaphores as a pool of permits, a signal with no state behind it, an
 * event used as a hand-off, and a semaphore waited on with a mutex held. Every
 * failure here is forced by the order the threads are sequenced in, never left
 * to the scheduler. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include "sync.h"

/* --- a pool of connections: at most N holders --------------------------------- */

static void note_holder(void)
{
    int h = atomic_fetch_add(&S.holders, 1) + 1;
    int hi = atomic_load(&S.high);
    while (h > hi && !atomic_compare_exchange_weak(&S.high, &hi, h))
        ;
}

/* [snippet pool] */
/* Before the workers start: a release on an error path and again in the
 * cleanup, one too many. sem_t takes it (now 4 permits); the bounded one refuses. */
void pool_stray_release(const struct cl_run *run)
{
    if (!how_of(run)->stray_release)
        return;
    if (how_of(run)->bounded)
        S.tallies[0].refused += cl_bsem_release(&S.bpool) == EOVERFLOW;
    else
        CL_SYS(sem_post(&S.pool));
}

void pool_worker(struct cl_worker *w)
{
    const struct how *how = how_of(w->run);
    uint64_t hold_ns = (uint64_t)cl_param(w->run, HOLD_US) * 1000;
    for (uint64_t i = 0; i < w->iters; i++) {
        cl_status(w, "waits for a connection");
        if (how->bounded)
            cl_bsem_acquire(&S.bpool);
        else
            CL_SYS_RETRY(sem_wait(&S.pool));
        cl_status(w, NULL);
        note_holder();
        cl_sleep_ns(hold_ns / 2 + cl_rand(w) % (hold_ns + 1)); /* the query */
        atomic_fetch_sub(&S.holders, 1);
        if (how->bounded)
            CL_PT(cl_bsem_release(&S.bpool));
        else
            CL_SYS(sem_post(&S.pool));
        cl_tick(w);
    }
}
/* [end pool] */

/* --- join with a condition variable: the lost wake-up ------------------------ */

/* [snippet lost-wakeup] */
void join_worker(struct cl_worker *w)
{
    bool state = how_of(w->run)->fixed;
    if (w->id == 0) { /* T1, the child: finishes at once, and says so */
        CL_PT(pthread_mutex_lock(&S.m));
        S.done = true; /* join-state records it; lost-wakeup's parent never reads it */
        atomic_store(&S.signal_ns, cl_now_ns());
        CL_PT(pthread_cond_signal(&S.cv)); /* nobody waits yet: the signal is lost */
        CL_PT(pthread_mutex_unlock(&S.m));
        CL_SYS(sem_post(&S.signalled));
        cl_tick(w);
        return;
    }
    CL_SYS_RETRY(sem_wait(&S.signalled)); /* T2, the parent, joins after the signal */
    cl_status(w, "sleeps in pthread_cond_wait for the child's signal");
    CL_PT(pthread_mutex_lock(&S.m));
    atomic_store(&S.wait_ns, cl_now_ns());
    if (state) {
        while (!S.done) /* the state says the child is done: no wait at all */
            CL_PT(pthread_cond_wait(&S.cv, &S.m));
    } else {
        CL_PT(pthread_cond_wait(&S.cv, &S.m)); /* no state to check: waits for ever */
    }
    CL_PT(pthread_mutex_unlock(&S.m));
    cl_status(w, NULL);
    cl_tick(w);
}
/* [end lost-wakeup] */

/* --- an event as a hand-off ------------------------------------------------------ */

/* The consumer's processing lasts until the producer is two items ahead of the
 * one taken, or is waiting for an acknowledgement: a slow consumer, forced. */
static void process(uint64_t taken)
{
    while (atomic_load(&S.produced) < taken + 2 && !atomic_load(&S.producer_waits) &&
           !atomic_load(&S.producer_done))
        cl_sleep_ns(20000);
}

/* [snippet events] */
static void produce(struct cl_worker *w, bool ack)
{
    for (uint64_t i = 1; i <= w->iters; i++) {
        S.slot = i;
        atomic_store(&S.produced, i);
        cl_event_set(&S.ready); /* a level: a second set before the wait is the same set */
        if (ack) {
            atomic_store(&S.producer_waits, true);
            cl_status(w, "waits for the consumer's acknowledgement");
            cl_event_wait(&S.acked, 0);
            cl_event_clear(&S.acked);
            atomic_store(&S.producer_waits, false);
            cl_status(w, NULL);
        }
        cl_tick(w);
    }
    atomic_store(&S.producer_done, true);
    cl_event_set(&S.ready); /* wake the consumer to see that it is over */
}

static void consume(struct cl_worker *w, bool ack)
{
    struct tally *t = &S.tallies[w->id];
    uint64_t last = 0;
    for (;;) {
        cl_status(w, "waits for an item");
        cl_event_wait(&S.ready, 0);
        cl_status(w, NULL);
        cl_event_clear(&S.ready);
        bool over = atomic_load(&S.producer_done);
        uint64_t item = S.slot;
        if (item != last) {
            t->consumed++;
            t->skipped += item - last - 1; /* overwritten before we looked */
            last = item;
            process(item);
            if (ack)
                cl_event_set(&S.acked);
            cl_tick(w);
        }
        if (over && S.slot == last)
            break; /* the pipeline stops: the guides' consumer never does */
    }
}
/* [end events] */

void event_worker(struct cl_worker *w)
{
    bool ack = how_of(w->run)->fixed;
    if (w->id == 0)
        produce(w, ack);
    else
        consume(w, ack);
}

/* --- a semaphore waited on with the mutex held ------------------------------------ */

/* [snippet sem-mutex] */
static void consumer(struct cl_worker *w, bool fixed)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        if (fixed) { /* wait for an item first, then take the lock to remove it */
            if (i == 0)
                CL_SYS(sem_post(&S.consumer_in));
            cl_status(w, "waits for an item (sem items)");
            CL_SYS_RETRY(sem_wait(&S.items));
            cl_status(w, "waits for the buffer lock M");
            CL_PT(cl_mutex_lock(&S.buf_lock));
        } else { /* the lock first: the producer needs it to add the item */
            cl_status(w, "waits for the buffer lock M");
            CL_PT(cl_mutex_lock(&S.buf_lock));
            if (i == 0)
                CL_SYS(sem_post(&S.consumer_in));
            cl_status(w, "holds M, waits for an item (sem items)");
            CL_SYS_RETRY(sem_wait(&S.items));
        }
        cl_status(w, NULL);
        S.buffered--;
        CL_PT(cl_mutex_unlock(&S.buf_lock));
        cl_tick(w);
    }
}

static void producer(struct cl_worker *w)
{
    CL_SYS_RETRY(sem_wait(&S.consumer_in)); /* the buffer is empty, the consumer waiting */
    for (uint64_t i = 0; i < w->iters; i++) {
        cl_status(w, "waits for the buffer lock M");
        CL_PT(cl_mutex_lock(&S.buf_lock));
        cl_status(w, NULL);
        S.buffered++;
        CL_PT(cl_mutex_unlock(&S.buf_lock));
        CL_SYS(sem_post(&S.items));
        cl_tick(w);
    }
}
/* [end sem-mutex] */

void sem_mutex_worker(struct cl_worker *w)
{
    if (w->id == 0)
        consumer(w, how_of(w->run)->fixed);
    else
        producer(w);
}
