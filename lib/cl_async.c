#include "cl_async.h"

#include <stdlib.h>

#include "cl_check.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* ---- entries: a waiting task's future, in one wait queue at a time ---------------
 *
 * A queued entry holds one reference of its own (the queue's); the task that
 * awaits it holds another until it resumes. Served or cancelled, it leaves its
 * queue and gives the queue's reference back. */

struct cl_wentry {
    struct cl_future fut;
    struct cl_wentry *next, *prev;
    struct cl_waitq *q;     /* the queue it is in; NULL once out */
    struct cl_asem *relock; /* a condition's waiter: the lock it takes back first */
    bool relocking;         /* ... and it has left the condition to do so */
    intptr_t item;          /* a waiting put's item */
};

static void waitq_push(struct cl_waitq *q, struct cl_wentry *e)
{
    e->q = q;
    e->next = NULL;
    e->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->len++;
}

static void waitq_remove(struct cl_wentry *e)
{
    struct cl_waitq *q = e->q;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    q->len--;
    e->q = NULL;
    e->next = e->prev = NULL;
}

static struct cl_wentry *waitq_pop(struct cl_waitq *q)
{
    struct cl_wentry *e = q->head;
    if (e != NULL)
        waitq_remove(e);
    return e;
}

/* Complete an entry that has left its queue, and drop the queue's reference. */
static void serve(struct cl_wentry *e, int err, intptr_t value, const char *msg)
{
    cl_future_complete_(&e->fut, err, value, msg);
    cl_future_unref(&e->fut);
}

static void leave_condition(struct cl_wentry *e);

/* A waiting task was cancelled: it leaves its queue at once, except a
 * condition's waiter, which first takes its lock back (as asyncio's
 * Condition.wait does); once it is on its way to the lock it cannot be
 * cancelled. */
static bool entry_cancel(struct cl_future *f)
{
    struct cl_wentry *e = container_of(f, struct cl_wentry, fut);
    if (e->relock != NULL) {
        if (e->relocking)
            return false;
        waitq_remove(e);
        leave_condition(e);
        return true;
    }
    waitq_remove(e);
    serve(e, ECANCELED, 0, NULL);
    return true;
}

static void entry_destroy(struct cl_future *f, bool sweeping)
{
    (void)sweeping;
    free(container_of(f, struct cl_wentry, fut));
}

static const struct cl_future_ops entry_ops = {"wait", entry_cancel, entry_destroy};

static struct cl_wentry *entry_new(struct cl_loop *loop, const char *name)
{
    struct cl_wentry *e = cl_xcalloc(1, sizeof *e);
    cl_future_adopt_(&e->fut, loop, name, &entry_ops);
    return e;
}

/* Queue an entry and await it; false (no suspension) if it is already done. */
static bool wait_on(struct cl_task *t, struct cl_waitq *q, struct cl_wentry *e)
{
    waitq_push(q, e);
    return cl_await_future_(t, &e->fut);
}

/* An await that fails at once with err (a closed queue): no suspension, and the
 * resume propagates the error. */
static bool fail_now(struct cl_task *t, struct cl_loop *loop, const char *name, int err,
                     const char *msg)
{
    struct cl_wentry *e = entry_new(loop, name);
    cl_future_complete_(&e->fut, err, 0, msg);
    bool suspend = cl_await_future_(t, &e->fut);
    cl_future_unref(&e->fut);
    return suspend;
}

/* A cancellation asked for and not yet delivered (none is, during cleanup). */
static bool cancel_pending(const struct cl_task *t)
{
    return (t->flags & (CL_TASK_CANCEL | CL_TASK_IN_FINALLY)) == CL_TASK_CANCEL;
}

/* Handed something (err 0) while a cancellation was on its way: the await will
 * end cancelled, so what it was given must go back. */
static bool handed_then_cancelled(const struct cl_task *t)
{
    const struct cl_future *f = t->awaiting;
    return f != NULL && f->done && f->err == 0 && cancel_pending(t);
}

/* ---- Semaphore and Lock -------------------------------------------------------- */

void cl_asem_init(struct cl_asem *s, struct cl_loop *loop, long value, long bound, const char *name)
{
    *s = (struct cl_asem){.loop = loop, .name = name, .value = value, .bound = bound};
}

static bool free_permit(const struct cl_asem *s)
{
    return s->value > 0 && s->waiters.len == 0;
}

void cl_asem_release(struct cl_asem *s)
{
    struct cl_wentry *e = waitq_pop(&s->waiters);
    if (e != NULL) {
        serve(e, 0, 0, NULL); /* the permit goes straight to the first waiter */
        return;
    }
    if (s->bound > 0 && s->value >= s->bound)
        cl_fatal("'%s': released more times than acquired", s->name);
    s->value++;
}

bool cl_asem_arm_(struct cl_task *t, struct cl_asem *s)
{
    if (cancel_pending(t))
        return false; /* the resume delivers it; nothing taken */
    if (free_permit(s)) {
        s->value--;
        return false;
    }
    struct cl_wentry *e = entry_new(s->loop, s->name);
    return wait_on(t, &s->waiters, e);
}

bool cl_asem_resume_(struct cl_task *t, struct cl_asem *s)
{
    if (handed_then_cancelled(t))
        cl_asem_release(s); /* to the next waiter */
    return cl_resume_(t, true);
}

void cl_alock_init(struct cl_alock *l, struct cl_loop *loop, const char *name)
{
    cl_asem_init(&l->sem, loop, 1, 1, name);
}

bool cl_alock_locked(const struct cl_alock *l)
{
    return l->sem.value == 0;
}

void cl_alock_release(struct cl_alock *l)
{
    if (!cl_alock_locked(l))
        cl_fatal("cl_alock_release: '%s' is not locked", l->sem.name);
    cl_asem_release(&l->sem);
}

/* ---- Event ------------------------------------------------------------------------- */

void cl_aevent_init(struct cl_aevent *e, struct cl_loop *loop, const char *name)
{
    *e = (struct cl_aevent){.loop = loop, .name = name};
}

void cl_aevent_set(struct cl_aevent *e)
{
    e->set = true;
    struct cl_wentry *w;
    while ((w = waitq_pop(&e->waiters)) != NULL)
        serve(w, 0, 1, NULL);
}

void cl_aevent_clear(struct cl_aevent *e)
{
    e->set = false;
}

bool cl_aevent_arm_(struct cl_task *t, struct cl_aevent *e)
{
    if (e->set || cancel_pending(t))
        return false;
    return wait_on(t, &e->waiters, entry_new(e->loop, e->name));
}

/* ---- Condition --------------------------------------------------------------------- */

void cl_acond_init(struct cl_acond *c, struct cl_alock *lock, const char *name)
{
    *c = (struct cl_acond){.lock = lock, .name = name};
}

/* A condition's waiter, notified or cancelled, asks for the lock when its
 * task would have run (the next iteration), as asyncio's Condition.wait calls
 * acquire() once woken: the notifier may take the lock again meanwhile. It
 * completes once it holds the lock. */
static void relock(void *arg)
{
    struct cl_wentry *e = arg;
    struct cl_asem *s = e->relock;
    if (free_permit(s)) {
        s->value--;
        serve(e, 0, 0, NULL);
    } else {
        waitq_push(&s->waiters, e);
    }
}

static void leave_condition(struct cl_wentry *e)
{
    e->relocking = true;
    cl_loop_call_soon(e->fut.loop, relock, e); /* the queue's reference goes with it */
}

static void must_hold(const struct cl_acond *c, const char *call)
{
    if (!cl_alock_locked(c->lock))
        cl_fatal("%s: '%s': its lock is not held", call, c->name);
}

void cl_acond_notify(struct cl_acond *c, size_t n)
{
    must_hold(c, "cl_acond_notify");
    struct cl_wentry *e;
    for (size_t i = 0; i < n && (e = waitq_pop(&c->waiters)) != NULL; i++)
        leave_condition(e);
}

void cl_acond_notify_all(struct cl_acond *c)
{
    cl_acond_notify(c, SIZE_MAX);
}

bool cl_acond_arm_(struct cl_task *t, struct cl_acond *c)
{
    must_hold(c, "CL_COND_WAIT");
    if (cancel_pending(t))
        return false; /* delivered at once, the lock still held */
    struct cl_wentry *e = entry_new(c->lock->sem.loop, c->name);
    e->relock = &c->lock->sem;
    waitq_push(&c->waiters, e);
    cl_alock_release(c->lock);
    return cl_await_future_(t, &e->fut);
}

/* ---- Queue --------------------------------------------------------------------------- */

void cl_aqueue_init(struct cl_aqueue *q, struct cl_loop *loop, size_t maxsize, const char *name)
{
    *q = (struct cl_aqueue){
        .loop = loop, .maxsize = maxsize, .get_name = name, .put_name = "a free slot"};
    cl_aevent_init(&q->finished, loop, "every item task_done");
    q->finished.set = true;
}

void cl_aqueue_free(struct cl_aqueue *q)
{
    free(q->ring);
    q->ring = NULL;
    q->cap = q->len = q->head = 0;
}

size_t cl_aqueue_size(const struct cl_aqueue *q)
{
    return q->len;
}

static bool full(const struct cl_aqueue *q)
{
    return q->maxsize > 0 && q->len >= q->maxsize;
}

static void ring_grow(struct cl_aqueue *q)
{
    size_t cap = q->cap == 0 ? 16 : 2 * q->cap;
    intptr_t *ring = cl_xcalloc(cap, sizeof *ring);
    for (size_t i = 0; i < q->len; i++)
        ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

static void ring_push_back(struct cl_aqueue *q, intptr_t item)
{
    if (q->len == q->cap)
        ring_grow(q);
    q->ring[(q->head + q->len++) & (q->cap - 1)] = item;
}

static void ring_push_front(struct cl_aqueue *q, intptr_t item)
{
    if (q->len == q->cap)
        ring_grow(q);
    q->head = (q->head - 1) & (q->cap - 1);
    q->ring[q->head] = item;
    q->len++;
}

static intptr_t ring_pop(struct cl_aqueue *q)
{
    intptr_t item = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return item;
}

/* An item arrives: to the first waiting getter, else into the ring. */
static void deliver(struct cl_aqueue *q, intptr_t item)
{
    q->unfinished++;
    cl_aevent_clear(&q->finished);
    struct cl_wentry *g = waitq_pop(&q->getters);
    if (g != NULL)
        serve(g, 0, item, NULL);
    else
        ring_push_back(q, item);
}

/* A slot came free: the first waiting putter's item takes it. */
static void take_from_putter(struct cl_aqueue *q)
{
    struct cl_wentry *p = waitq_pop(&q->putters);
    if (p == NULL)
        return;
    deliver(q, p->item);
    serve(p, 0, 0, NULL);
}

static intptr_t take(struct cl_aqueue *q)
{
    intptr_t item = ring_pop(q);
    take_from_putter(q);
    return item;
}

bool cl_aqueue_put_nowait(struct cl_aqueue *q, intptr_t item)
{
    if (q->closed_err != 0 || full(q))
        return false;
    deliver(q, item);
    return true;
}

bool cl_aqueue_get_nowait(struct cl_aqueue *q, intptr_t *item)
{
    if (q->len == 0)
        return false;
    *item = take(q);
    return true;
}

void cl_aqueue_task_done(struct cl_aqueue *q)
{
    if (q->unfinished == 0)
        cl_fatal("cl_aqueue_task_done: '%s': more items done than were put", q->get_name);
    if (--q->unfinished == 0)
        cl_aevent_set(&q->finished);
}

void cl_aqueue_close(struct cl_aqueue *q, int err, const char *msg)
{
    q->closed_err = err;
    q->closed_msg = msg;
    struct cl_wentry *e;
    while ((e = waitq_pop(&q->putters)) != NULL)
        serve(e, err, 0, msg);
    if (q->len == 0)
        while ((e = waitq_pop(&q->getters)) != NULL)
            serve(e, err, 0, msg);
}

bool cl_aqueue_put_arm_(struct cl_task *t, struct cl_aqueue *q, intptr_t item)
{
    if (cancel_pending(t))
        return false;
    if (q->closed_err != 0)
        return fail_now(t, q->loop, q->put_name, q->closed_err, q->closed_msg);
    if (q->putters.len == 0 && !full(q)) {
        deliver(q, item);
        return false;
    }
    struct cl_wentry *e = entry_new(q->loop, q->put_name);
    e->item = item;
    return wait_on(t, &q->putters, e);
}

bool cl_aqueue_get_arm_(struct cl_task *t, struct cl_aqueue *q, intptr_t *out)
{
    if (cancel_pending(t))
        return false;
    if (q->len > 0) { /* getters wait only while it is empty: none is ahead */
        *out = take(q);
        return false;
    }
    if (q->closed_err != 0)
        return fail_now(t, q->loop, q->get_name, q->closed_err, q->closed_msg);
    return wait_on(t, &q->getters, entry_new(q->loop, q->get_name));
}

bool cl_aqueue_get_resume_(struct cl_task *t, struct cl_aqueue *q, intptr_t *out)
{
    const struct cl_future *f = t->awaiting;
    if (handed_then_cancelled(t)) {
        /* Not lost: to the next getter, or back at the front. */
        struct cl_wentry *g = waitq_pop(&q->getters);
        if (g != NULL)
            serve(g, 0, f->value, NULL);
        else
            ring_push_front(q, f->value);
    } else if (f != NULL && f->done && f->err == 0) {
        *out = f->value;
    }
    return cl_resume_(t, true);
}

/* ---- as_completed ---------------------------------------------------------------------- */

struct ac_child {
    struct cl_waiter w;
    struct cl_future *f;
    struct cl_as_completed *ac;
    size_t index;
};

struct cl_as_completed {
    struct cl_future fut;  /* the object's handle: nobody awaits it */
    struct cl_aqueue done; /* indices, in the order their futures finished */
    struct cl_timer timer;
    size_t n, finished;
    struct ac_child c[];
};

static void ac_child_done(struct cl_waiter *w, struct cl_future *f)
{
    struct ac_child *c = container_of(w, struct ac_child, w);
    struct cl_as_completed *ac = c->ac;
    cl_aqueue_put_nowait(&ac->done, (intptr_t)c->index); /* refused once timed out */
    if (++ac->finished == ac->n)
        cl_timer_stop(f->loop, &ac->timer);
}

static void ac_timeout(struct cl_timer *t)
{
    struct cl_as_completed *ac = container_of(t, struct cl_as_completed, timer);
    cl_aqueue_close(&ac->done, ETIMEDOUT, "as_completed: timed out");
}

static void ac_destroy(struct cl_future *f, bool sweeping)
{
    struct cl_as_completed *ac = container_of(f, struct cl_as_completed, fut);
    cl_timer_stop(f->loop, &ac->timer);
    for (size_t i = 0; i < ac->n; i++) {
        cl_future_forget(&ac->c[i].w);
        if (!sweeping)
            cl_future_unref(ac->c[i].f);
    }
    cl_aqueue_free(&ac->done);
    free(ac);
}

static const struct cl_future_ops ac_ops = {"as_completed", NULL, ac_destroy};

struct cl_as_completed *cl_as_completed_new(struct cl_loop *loop, struct cl_future *const *futs,
                                            size_t n, uint64_t timeout_ns)
{
    struct cl_as_completed *ac = cl_xcalloc(1, sizeof *ac + n * sizeof ac->c[0]);
    cl_future_adopt_(&ac->fut, loop, "as_completed", &ac_ops);
    cl_aqueue_init(&ac->done, loop, 0, "the next future to finish");
    ac->timer.cb = ac_timeout;
    ac->n = n;
    for (size_t i = 0; i < n; i++) {
        ac->c[i] = (struct ac_child){.w.fn = ac_child_done, .f = futs[i], .ac = ac, .index = i};
        cl_future_ref(futs[i]);
    }
    for (size_t i = 0; i < n; i++)
        cl_future_on_done(futs[i], &ac->c[i].w);
    if (timeout_ns != CL_FOREVER && ac->finished < n)
        cl_timer_start(loop, &ac->timer, timeout_ns);
    return ac;
}

struct cl_future *cl_as_completed_future(struct cl_as_completed *ac)
{
    return &ac->fut;
}

struct cl_aqueue *cl_as_completed_queue_(struct cl_as_completed *ac)
{
    return &ac->done;
}
