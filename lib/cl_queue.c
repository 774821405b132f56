#include "cl_queue.h"

#include <errno.h>
#include <stdlib.h>

#include "cl_check.h"
#include "cl_time.h"

int cl_queue_init(struct cl_queue *q, size_t capacity)
{
    if (capacity == 0 || capacity > CL_QUEUE_MAX)
        return EINVAL;
    void **ring = calloc(capacity, sizeof *ring);
    if (ring == NULL)
        return ENOMEM;
    *q = (struct cl_queue){.ring = ring, .cap = capacity};
    CL_PT(cl_cond_init_monotonic(&q->not_full));
    CL_PT(cl_cond_init_monotonic(&q->not_empty));
    CL_PT(cl_cond_init_monotonic(&q->all_done));
    CL_PT(pthread_mutex_init(&q->mu, NULL));
    return 0;
}

void cl_queue_destroy(struct cl_queue *q)
{
    CL_PT(pthread_cond_destroy(&q->not_full));
    CL_PT(pthread_cond_destroy(&q->not_empty));
    CL_PT(pthread_cond_destroy(&q->all_done));
    CL_PT(pthread_mutex_destroy(&q->mu));
    free(q->ring);
    q->ring = NULL;
}

/* Wait on cv (mu held); deadline NULL waits for ever. Returns false on timeout. */
static bool wait_on(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *deadline)
{
    if (deadline == NULL) {
        CL_PT(pthread_cond_wait(cv, mu));
        return true;
    }
    int rc = pthread_cond_timedwait(cv, mu, deadline);
    if (rc == ETIMEDOUT)
        return false;
    CL_PT(rc);
    return true;
}

/* How a put or get waits when it cannot go on at once. */
enum wait_mode {
    BLOCK,  /* as long as it takes */
    NOWAIT, /* not at all: CL_Q_FULL or CL_Q_EMPTY */
    TIMED,  /* until the deadline: CL_Q_TIMEOUT */
};

/* [snippet queue-put] */
static enum cl_qstatus put(struct cl_queue *q, void *item, enum wait_mode mode, uint64_t timeout_ns)
{
    struct timespec dl;
    if (mode == TIMED)
        dl = cl_deadline_ns(timeout_ns);
    CL_PT(pthread_mutex_lock(&q->mu));
    /* while, not if: a wakeup only says "look again" (another producer may have
     * filled the slot first, and wakeups may be spurious) */
    while (q->len == q->cap && !q->closed) {
        if (mode == NOWAIT) {
            CL_PT(pthread_mutex_unlock(&q->mu));
            return CL_Q_FULL;
        }
        atomic_fetch_add_explicit(&q->putters_waiting, 1, memory_order_relaxed);
        bool woken = wait_on(&q->not_full, &q->mu, mode == TIMED ? &dl : NULL);
        atomic_fetch_sub_explicit(&q->putters_waiting, 1, memory_order_relaxed);
        if (!woken && q->len == q->cap && !q->closed) {
            CL_PT(pthread_mutex_unlock(&q->mu));
            return CL_Q_TIMEOUT;
        }
    }
    if (q->closed) {
        CL_PT(pthread_mutex_unlock(&q->mu));
        return CL_Q_CLOSED;
    }
    q->ring[(q->head + q->len) % q->cap] = item;
    q->len++;
    q->unfinished++;
    atomic_store_explicit(&q->len_seen, q->len, memory_order_relaxed);
    if (atomic_load_explicit(&q->getters_waiting, memory_order_relaxed) > 0)
        CL_PT(pthread_cond_signal(&q->not_empty)); /* only consumers wait there */
    CL_PT(pthread_mutex_unlock(&q->mu));
    return CL_Q_OK;
}
/* [end queue-put] */

static enum cl_qstatus get(struct cl_queue *q, void **item, enum wait_mode mode,
                           uint64_t timeout_ns)
{
    struct timespec dl;
    if (mode == TIMED)
        dl = cl_deadline_ns(timeout_ns);
    CL_PT(pthread_mutex_lock(&q->mu));
    while (q->len == 0 && !q->closed) {
        if (mode == NOWAIT) {
            CL_PT(pthread_mutex_unlock(&q->mu));
            return CL_Q_EMPTY;
        }
        atomic_fetch_add_explicit(&q->getters_waiting, 1, memory_order_relaxed);
        bool woken = wait_on(&q->not_empty, &q->mu, mode == TIMED ? &dl : NULL);
        atomic_fetch_sub_explicit(&q->getters_waiting, 1, memory_order_relaxed);
        if (!woken && q->len == 0 && !q->closed) {
            CL_PT(pthread_mutex_unlock(&q->mu));
            return CL_Q_TIMEOUT;
        }
    }
    if (q->len == 0) { /* closed and drained */
        CL_PT(pthread_mutex_unlock(&q->mu));
        return CL_Q_CLOSED;
    }
    *item = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    atomic_store_explicit(&q->len_seen, q->len, memory_order_relaxed);
    if (atomic_load_explicit(&q->putters_waiting, memory_order_relaxed) > 0)
        CL_PT(pthread_cond_signal(&q->not_full)); /* only producers wait there */
    CL_PT(pthread_mutex_unlock(&q->mu));
    return CL_Q_OK;
}

