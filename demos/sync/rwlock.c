/* sync: reader-writer locks. glibc's kinds (set with pthread_rwlockattr_setkind_np),
 * lib's first-come-first-served lock, and a plain mutex, under a mix of reads and
 * writes; and the schedule that starves a writer under a reader-preferring lock. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <unistd.h>

#include "sync.h"

/* [snippet kinds] */
void rw_init(struct rw *l, enum rw_policy p)
{
    l->policy = p;
    if (p == RW_FAIR) {
        CL_PT(cl_rwlock_init(&l->fair));
        return;
    }
    if (p == RW_MUTEX) {
        CL_PT(pthread_mutex_init(&l->mu, NULL));
        return;
    }
    static const int kinds[] = {
        [RW_READER_PREF] = PTHREAD_RWLOCK_PREFER_READER_NP,
        [RW_WRITER_NP] = PTHREAD_RWLOCK_PREFER_WRITER_NP, /* glibc treats it as the above */
        [RW_WRITER_PREF] = PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP,
    };
    pthread_rwlockattr_t a;
    CL_PT(pthread_rwlockattr_init(&a));
    CL_PT(pthread_rwlockattr_setkind_np(&a, kinds[p]));
    CL_PT(pthread_rwlock_init(&l->rw, &a));
    CL_PT(pthread_rwlockattr_destroy(&a));
}
/* [end kinds] */

void rw_destroy(struct rw *l)
{
    if (l->policy == RW_FAIR)
        cl_rwlock_destroy(&l->fair);
    else if (l->policy == RW_MUTEX)
        pthread_mutex_destroy(&l->mu);
    else
        pthread_rwlock_destroy(&l->rw);
}

void rw_rdlock(struct rw *l)
{
    if (l->policy == RW_FAIR)
        cl_rwlock_rdlock(&l->fair);
    else if (l->policy == RW_MUTEX)
        CL_PT(pthread_mutex_lock(&l->mu));
    else
        CL_PT(pthread_rwlock_rdlock(&l->rw));
}

void rw_rdunlock(struct rw *l)
{
    if (l->policy == RW_FAIR)
        cl_rwlock_rdunlock(&l->fair);
    else if (l->policy == RW_MUTEX)
        CL_PT(pthread_mutex_unlock(&l->mu));
    else
        CL_PT(pthread_rwlock_unlock(&l->rw));
}

void rw_wrlock(struct rw *l)
{
    if (l->policy == RW_FAIR)
        cl_rwlock_wrlock(&l->fair);
    else if (l->policy == RW_MUTEX)
        CL_PT(pthread_mutex_lock(&l->mu));
    else
        CL_PT(pthread_rwlock_wrlock(&l->rw));
}

void rw_wrunlock(struct rw *l)
{
    if (l->policy == RW_FAIR)
        cl_rwlock_wrunlock(&l->fair);
    else if (l->policy == RW_MUTEX)
        CL_PT(pthread_mutex_unlock(&l->mu));
    else
        CL_PT(pthread_rwlock_unlock(&l->rw));
}

/* --- a mix of reads and writes ------------------------------------------------ */

static void read_once(struct tally *t, uint64_t work_ns)
{
    rw_rdlock(&S.lock);
    int n = atomic_fetch_add(&S.inside, 1) + 1;
    int hi = atomic_load(&S.max_inside);
    while (n > hi && !atomic_compare_exchange_weak(&S.max_inside, &hi, n))
        ;
    t->torn += S.a != S.b; /* a writer inside with us would show here */
    cl_busy_ns(work_ns);
    atomic_fetch_sub(&S.inside, 1);
    rw_rdunlock(&S.lock);
    t->reads++;
}

/* [snippet mix] */
void rw_mix_worker(struct cl_worker *w)
{
    struct tally *t = &S.tallies[w->id];
    uint64_t reads = (uint64_t)cl_param(w->run, READS), work = (uint64_t)cl_param(w->run, WORK_NS);
    /* from the open gate, which every worker passes within microseconds */
    uint64_t deadline = cl_now_ns() + (uint64_t)cl_param(w->run, DURATION) * 1000000;
    for (uint64_t i = 0; i < w->iters && cl_now_ns() < deadline; i++) {
        if (cl_rand(w) % 100 < reads) {
            read_once(t, work);
        } else {
            uint64_t t0 = cl_now_ns();
            cl_status(w, "waits for the write lock");
            rw_wrlock(&S.lock);
            uint64_t got = cl_now_ns();
            cl_status(w, NULL);
            S.a++;
            cl_busy_ns(work);
            S.b++;
            rw_wrunlock(&S.lock);
            t->censored += got >= deadline; /* it waited past the end of the run */
            if (t->nwaits < MAX_WAIT_LOGS)
                t->waits[t->nwaits++] = got - t0;
            t->writes++;
        }
        cl_tick(w);
    }
}
/* [end mix] */

