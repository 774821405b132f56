/* sync: waking many threads at once. A starting gun (an event against a
 * barrier, and how far apart the workers wake), a service's states waited for
 * through one broadcast condition or one condition per state (how often each
 * waiter wakes), and the guides' one-condition buffer with timed waits, where a
 * timeout silently drops items. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include "sync.h"

/* --- the starting gun ----------------------------------------------------------- */

static void spread(int n, double *skew_us, double *first_us)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 1; i <= n; i++) {
        uint64_t t = atomic_load(&S.wake_ns[i]);
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    *skew_us = (double)(hi - lo) / 1e3;
    *first_us = lo > S.fired_ns ? (double)(lo - S.fired_ns) / 1e3 : 0;
}

static void await_all(sem_t *s, int n)
{
    for (int i = 0; i < n; i++)
        CL_SYS_RETRY(sem_wait(s));
}

/* [snippet gun] */
static void gun_coordinator(struct cl_worker *w)
{
    int n = w->run->threads - 1;
    for (uint64_t r = 0; r < w->iters; r++) {
        for (int gun = 0; gun < 2; gun++) { /* 0: the event, 1: the barrier */
            for (int i = 0; i < n; i++)
                CL_SYS(sem_post(&S.next_round));
            await_all(&S.arrived, n);
            cl_sleep_ns(2000000); /* every worker is asleep in its wait by now */
            S.fired_ns = cl_now_ns();
            if (gun == 0)
                cl_event_set(&S.start);
            else
                cl_pthread_barrier_wait(&S.gate);
            await_all(&S.woke, n);
            cl_event_clear(&S.start);
            spread(n, &S.skew_us[gun][r], &S.first_us[gun][r]);
        }
        cl_tick(w);
    }
}

static void gun_worker(struct cl_worker *w)
{
    for (uint64_t r = 0; r < w->iters; r++) {
        for (int gun = 0; gun < 2; gun++) {
            CL_SYS_RETRY(sem_wait(&S.next_round));
            CL_SYS(sem_post(&S.arrived));
            cl_status(w, gun == 0 ? "waits for the start event" : "waits at the start barrier");
            if (gun == 0)
                cl_event_wait(&S.start, 0);
            else
                cl_pthread_barrier_wait(&S.gate);
            atomic_store(&S.wake_ns[w->id], cl_now_ns());
            cl_status(w, NULL);
            CL_SYS(sem_post(&S.woke));
        }
        cl_tick(w);
    }
}
/* [end gun] */

void gun_thread(struct cl_worker *w)
{
    if (w->id == 0)
        gun_coordinator(w);
    else
        gun_worker(w);
}

/* --- a service's states ------------------------------------------------------------ */

/* The state waiter id waits for: 1 .. STATES, in turn. */
static int state_of(int id)
{
    return (id - 1) % STATES + 1;
}

/* [snippet states] */
static void state_waiter(struct cl_worker *w, int phase)
{
    int want = state_of(w->id), c = phase == 1 ? want : 0; /* the condition it sleeps on */
    CL_PT(pthread_mutex_lock(&S.m));
    CL_SYS(sem_post(&S.arrived)); /* posted with the mutex held: asleep before any change */
    while (S.state < want) {
        S.asleep_on[c]++;
        CL_PT(pthread_cond_wait(&S.state_cv[c], &S.m));
        S.asleep_on[c]--;
        S.wakeups[phase][w->id]++; /* woken, whether or not its state has come */
        S.total_wakeups++;
    }
    CL_PT(pthread_mutex_unlock(&S.m));
    cl_tick(w);
}

static void state_driver(struct cl_worker *w, int phase)
{
    await_all(&S.arrived, w->run->threads - 1);
    for (int s = 1; s <= STATES; s++) {
        int c = phase == 1 ? s : 0; /* one condition per state, or one for all */
        CL_PT(pthread_mutex_lock(&S.m));
        S.state = s;
        uint64_t expect = S.total_wakeups + (uint64_t)S.asleep_on[c];
        CL_PT(pthread_cond_broadcast(&S.state_cv[c]));
        /* the next change waits until every waiter woken has looked at this one */
        while (S.total_wakeups < expect) {
            CL_PT(pthread_mutex_unlock(&S.m));
            cl_sleep_ns(50000);
            CL_PT(pthread_mutex_lock(&S.m));
        }
        CL_PT(pthread_mutex_unlock(&S.m));
        cl_tick(w);
    }
}
/* [end states] */

void state_thread(struct cl_worker *w)
{
    for (int phase = 0; phase < 2; phase++) {
        if (w->id == 0)
            state_driver(w, phase);
        else
            state_waiter(w, phase);
        if (cl_pthread_barrier_wait(&S.gate))
            S.state = 0; /* everyone is between the two barriers: the service restarts */
        cl_pthread_barrier_wait(&S.gate);
    }
}

/* --- the one-condition buffer with timed waits ------------------------------------- */

/* [snippet timed-buffer] */
/* put(item, timeout): false when the buffer stayed full for the timeout. */
static bool timed_put(uint64_t item, uint64_t timeout_ns)
{
    struct timespec at = cl_deadline_ns(timeout_ns);
    CL_PT(pthread_mutex_lock(&S.m));
    while (S.count == BUF_CAP) {
        int rc = pthread_cond_timedwait(&S.cv, &S.m, &at);
        if (rc == ETIMEDOUT && S.count == BUF_CAP) { /* wait_for: the predicate decides */
            CL_PT(pthread_mutex_unlock(&S.m));
            return false; /* the caller ignores it: the item is gone */
        }
        if (rc != ETIMEDOUT)
            CL_PT(rc);
    }
    S.buf[(S.head + S.count++) % BUF_CAP] = item;
    CL_PT(pthread_cond_signal(&S.cv)); /* one condition for "not empty" and "not full" */
    CL_PT(pthread_mutex_unlock(&S.m));
    return true;
}

/* get(timeout): 0 (no item) when the buffer is still empty at the timeout. */
static uint64_t timed_get(uint64_t timeout_ns)
{
    struct timespec at = cl_deadline_ns(timeout_ns);
    CL_PT(pthread_mutex_lock(&S.m));
    while (S.count == 0) {
        int rc = pthread_cond_timedwait(&S.cv, &S.m, &at);
        if (rc == ETIMEDOUT && S.count == 0) {
            CL_PT(pthread_mutex_unlock(&S.m));
            return 0;
        }
        if (rc != ETIMEDOUT)
            CL_PT(rc);
    }
    uint64_t item = S.buf[S.head];
    S.head = (S.head + 1) % BUF_CAP;
    S.count--;
    CL_PT(pthread_cond_signal(&S.cv));
    CL_PT(pthread_mutex_unlock(&S.m));
    return item;
}
/* [end timed-buffer] */

void timed_buffer_thread(struct cl_worker *w)
{
    struct tally *t = &S.tallies[w->id];
    if (w->id == 0) { /* the producer: a pause longer than the consumer's timeout */
        for (uint64_t i = 1; i <= w->iters; i++) {
            if (i > 2)
                cl_sleep_ns(TIMED_PAUSE_NS);
            if (!timed_put(i, TIMED_WAIT_NS))
                t->skipped++; /* dropped, silently in the guides */
            cl_tick(w);
        }
        return;
    }
    for (;;) { /* the consumer: no item within the timeout means the producer is done */
        uint64_t item = timed_get(TIMED_WAIT_NS);
        if (item == 0)
            break;
        t->consumed++;
        cl_tick(w);
    }
}
