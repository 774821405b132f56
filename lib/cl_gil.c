#include "cl_gil.h"

#include <errno.h>
#include <stdbool.h>

#include "cl_check.h"
#include "cl_time.h"

int cl_gil_init(struct cl_gil *g, uint64_t interval_ns)
{
    if (interval_ns == 0)
        return EINVAL;
    int rc = cl_cond_init_monotonic(&g->cond);
    if (rc != 0)
        return rc;
    rc = cl_cond_init_monotonic(&g->switch_cond);
    if (rc != 0) {
        pthread_cond_destroy(&g->cond);
        return rc;
    }
    rc = pthread_mutex_init(&g->mu, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&g->cond);
        pthread_cond_destroy(&g->switch_cond);
        return rc;
    }
    g->locked = false;
    g->last_holder = -1;
    g->switch_number = 0;
    g->interval_ns = interval_ns;
    atomic_init(&g->owner, -1);
    atomic_init(&g->drop_request, false);
    atomic_init(&g->request_ns, 0);
    atomic_init(&g->switches, 0);
    atomic_init(&g->max_honour_ns, 0);
    return 0;
}

void cl_gil_destroy(struct cl_gil *g)
{
    CL_PT(pthread_cond_destroy(&g->switch_cond));
    CL_PT(pthread_cond_destroy(&g->cond));
    CL_PT(pthread_mutex_destroy(&g->mu));
}

/* [snippet take] */
void cl_gil_take(struct cl_gil *g, struct cl_gil_thread *t)
{
    uint64_t t0 = cl_now_ns();
    CL_PT(pthread_mutex_lock(&g->mu));
    bool waited = g->locked;
    while (g->locked) {
        uint64_t seen = g->switch_number;
        struct timespec deadline = cl_deadline_ns(g->interval_ns);
        int rc = pthread_cond_timedwait(&g->cond, &g->mu, &deadline);
        if (rc == ETIMEDOUT && g->locked && g->switch_number == seen &&
            !atomic_load_explicit(&g->drop_request, memory_order_relaxed)) {
            /* a whole interval and nobody let go: ask the holder to drop */
            atomic_store_explicit(&g->request_ns, cl_now_ns(), memory_order_relaxed);
            atomic_store_explicit(&g->drop_request, true, memory_order_relaxed);
            t->requests++;
        } else if (rc != 0 && rc != ETIMEDOUT) {
            cl_die(__FILE__, __LINE__, "pthread_cond_timedwait", rc);
        }
    }
    g->locked = true;
    if (g->last_holder != t->id && g->last_holder != -1) {
        atomic_fetch_add_explicit(&g->switches, 1, memory_order_relaxed);
        t->switched_in++;
    }
    g->last_holder = t->id;
    g->switch_number++;
    atomic_store_explicit(&g->owner, t->id, memory_order_relaxed);
    /* the request, if any, is served: the holder it was aimed at has let go */
    atomic_store_explicit(&g->drop_request, false, memory_order_relaxed);
    CL_PT(pthread_cond_signal(&g->switch_cond));
    CL_PT(pthread_mutex_unlock(&g->mu));
    uint64_t t1 = cl_now_ns();
    t->takes++;
    t->wait_ns += t1 - t0;
    if (t->trace != NULL) {
        if (waited)
            cl_trace_add(t->trace, CL_SPAN_WAIT, t0, t1);
        t->held_since = t1;
    }
}
/* [end take] */

/* [snippet drop] */
void cl_gil_drop(struct cl_gil *g, struct cl_gil_thread *t)
{
    if (t->trace != NULL)
        cl_trace_add(t->trace, CL_SPAN_HOLD, t->held_since, cl_now_ns());
    CL_PT(pthread_mutex_lock(&g->mu));
    if (!g->locked || atomic_load_explicit(&g->owner, memory_order_relaxed) != t->id)
        cl_die(__FILE__, __LINE__, "cl_gil_drop by a thread that does not hold the GIL", EPERM);
    atomic_store_explicit(&g->owner, -1, memory_order_relaxed);
    g->locked = false;
    CL_PT(pthread_cond_signal(&g->cond));
    if (atomic_load_explicit(&g->drop_request, memory_order_relaxed)) {
        /* Asked to let go: wait until the asker has the GIL, or this thread
         * would often take it straight back before the asker even wakes. */
        uint64_t asked = atomic_load_explicit(&g->request_ns, memory_order_relaxed);
        uint64_t late = cl_now_ns() - asked;
        if (late > atomic_load_explicit(&g->max_honour_ns, memory_order_relaxed))
            atomic_store_explicit(&g->max_honour_ns, late, memory_order_relaxed);
        t->forced_drops++;
        uint64_t seen = g->switch_number;
        while (g->switch_number == seen)
            CL_PT(pthread_cond_wait(&g->switch_cond, &g->mu));
    }
    CL_PT(pthread_mutex_unlock(&g->mu));
}
/* [end drop] */

bool cl_gil_yield_slow(struct cl_gil *g, struct cl_gil_thread *t)
{
    cl_gil_drop(g, t);
    cl_gil_take(g, t);
    return true;
}