enum cl_qstatus cl_queue_put(struct cl_queue *q, void *item)
{
    return put(q, item, BLOCK, 0);
}

enum cl_qstatus cl_queue_put_timed(struct cl_queue *q, void *item, uint64_t timeout_ns)
{
    return put(q, item, TIMED, timeout_ns);
}

enum cl_qstatus cl_queue_try_put(struct cl_queue *q, void *item)
{
    return put(q, item, NOWAIT, 0);
}

enum cl_qstatus cl_queue_get(struct cl_queue *q, void **item)
{
    return get(q, item, BLOCK, 0);
}

enum cl_qstatus cl_queue_get_timed(struct cl_queue *q, void **item, uint64_t timeout_ns)
{
    return get(q, item, TIMED, timeout_ns);
}

enum cl_qstatus cl_queue_try_get(struct cl_queue *q, void **item)
{
    return get(q, item, NOWAIT, 0);
}

void cl_queue_close(struct cl_queue *q)
{
    CL_PT(pthread_mutex_lock(&q->mu));
    q->closed = true;
    atomic_store_explicit(&q->closed_seen, true, memory_order_relaxed);
    CL_PT(pthread_cond_broadcast(&q->not_full));
    CL_PT(pthread_cond_broadcast(&q->not_empty));
    CL_PT(pthread_mutex_unlock(&q->mu));
}

/* [snippet queue-task-done] */
enum cl_qstatus cl_queue_task_done(struct cl_queue *q)
{
    enum cl_qstatus s = CL_Q_OK;
    CL_PT(pthread_mutex_lock(&q->mu));
    if (q->unfinished == 0)
        s = CL_Q_TOO_MANY;
    else if (--q->unfinished == 0)
        CL_PT(pthread_cond_broadcast(&q->all_done));
    CL_PT(pthread_mutex_unlock(&q->mu));
    return s;
}
/* [end queue-task-done] */

static enum cl_qstatus join(struct cl_queue *q, const struct timespec *deadline)
{
    enum cl_qstatus s = CL_Q_OK;
    CL_PT(pthread_mutex_lock(&q->mu));
    while (q->unfinished > 0) {
        if (!wait_on(&q->all_done, &q->mu, deadline) && q->unfinished > 0) {
            s = CL_Q_TIMEOUT;
            break;
        }
    }
    CL_PT(pthread_mutex_unlock(&q->mu));
    return s;
}

void cl_queue_join(struct cl_queue *q)
{
    join(q, NULL);
}

enum cl_qstatus cl_queue_join_timed(struct cl_queue *q, uint64_t timeout_ns)
{
    struct timespec dl = cl_deadline_ns(timeout_ns);
    return join(q, &dl);
}

size_t cl_queue_len(struct cl_queue *q)
{
    CL_PT(pthread_mutex_lock(&q->mu));
    size_t n = q->len;
    CL_PT(pthread_mutex_unlock(&q->mu));
    return n;
}

struct cl_queue_snapshot cl_queue_peek(const struct cl_queue *q)
{
    return (struct cl_queue_snapshot){
        .len = atomic_load_explicit(&q->len_seen, memory_order_relaxed),
        .cap = q->cap,
        .putters_waiting = atomic_load_explicit(&q->putters_waiting, memory_order_relaxed),
        .getters_waiting = atomic_load_explicit(&q->getters_waiting, memory_order_relaxed),
        .closed = atomic_load_explicit(&q->closed_seen, memory_order_relaxed),
    };
}

const char *cl_qstatus_str(enum cl_qstatus s)
{
    switch (s) {
    case CL_Q_OK:
        return "ok";
    case CL_Q_FULL:
        return "full";
    case CL_Q_EMPTY:
        return "empty";
    case CL_Q_TIMEOUT:
        return "timeout";
    case CL_Q_CLOSED:
        return "closed";
    case CL_Q_TOO_MANY:
        return "task_done called too many times";
    }
    return "?";
}
