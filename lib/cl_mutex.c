#include "cl_mutex.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "cl_check.h"
#include "cl_lockdep.h"
#include "cl_thread.h"

/* What each named thread is blocked on: written only by that thread. */
static _Atomic(const struct cl_mutex *) waiting[CL_THREAD_MAX];

void cl_mutex_init(struct cl_mutex *m, const char *name, int kind)
{
    pthread_mutexattr_t attr;
    CL_PT(pthread_mutexattr_init(&attr));
    CL_PT(pthread_mutexattr_settype(&attr, kind));
    CL_PT(pthread_mutex_init(&m->mu, &attr));
    CL_PT(pthread_mutexattr_destroy(&attr));
    m->name = name;
    atomic_init(&m->holder, 0);
    m->depth = 0;
    m->lockdep_class = -1;
}

void cl_mutex_set_lockdep(struct cl_mutex *m, int cls)
{
    m->lockdep_class = cls;
}

void cl_mutex_destroy(struct cl_mutex *m)
{
    CL_PT(pthread_mutex_destroy(&m->mu));
}

static void set_waiting(const struct cl_mutex *m)
{
    int self = cl_thread_id();
    if (self >= 0)
        atomic_store_explicit(&waiting[self], m, memory_order_relaxed);
}

/* Called with the lock just taken. */
static void acquired(struct cl_mutex *m)
{
    if (m->depth++ == 0)
        atomic_store_explicit(&m->holder, cl_thread_id() + 1, memory_order_relaxed);
}

static int finish(struct cl_mutex *m, int rc)
{
    set_waiting(NULL);
    if (rc == 0)
        acquired(m);
    else if (m->lockdep_class >= 0)
        cl_lockdep_release(m->lockdep_class); /* the acquisition did not happen */
    return rc;
}

int cl_mutex_lock(struct cl_mutex *m)
{
    if (m->lockdep_class >= 0)
        cl_lockdep_acquire(m->lockdep_class);
    set_waiting(m);
    return finish(m, pthread_mutex_lock(&m->mu));
}

int cl_mutex_trylock(struct cl_mutex *m)
{
    int rc = pthread_mutex_trylock(&m->mu);
    if (rc == 0) {
        if (m->lockdep_class >= 0)
            cl_lockdep_acquired_try(m->lockdep_class);
        acquired(m);
    }
    return rc;
}

int cl_mutex_timedlock(struct cl_mutex *m, uint64_t timeout_ns)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_REALTIME, &ts));
    uint64_t ns = (uint64_t)ts.tv_nsec + timeout_ns;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    if (m->lockdep_class >= 0)
        cl_lockdep_acquire(m->lockdep_class);
    set_waiting(m);
    return finish(m, pthread_mutex_timedlock(&m->mu, &ts));
}

int cl_mutex_unlock(struct cl_mutex *m)
{
    int held = atomic_load_explicit(&m->holder, memory_order_relaxed);
    if (held != cl_thread_id() + 1 || m->depth == 0)
        return pthread_mutex_unlock(&m->mu); /* not ours: let pthreads say so */
    if (--m->depth == 0)
        atomic_store_explicit(&m->holder, 0, memory_order_relaxed);
    int rc = pthread_mutex_unlock(&m->mu);
    if (rc == 0 && m->lockdep_class >= 0)
        cl_lockdep_release(m->lockdep_class);
    return rc;
}

int cl_mutex_holder(const struct cl_mutex *m)
{
    return atomic_load_explicit(&m->holder, memory_order_relaxed) - 1;
}

const struct cl_mutex *cl_mutex_waiting_for(int thread)
{
    if (thread < 0 || thread >= CL_THREAD_MAX)
        return NULL;
    return atomic_load_explicit(&waiting[thread], memory_order_relaxed);
}

/* The thread that thread t waits on, or -1. */
static int next_in_graph(int t)
{
    const struct cl_mutex *m = cl_mutex_waiting_for(t);
    return m == NULL ? -1 : cl_mutex_holder(m);
}

