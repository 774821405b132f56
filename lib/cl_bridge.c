/* The bridge between a cl_loop and other threads (cl_bridge.h). */
#include "cl_bridge.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cl_check.h"
#include "cl_time.h"

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        cl_fatal("cl_bridge: out of memory");
    return p;
}

/* ---- loop -> pool -> loop ------------------------------------------------------ */

struct in_pool {
    struct cl_loop *loop;
    struct cl_future *fut;     /* the loop's side: a reference until delivered */
    struct cl_pool_future *pf; /* the pool's side, released when delivered */
    struct cl_waiter on_cancel;
};

/* On the loop thread, when the loop future completes: a cancel reaches the pool. */
static void fut_done(struct cl_waiter *w, struct cl_future *f)
{
    struct in_pool *c = (struct in_pool *)((char *)w - offsetof(struct in_pool, on_cancel));
    if (cl_future_cancelled(f))
        (void)cl_pool_cancel(c->pf); /* only a task not started yet stops */
}

/* On the loop thread: the pool task has settled; hand its outcome to the future. */
static void deliver_result(void *arg)
{
    struct in_pool *c = arg;
    uint64_t value = 0;
    int err = 0;
    enum cl_pool_status s = cl_pool_get(c->pf, 0, &value, &err);
    if (s == CL_POOL_OK)
        cl_future_set(c->fut, (intptr_t)value);
    else if (s == CL_POOL_FAILED)
        cl_future_fail(c->fut, err, "the pool task failed");
    else
        cl_future_cancel(c->fut);
    cl_future_forget(&c->on_cancel);
    cl_pool_release(c->pf);
    cl_future_unref(c->fut);
    cl_loop_release(c->loop);
    free(c);
}

/* On the pool thread that finished the task (or at once on the loop's). */
static void pool_done(struct cl_pool_future *pf, void *arg)
{
    (void)pf;
    struct in_pool *c = arg;
    cl_loop_call_soon_threadsafe(c->loop, deliver_result, c);
}

struct cl_future *cl_run_in_pool(struct cl_loop *loop, struct cl_pool *pool, cl_pool_fn *fn,
                                 void *arg)
{
    struct cl_future *fut = cl_future_new(loop, "result from the pool");
    struct cl_pool_future *pf = cl_pool_submit(pool, fn, arg);
    if (pf == NULL) {
        cl_future_fail(fut, errno, "the pool refused the task");
        return fut;
    }
    struct in_pool *c = xcalloc(1, sizeof *c);
    *c = (struct in_pool){.loop = loop, .fut = fut, .pf = pf, .on_cancel.fn = fut_done};
    cl_future_ref(fut);
    cl_future_on_done(fut, &c->on_cancel);
    cl_loop_hold(loop); /* a thread works for the loop: it is not idle */
    cl_pool_on_done(pf, pool_done, c);
    return fut;
}

/* ---- thread -> loop -> thread ------------------------------------------------------ */

struct cl_xfuture {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    _Atomic int refs; /* the caller's, and the loop side's until settled */
    bool settled;
    bool cancel_asked;
    enum cl_pool_status status;
    intptr_t value;
    int err;
    void (*on_done)(struct cl_xfuture *xf, void *arg);
    void *on_done_arg;
    /* Loop thread only. */
    struct cl_loop *loop;
    struct cl_task *task; /* a reference while it runs */
    struct cl_waiter waiter;
    cl_task_fn *fn;
    size_t frame_size;
    const char *name;
    cl_task_init_fn *init;
    void *init_arg;
};

static void xf_unref(struct cl_xfuture *xf)
{
    if (atomic_fetch_sub(&xf->refs, 1) != 1)
        return;
    CL_PT(pthread_mutex_destroy(&xf->mu));
    CL_PT(pthread_cond_destroy(&xf->cond));
    free(xf);
}

/* On the loop thread: the task has finished; wake the waiting threads. */
static void task_done(struct cl_waiter *w, struct cl_future *f)
{
    struct cl_xfuture *xf = (struct cl_xfuture *)((char *)w - offsetof(struct cl_xfuture, waiter));
    CL_PT(pthread_mutex_lock(&xf->mu));
    xf->settled = true;
    xf->status = f->err == 0           ? CL_POOL_OK
                 : f->err == ECANCELED ? CL_POOL_CANCELLED
                                       : CL_POOL_FAILED;
    xf->value = f->value;
    xf->err = f->err;
    void (*cb)(struct cl_xfuture *, void *) = xf->on_done;
    CL_PT(pthread_mutex_unlock(&xf->mu));
    /* after the unlock, so that a woken waiter does not block on the mutex at
     * once; xf stays alive, the loop side's reference is dropped below */
    CL_PT(pthread_cond_broadcast(&xf->cond));
    if (cb != NULL)
        cb(xf, xf->on_done_arg);
    cl_future_unref(&xf->task->fut);
    xf->task = NULL;
    xf_unref(xf);
}

