#include "cl_barrier.h"

#include <errno.h>

#include "cl_check.h"
#include "cl_time.h"

int cl_barrier_init(struct cl_barrier *b, unsigned parties, cl_barrier_action action, void *arg)
{
    if (parties == 0)
        return EINVAL;
    int rc = cl_cond_init_monotonic(&b->cv);
    if (rc != 0)
        return rc;
    rc = pthread_mutex_init(&b->mu, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&b->cv);
        return rc;
    }
    b->parties = parties;
    b->arrived = 0;
    b->inside = 0;
    b->generation = 0;
    b->broken_gen = UINT64_MAX;
    b->broken = false;
    b->action = action;
    b->arg = arg;
    return 0;
}

void cl_barrier_destroy(struct cl_barrier *b)
{
    CL_PT(pthread_cond_destroy(&b->cv));
    CL_PT(pthread_mutex_destroy(&b->mu));
}

/* With the mutex held: end this generation as broken and wake everyone. */
static void break_locked(struct cl_barrier *b)
{
    if (b->broken)
        return;
    b->broken = true;
    b->broken_gen = b->generation;
    b->generation++;
    b->arrived = 0;
    CL_PT(pthread_cond_broadcast(&b->cv));
}

/* With the mutex held: a thread leaves wait(); the last one lets reset go on. */
static int leave_locked(struct cl_barrier *b, int rc)
{
    if (--b->inside == 0 && b->broken)
        CL_PT(pthread_cond_broadcast(&b->cv));
    CL_PT(pthread_mutex_unlock(&b->mu));
    return rc;
}

/* [snippet lib-wait] */
int cl_barrier_wait(struct cl_barrier *b, double timeout_s)
{
    struct timespec deadline = {0};
    if (timeout_s > 0)
        deadline = cl_deadline_ns((uint64_t)(timeout_s * 1e9));
    CL_PT(pthread_mutex_lock(&b->mu));
    b->inside++;
    if (b->broken)
        return leave_locked(b, CL_BARRIER_BROKEN);
    uint64_t mine = b->generation; /* the phase this thread arrives in */
    if (++b->arrived == b->parties) {
        /* Last in: the others are all waiting, so the action runs alone. */
        if (b->action != NULL && b->action(b->arg) != 0) {
            break_locked(b);
            return leave_locked(b, CL_BARRIER_BROKEN);
        }
        b->arrived = 0;
        b->generation++; /* releases exactly the threads of generation `mine` */
        CL_PT(pthread_cond_broadcast(&b->cv));
        return leave_locked(b, CL_BARRIER_SERIAL);
    }
    while (b->generation == mine) { /* a loop: wakeups can be spurious */
        int rc = timeout_s > 0 ? pthread_cond_timedwait(&b->cv, &b->mu, &deadline)
                               : pthread_cond_wait(&b->cv, &b->mu);
        if (rc == ETIMEDOUT && b->generation == mine) {
            break_locked(b); /* as Python does: a timeout breaks it for all */
            return leave_locked(b, CL_BARRIER_TIMEDOUT);
        }
        if (rc != 0 && rc != ETIMEDOUT)
            cl_die(__FILE__, __LINE__, "pthread_cond_timedwait", rc);
    }
    return leave_locked(b, b->broken_gen == mine ? CL_BARRIER_BROKEN : CL_BARRIER_PASSED);
}
/* [end lib-wait] */

void cl_barrier_abort(struct cl_barrier *b)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    break_locked(b);
    CL_PT(pthread_mutex_unlock(&b->mu));
}

void cl_barrier_reset(struct cl_barrier *b)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    break_locked(b); /* a reset while threads wait releases them as broken */
    while (b->inside > 0)
        CL_PT(pthread_cond_wait(&b->cv, &b->mu));
    b->broken = false;
    b->broken_gen = UINT64_MAX;
    b->arrived = 0;
    CL_PT(pthread_mutex_unlock(&b->mu));
}

bool cl_barrier_is_broken(struct cl_barrier *b)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    bool broken = b->broken;
    CL_PT(pthread_mutex_unlock(&b->mu));
    return broken;
}

uint64_t cl_barrier_generation(struct cl_barrier *b)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    uint64_t g = b->generation;
    CL_PT(pthread_mutex_unlock(&b->mu));
    return g;
}
