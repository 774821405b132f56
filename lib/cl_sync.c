#include "cl_sync.h"

#include <errno.h>
#include <limits.h>
#include <time.h>

#include "cl_check.h"
#include "cl_time.h"

static uint64_t timeout_ns(double timeout_s)
{
    return timeout_s * 1e9 > 1e18 ? (uint64_t)1e18 : (uint64_t)(timeout_s * 1e9);
}

/* --- Event ------------------------------------------------------------------ */

int cl_event_init(struct cl_event *e)
{
    e->flag = false;
    int rc = cl_cond_init_monotonic(&e->cv);
    if (rc != 0)
        return rc;
    rc = pthread_mutex_init(&e->mu, NULL);
    if (rc != 0)
        pthread_cond_destroy(&e->cv);
    return rc;
}

void cl_event_destroy(struct cl_event *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

void cl_event_set(struct cl_event *e)
{
    CL_PT(pthread_mutex_lock(&e->mu));
    e->flag = true;
    CL_PT(pthread_cond_broadcast(&e->cv)); /* every waiter: a level, not a hand-off */
    CL_PT(pthread_mutex_unlock(&e->mu));
}

void cl_event_clear(struct cl_event *e)
{
    CL_PT(pthread_mutex_lock(&e->mu));
    e->flag = false;
    CL_PT(pthread_mutex_unlock(&e->mu));
}

bool cl_event_is_set(struct cl_event *e)
{
    CL_PT(pthread_mutex_lock(&e->mu));
    bool f = e->flag;
    CL_PT(pthread_mutex_unlock(&e->mu));
    return f;
}

bool cl_event_wait(struct cl_event *e, double timeout_s)
{
    struct timespec at = {0};
    CL_PT(pthread_mutex_lock(&e->mu));
    /* The flag, not the wake-up, is the news: a set that came first is seen here. */
    while (!e->flag) {
        if (timeout_s <= 0) {
            CL_PT(pthread_cond_wait(&e->cv, &e->mu));
            continue;
        }
        if (at.tv_sec == 0 && at.tv_nsec == 0) /* the clock is read only when it must wait */
            at = cl_deadline_ns(timeout_ns(timeout_s));
        int rc = pthread_cond_timedwait(&e->cv, &e->mu, &at);
        if (rc == ETIMEDOUT)
            break;
        CL_PT(rc);
    }
    bool f = e->flag;
    CL_PT(pthread_mutex_unlock(&e->mu));
    return f;
}

/* --- Bounded semaphore -------------------------------------------------------- */

int cl_bsem_init(struct cl_bsem *s, unsigned value)
{
    if (value > SEM_VALUE_MAX)
        return EINVAL;
    if (sem_init(&s->sem, 0, 0) != 0)
        return errno;
    atomic_init(&s->count, (long)value);
    s->bound = (long)value;
    return 0;
}

void cl_bsem_destroy(struct cl_bsem *s)
{
    sem_destroy(&s->sem);
}

/* `count` is the permits free less the waiters no release has handed one to yet.
 * A permit that is free is taken with one atomic instruction; only a thread that
 * finds none sleeps in the sem_t, and a release that finds a waiter posts to it. */
void cl_bsem_acquire(struct cl_bsem *s)
{
    if (atomic_fetch_sub_explicit(&s->count, 1, memory_order_acquire) > 0)
        return;
    CL_SYS_RETRY(sem_wait(&s->sem)); /* a release will hand us a permit */
}

bool cl_bsem_try_acquire(struct cl_bsem *s)
{
    long c = atomic_load_explicit(&s->count, memory_order_relaxed);
    while (c > 0)
        if (atomic_compare_exchange_weak_explicit(&s->count, &c, c - 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

int cl_bsem_timed_acquire(struct cl_bsem *s, double timeout_s)
{
    if (atomic_fetch_sub_explicit(&s->count, 1, memory_order_acquire) > 0)
        return 0;
    /* sem_timedwait counts on CLOCK_REALTIME (sem_clockwait is what TSan misreads) */
    struct timespec at;
    CL_SYS(clock_gettime(CLOCK_REALTIME, &at));
    uint64_t ns = (uint64_t)at.tv_nsec + timeout_ns(timeout_s > 0 ? timeout_s : 0);
    at.tv_sec += (time_t)(ns / CL_NS_PER_S);
    at.tv_nsec = (long)(ns % CL_NS_PER_S);
    if (CL_RETRY(sem_timedwait(&s->sem, &at)) == 0)
        return 0;
    if (errno != ETIMEDOUT)
        cl_die(__FILE__, __LINE__, "sem_timedwait", errno);
    /* Leave the line, unless a release has already counted us in: then its post is
     * ours, and is taken at once. */
    long c = atomic_load_explicit(&s->count, memory_order_relaxed);
    while (c < 0)
        if (atomic_compare_exchange_weak_explicit(&s->count, &c, c + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return ETIMEDOUT;
    CL_SYS_RETRY(sem_wait(&s->sem));
    return 0;
}

int cl_bsem_release(struct cl_bsem *s)
{
    long c = atomic_load_explicit(&s->count, memory_order_relaxed);
    do {
        if (c >= s->bound)
            return EOVERFLOW; /* nobody holds a permit: this one was never taken */
    } while (!atomic_compare_exchange_weak_explicit(&s->count, &c, c + 1, memory_order_release,
                                                    memory_order_relaxed));
    if (c < 0)
        CL_SYS(sem_post(&s->sem)); /* hand the permit to a waiter */
    return 0;
}

long cl_bsem_value(struct cl_bsem *s)
{
    long c = atomic_load_explicit(&s->count, memory_order_relaxed);
    return c > 0 ? c : 0;
}

/* --- Reader-writer lock, first come first served --------------------------------- */

int cl_rwlock_init(struct cl_rwlock *l)
{
    *l = (struct cl_rwlock){0};
    int rc = pthread_cond_init(&l->cv, NULL);
    if (rc != 0)
        return rc;
    rc = pthread_mutex_init(&l->mu, NULL);
    if (rc != 0)
        pthread_cond_destroy(&l->cv);
    return rc;
}

void cl_rwlock_destroy(struct cl_rwlock *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

/* Every arrival takes a ticket and enters in ticket order. A reader enters as soon
 * as it is first in line and no writer is inside, then passes the turn on at once,
 * so a run of readers enters together; a writer also waits for the readers
 * inside to leave. */
void cl_rwlock_rdlock(struct cl_rwlock *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    uint64_t me = l->next++;
    while (l->serving != me || l->writer)
        CL_PT(pthread_cond_wait(&l->cv, &l->mu));
    l->readers++;
    l->serving++;
    if (l->next != l->serving) /* someone is in line: it may be a reader too */
        CL_PT(pthread_cond_broadcast(&l->cv));
    CL_PT(pthread_mutex_unlock(&l->mu));
}

void cl_rwlock_rdunlock(struct cl_rwlock *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    if (--l->readers == 0 && l->next != l->serving) /* a writer may be first in line */
        CL_PT(pthread_cond_broadcast(&l->cv));
    CL_PT(pthread_mutex_unlock(&l->mu));
}

void cl_rwlock_wrlock(struct cl_rwlock *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    uint64_t me = l->next++;
    while (l->serving != me || l->writer || l->readers > 0)
        CL_PT(pthread_cond_wait(&l->cv, &l->mu));
    l->writer = true;
    l->serving++; /* the next in line now waits for this writer to leave */
    CL_PT(pthread_mutex_unlock(&l->mu));
}

void cl_rwlock_wrunlock(struct cl_rwlock *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    l->writer = false;
    if (l->next != l->serving)
        CL_PT(pthread_cond_broadcast(&l->cv));
    CL_PT(pthread_mutex_unlock(&l->mu));
}

unsigned cl_rwlock_waiting(struct cl_rwlock *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    unsigned n = (unsigned)(l->next - l->serving);
    CL_PT(pthread_mutex_unlock(&l->mu));
    return n;
}