static void start_task(void *arg)
{
    struct cl_xfuture *xf = arg;
    xf->task = cl_task_new(xf->loop, xf->fn, xf->frame_size, xf->name);
    if (xf->init != NULL)
        xf->init(xf->task, xf->init_arg);
    CL_PT(pthread_mutex_lock(&xf->mu));
    bool cancel = xf->cancel_asked;
    CL_PT(pthread_mutex_unlock(&xf->mu));
    xf->waiter.fn = task_done;
    cl_future_on_done(&xf->task->fut, &xf->waiter);
    if (cancel)
        cl_task_cancel(xf->task); /* before its first step: it never runs */
}

struct cl_xfuture *cl_run_coro_threadsafe(struct cl_loop *loop, cl_task_fn *fn, size_t frame_size,
                                          const char *name, cl_task_init_fn *init, void *arg)
{
    struct cl_xfuture *xf = xcalloc(1, sizeof *xf);
    CL_PT(pthread_mutex_init(&xf->mu, NULL));
    CL_PT(cl_cond_init_monotonic(&xf->cond));
    atomic_init(&xf->refs, 2);
    xf->loop = loop;
    xf->fn = fn;
    xf->frame_size = frame_size;
    xf->name = name;
    xf->init = init;
    xf->init_arg = arg;
    /* No hold: a queued call keeps the loop alive, and then the task does (a
     * hold's release would cost the round trip one more eventfd write). */
    cl_loop_call_soon_threadsafe(loop, start_task, xf);
    return xf;
}

enum cl_pool_status cl_xfuture_wait(struct cl_xfuture *xf, uint64_t timeout_ns, intptr_t *value,
                                    int *err)
{
    struct timespec until = {0};
    if (timeout_ns != CL_FOREVER)
        until = cl_deadline_ns(timeout_ns);
    CL_PT(pthread_mutex_lock(&xf->mu));
    while (!xf->settled) {
        if (timeout_ns == CL_FOREVER) {
            CL_PT(pthread_cond_wait(&xf->cond, &xf->mu));
            continue;
        }
        int rc = pthread_cond_timedwait(&xf->cond, &xf->mu, &until);
        if (rc == ETIMEDOUT && !xf->settled) {
            CL_PT(pthread_mutex_unlock(&xf->mu));
            return CL_POOL_TIMEOUT;
        }
        if (rc != 0 && rc != ETIMEDOUT)
            cl_die(__FILE__, __LINE__, "pthread_cond_timedwait", rc);
    }
    CL_PT(pthread_mutex_unlock(&xf->mu));
    return cl_xfuture_result(xf, value, err);
}

enum cl_pool_status cl_xfuture_result(struct cl_xfuture *xf, intptr_t *value, int *err)
{
    CL_PT(pthread_mutex_lock(&xf->mu));
    enum cl_pool_status s = xf->settled ? xf->status : CL_POOL_RUNNING;
    if (value != NULL)
        *value = xf->value;
    if (err != NULL)
        *err = xf->err;
    CL_PT(pthread_mutex_unlock(&xf->mu));
    return s;
}

static void cancel_task(void *arg)
{
    struct cl_xfuture *xf = arg;
    if (xf->task != NULL)
        cl_task_cancel(xf->task);
    xf_unref(xf);
}

bool cl_xfuture_cancel(struct cl_xfuture *xf)
{
    CL_PT(pthread_mutex_lock(&xf->mu));
    bool pending = !xf->settled && !xf->cancel_asked;
    if (pending) {
        xf->cancel_asked = true;
        atomic_fetch_add(&xf->refs, 1); /* for cancel_task */
    }
    CL_PT(pthread_mutex_unlock(&xf->mu));
    if (pending)
        cl_loop_call_soon_threadsafe(xf->loop, cancel_task, xf);
    return pending || cl_xfuture_result(xf, NULL, NULL) == CL_POOL_CANCELLED;
}