/* --- readers hand over hand: the writer starves ---------------------------------- */

/* A reader counts itself in, and learns its place in the line. */
static uint64_t entered(void)
{
    CL_PT(pthread_mutex_lock(&S.baton_mu));
    uint64_t me = ++S.entered;
    CL_PT(pthread_cond_broadcast(&S.baton_cv));
    CL_PT(pthread_mutex_unlock(&S.baton_mu));
    return me;
}

/* Hold on until the next reader is inside too, or GIVE_UP_NS have passed (it is
 * stuck behind a waiting writer), or the writer is done. */
static void await_successor(uint64_t me)
{
    struct timespec at = cl_deadline_ns(GIVE_UP_NS);
    CL_PT(pthread_mutex_lock(&S.baton_mu));
    while (S.entered == me && !atomic_load(&S.writer_done)) {
        int rc = pthread_cond_timedwait(&S.baton_cv, &S.baton_mu, &at);
        if (rc == ETIMEDOUT)
            break;
        CL_PT(rc);
    }
    CL_PT(pthread_mutex_unlock(&S.baton_mu));
}

/* [snippet starve] */
static void starve_reader(struct cl_worker *w)
{
    int readers = w->run->threads - 1, me = w->id - 1, next = (me + 1) % readers;
    for (;;) {
        CL_SYS_RETRY(sem_wait(&S.turn[me])); /* my turn: the previous reader holds the lock */
        if (atomic_load(&S.writer_done)) {
            CL_SYS(sem_post(&S.turn[next])); /* pass the end on */
            return;
        }
        cl_status(w, "waits for the read lock");
        rw_rdlock(&S.lock);
        cl_status(w, NULL);
        uint64_t place = entered();
        CL_SYS(sem_post(&S.turn[next])); /* the next reader comes in before I leave */
        await_successor(place);
        rw_rdunlock(&S.lock);
        S.tallies[w->id].reads++;
        cl_tick(w);
    }
}

static void starve_writer(struct cl_worker *w)
{
    CL_PT(pthread_mutex_lock(&S.baton_mu)); /* comes once the readers' chain has begun */
    while (S.entered < 2)
        CL_PT(pthread_cond_wait(&S.baton_cv, &S.baton_mu));
    CL_PT(pthread_mutex_unlock(&S.baton_mu));
    for (uint64_t i = 0; i < w->iters; i++) {
        cl_status(w, "waits for the write lock");
        rw_wrlock(&S.lock); /* reader-preferring: some reader always holds it */
        cl_status(w, NULL);
        S.a++;
        S.b++;
        rw_wrunlock(&S.lock);
        S.tallies[w->id].writes++;
        cl_tick(w);
        cl_sleep_ns(1000000);
    }
    CL_PT(pthread_mutex_lock(&S.baton_mu));
    atomic_store(&S.writer_done, true);
    CL_PT(pthread_cond_broadcast(&S.baton_cv));
    CL_PT(pthread_mutex_unlock(&S.baton_mu));
}
/* [end starve] */

void rw_starve_worker(struct cl_worker *w)
{
    if (w->id == 0)
        starve_writer(w);
    else
        starve_reader(w);
}

/* --- a read lock taken twice while a writer waits ----------------------------------- */

/* Until the writer is asleep in the kernel: it has published its thread id and
 * has nothing left to do but wait for the write lock. */
static void await_blocked_writer(void)
{
    pid_t tid;
    while ((tid = atomic_load(&S.writer_tid)) == 0)
        cl_sleep_ns(50000);
    struct cl_sched_probe p;
    CL_PT(cl_sched_open(&p, tid));
    struct cl_sched_sample s;
    while (cl_sched_read(&p, &s) && cl_sched_kind(&s) != CL_SPAN_BLOCKED)
        cl_sleep_ns(50000);
    cl_sched_close(&p);
}

/* [snippet recursive-read] */
void rw_recursive_worker(struct cl_worker *w)
{
    if (w->id == 1) { /* T2, the writer: arrives while T1 reads */
        CL_SYS_RETRY(sem_wait(&S.items));
        cl_status(w, "waits for the write lock (T1 holds a read lock)");
        atomic_store(&S.writer_tid, gettid());
        rw_wrlock(&S.lock);
        cl_status(w, NULL);
        rw_wrunlock(&S.lock);
        cl_tick(w);
        return;
    }
    rw_rdlock(&S.lock); /* T1 reads ... */
    CL_SYS(sem_post(&S.items));
    await_blocked_writer(); /* ... while T2 waits to write ... */
    cl_status(w, "holds a read lock, waits for a second one behind the writer");
    rw_rdlock(&S.lock); /* ... and reads again: behind the writer, who waits for T1 */
    cl_status(w, NULL);
    S.tallies[w->id].reads = 2;
    rw_rdunlock(&S.lock);
    rw_rdunlock(&S.lock);
    cl_tick(w);
}
/* [end recursive-read] */