size_t cl_mutex_find_cycle(int threads, int *cycle, size_t max)
{
    if (threads > CL_THREAD_MAX)
        threads = CL_THREAD_MAX;
    for (int start = 0; start < threads; start++) {
        /* Walk at most `threads` steps: a path that long must have looped. */
        int t = start;
        for (int step = 0; step < threads && t >= 0; step++)
            t = next_in_graph(t);
        if (t < 0)
            continue;
        /* t is on a cycle: collect it, starting from its lowest thread. */
        int lowest = t, u = next_in_graph(t);
        size_t len = 1;
        while (u != t && u >= 0 && len <= (size_t)threads) {
            if (u < lowest)
                lowest = u;
            u = next_in_graph(u);
            len++;
        }
        if (u != t) /* the records moved under us: not a stable cycle */
            continue;
        size_t k = 0;
        u = lowest;
        do {
            if (k < max)
                cycle[k] = u;
            k++;
            u = next_in_graph(u);
        } while (u != lowest && u >= 0 && k < len);
        return k < max ? k : max;
    }
    return 0;
}

size_t cl_mutex_report(int fd, int threads, struct cl_mutex *const *ms, size_t n)
{
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        int holder = cl_mutex_holder(ms[i]);
        int nwait = 0;
        for (int t = 0; t < threads && t < CL_THREAD_MAX; t++)
            nwait += cl_mutex_waiting_for(t) == ms[i];
        if (holder < 0 && nwait == 0)
            continue;
        if (shown++ == 16) { /* enough for a student to read */
            dprintf(fd, "  lock ...: more locks held or wanted, not shown\n");
            break;
        }
        dprintf(fd, "  lock %s: ", ms[i]->name);
        if (holder >= 0)
            dprintf(fd, "held by T%d", holder + 1);
        else
            dprintf(fd, "free");
        if (nwait > 0) {
            dprintf(fd, ", wanted by");
            int listed = 0;
            for (int t = 0; t < threads && t < CL_THREAD_MAX && listed < 8; t++)
                if (cl_mutex_waiting_for(t) == ms[i])
                    dprintf(fd, "%s T%d", listed++ ? "," : "", t + 1);
            if (nwait > listed)
                dprintf(fd, " and %d more", nwait - listed);
        }
        dprintf(fd, "\n");
    }
    static int cycle[CL_THREAD_MAX]; /* only the watchdog reports */
    size_t len = cl_mutex_find_cycle(threads, cycle, CL_THREAD_MAX);
    if (len == 0) {
        dprintf(fd, "  wait-for cycle: none found among the instrumented locks\n");
        return 0;
    }
    dprintf(fd, "  wait-for cycle:");
    for (size_t k = 0; k < len; k++) {
        if (k == 8 && len > 9) { /* a long ring: the first links say it all */
            dprintf(fd, "; ... %zu more", len - 8);
            break;
        }
        int t = cycle[k];
        const struct cl_mutex *wants = cl_mutex_waiting_for(t);
        /* what t holds that the previous thread in the cycle waits for */
        const struct cl_mutex *holds = cl_mutex_waiting_for(cycle[(k + len - 1) % len]);
        dprintf(fd, "%s T%d holds %s, waits for %s", k ? ";" : "", t + 1,
                holds != NULL ? holds->name : "?", wants != NULL ? wants->name : "?");
    }
    dprintf(fd, "\n");
    if (len == 1)
        dprintf(fd, "  => self-deadlock: T%d waits for a lock it already holds\n", cycle[0] + 1);
    else {
        dprintf(fd, "  => deadlock: a cycle of %zu threads, T%d", len, cycle[0] + 1);
        for (size_t k = 1; k <= len; k++)
            if (k < 8 || k == len)
                dprintf(fd, " -> %sT%d", k == len && len > 8 ? "... -> " : "", cycle[k % len] + 1);
        dprintf(fd, "\n");
    }
    return len;
}