void cl_xfuture_on_done(struct cl_xfuture *xf, void (*fn)(struct cl_xfuture *xf, void *arg),
                        void *arg)
{
    CL_PT(pthread_mutex_lock(&xf->mu));
    bool settled = xf->settled;
    if (!settled) {
        xf->on_done = fn;
        xf->on_done_arg = arg;
    }
    CL_PT(pthread_mutex_unlock(&xf->mu));
    if (settled)
        fn(xf, arg);
}

void cl_xfuture_release(struct cl_xfuture *xf)
{
    xf_unref(xf);
}

/* ---- a queue for both sides ------------------------------------------------------------ */

static int side_init(struct cl_bq_side *s)
{
    *s = (struct cl_bq_side){0};
    return cl_cond_init_monotonic(&s->cond);
}

static void side_push(struct cl_bq_side *s, struct cl_future *f)
{
    if (s->len == s->cap) {
        size_t cap = s->cap == 0 ? 8 : s->cap * 2;
        struct cl_future **ring = xcalloc(cap, sizeof *ring);
        for (size_t i = 0; i < s->len; i++)
            ring[i] = s->tasks[(s->head + i) % s->cap];
        free(s->tasks);
        s->tasks = ring;
        s->head = 0;
        s->cap = cap;
    }
    s->tasks[(s->head + s->len++) % s->cap] = f;
}

static struct cl_future *side_pop(struct cl_bq_side *s)
{
    struct cl_future *f = s->tasks[s->head];
    s->head = (s->head + 1) % s->cap;
    s->len--;
    return f;
}

int cl_bqueue_init(struct cl_bqueue *q, struct cl_loop *loop, size_t capacity)
{
    if (capacity == 0)
        return EINVAL;
    *q = (struct cl_bqueue){.loop = loop, .cap = capacity};
    int rc = pthread_mutex_init(&q->mu, NULL);
    if (rc == 0)
        rc = side_init(&q->getters);
    if (rc == 0)
        rc = side_init(&q->putters);
    if (rc != 0)
        return rc;
    q->items = xcalloc(capacity, sizeof *q->items);
    return 0;
}

static void side_destroy(struct cl_bq_side *s)
{
    while (s->len > 0)
        cl_future_unref(side_pop(s));
    free(s->tasks);
    CL_PT(pthread_cond_destroy(&s->cond));
}

void cl_bqueue_destroy(struct cl_bqueue *q)
{
    side_destroy(&q->getters);
    side_destroy(&q->putters);
    CL_PT(pthread_mutex_destroy(&q->mu));
    free(q->items);
}

/* Loop thread: complete the futures owed a wake-up. A cancelled waiter's future
 * is already done: it is dropped and the wake-up goes to the next one. */
#define DELIVER_BATCH 64
static void deliver_wakes(void *arg)
{
    struct cl_bqueue *q = arg;
    struct cl_future *wake[DELIVER_BATCH], *drop[DELIVER_BATCH];
    size_t nwake, ndrop;
    bool more;
    do {
        nwake = ndrop = 0;
        CL_PT(pthread_mutex_lock(&q->mu));
        struct cl_bq_side *sides[2] = {&q->getters, &q->putters};
        for (int i = 0; i < 2; i++) {
            struct cl_bq_side *s = sides[i];
            while (s->wakes_due > 0 && s->len > 0 && nwake < DELIVER_BATCH &&
                   ndrop < DELIVER_BATCH) {
                struct cl_future *f = side_pop(s);
                if (f->done) {
                    drop[ndrop++] = f;
                    continue;
                }
                wake[nwake++] = f;
                s->wakes_due--;
            }
            if (s->len == 0)
                s->wakes_due = 0;
        }
        more = q->getters.wakes_due > 0 || q->putters.wakes_due > 0;
        q->drain_posted = more;
        CL_PT(pthread_mutex_unlock(&q->mu));
        for (size_t i = 0; i < nwake; i++) {
            cl_future_set(wake[i], 0);
            cl_future_unref(wake[i]);
        }
        atomic_fetch_add(&q->task_wakes, nwake);
        for (size_t i = 0; i < ndrop; i++)
            cl_future_unref(drop[i]);
    } while (more);
}

/* Under q->mu: a change on the other side may let waiters of side s go on. */
static void wake_side(struct cl_bqueue *q, struct cl_bq_side *s, bool all, bool on_loop)
{
    if (s->threads_waiting > 0) {
        if (all)
            CL_PT(pthread_cond_broadcast(&s->cond));
        else
            CL_PT(pthread_cond_signal(&s->cond));
    }
    if (s->len == 0)
        return;
    s->wakes_due = all ? s->len : s->wakes_due + 1;
    if (q->drain_posted)
        return;
    q->drain_posted = true;
    if (on_loop)
        cl_loop_call_soon(q->loop, deliver_wakes, q);
    else
        cl_loop_call_soon_threadsafe(q->loop, deliver_wakes, q);
}

static void push_item(struct cl_bqueue *q, intptr_t item, bool on_loop)
{
    q->items[(q->head + q->len++) % q->cap] = item;
    atomic_store_explicit(&q->depth, q->len, memory_order_relaxed);
    atomic_fetch_add(&q->puts, 1);
    wake_side(q, &q->getters, false, on_loop);
}

static intptr_t pop_item(struct cl_bqueue *q, bool on_loop)
{
    intptr_t item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    atomic_store_explicit(&q->depth, q->len, memory_order_relaxed);
    atomic_fetch_add(&q->gets, 1);
    wake_side(q, &q->putters, false, on_loop);
    return item;
}

/* Under q->mu: wait on s's condition variable until woken or the deadline. */
static int wait_side(struct cl_bqueue *q, struct cl_bq_side *s, uint64_t timeout_ns,
                     const struct timespec *until)
{
    s->threads_waiting++;
    int rc = timeout_ns == CL_FOREVER ? pthread_cond_wait(&s->cond, &q->mu)
                                      : pthread_cond_timedwait(&s->cond, &q->mu, until);
    s->threads_waiting--;
    if (rc != 0 && rc != ETIMEDOUT)
        cl_die(__FILE__, __LINE__, "pthread_cond_timedwait", rc);
    return rc;
}

int cl_bqueue_put(struct cl_bqueue *q, intptr_t item, uint64_t timeout_ns)
{
    struct timespec until = {0};
    if (timeout_ns != CL_FOREVER)
        until = cl_deadline_ns(timeout_ns);
    int rc = 0;
    CL_PT(pthread_mutex_lock(&q->mu));
    while (!q->closed && q->len == q->cap && rc == 0)
        rc = wait_side(q, &q->putters, timeout_ns, &until);
    if (q->closed)
        rc = EPIPE;
    else if (q->len < q->cap) {
        rc = 0;
        push_item(q, item, false);
    }
    CL_PT(pthread_mutex_unlock(&q->mu));
    return rc;
}

int cl_bqueue_get(struct cl_bqueue *q, intptr_t *item, uint64_t timeout_ns)
{
    struct timespec until = {0};
    if (timeout_ns != CL_FOREVER)
        until = cl_deadline_ns(timeout_ns);
    int rc = 0;
    CL_PT(pthread_mutex_lock(&q->mu));
    while (!q->closed && q->len == 0 && rc == 0)
        rc = wait_side(q, &q->getters, timeout_ns, &until);
    if (q->len > 0) {
        rc = 0;
        *item = pop_item(q, false);
    } else if (q->closed)
        rc = EPIPE;
    CL_PT(pthread_mutex_unlock(&q->mu));
    return rc;
}

void cl_bqueue_close(struct cl_bqueue *q)
{
    CL_PT(pthread_mutex_lock(&q->mu));
    q->closed = true;
    wake_side(q, &q->getters, true, false);
    wake_side(q, &q->putters, true, false);
    CL_PT(pthread_mutex_unlock(&q->mu));
}

/* [snippet get-or-arm] */
int cl_bqueue_get_or_arm(struct cl_bqueue *q, intptr_t *item, struct cl_future **wait)
{
    int rc = 0;
    CL_PT(pthread_mutex_lock(&q->mu));
    if (q->len > 0)
        *item = pop_item(q, true);
    else if (q->closed)
        rc = EPIPE;
    else { /* still under the lock that saw it empty: a put now must see us */
        *wait = cl_future_new(q->loop, "an item from the bridge queue");
        side_push(&q->getters, *wait);
        rc = EAGAIN;
    }
    CL_PT(pthread_mutex_unlock(&q->mu));
    return rc;
}
/* [end get-or-arm] */

int cl_bqueue_put_or_arm(struct cl_bqueue *q, intptr_t item, struct cl_future **wait)
{
    int rc = 0;
    CL_PT(pthread_mutex_lock(&q->mu));
    if (q->closed)
        rc = EPIPE;
    else if (q->len < q->cap)
        push_item(q, item, true);
    else {
        *wait = cl_future_new(q->loop, "room in the bridge queue");
        side_push(&q->putters, *wait);
        rc = EAGAIN;
    }
    CL_PT(pthread_mutex_unlock(&q->mu));
    return rc;
}
