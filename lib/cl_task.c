#include "cl_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_check.h"
#include "cl_time.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* ---- the registry: the watchdog's view of the tasks, and the loop's objects -------
 *
 * Slots come in chunks of 1024, 2048, 4096, ... that live until cl_loop_free, so a
 * reader on another thread never finds a slot freed under it: it loads the count
 * of chunks and each chunk's pointer (release/acquire), then each slot's atomics. */

#define SLOT_CHUNKS 23 /* 1024 x (2^23 - 1) slots: more than a uint32_t counts */
#define SLOT_FIRST  1024u

struct cl_tasks {
    _Atomic(struct cl_task_slot *) chunks[SLOT_CHUNKS];
    _Atomic size_t nchunks;
    _Atomic size_t pending; /* tasks not finished */
    uint32_t used;          /* slots handed out so far (the high-water mark) */
    uint32_t free_head;     /* 1 + index of a free slot, 0 for none */
    uint64_t next_id;
    struct cl_task *current;  /* the task being stepped */
    bool shutting_down;       /* cl_loop_free: stop the loop once no task is pending */
    struct cl_future objects; /* list head: every future made by a *_new call */
};

static struct cl_task_slot *slot_at(struct cl_tasks *r, uint32_t i)
{
    unsigned k = 63u - (unsigned)__builtin_clzll(i / SLOT_FIRST + 1);
    size_t first = (size_t)SLOT_FIRST * (((size_t)1 << k) - 1);
    return &atomic_load_explicit(&r->chunks[k], memory_order_relaxed)[i - first];
}

static uint32_t slot_take(struct cl_tasks *r)
{
    if (r->free_head != 0) {
        uint32_t i = r->free_head - 1;
        r->free_head = slot_at(r, i)->next_free;
        return i;
    }
    if (r->used == UINT32_MAX)
        cl_fatal("cl_task_new: more than %u tasks at once", UINT32_MAX);
    uint32_t i = r->used++;
    unsigned k = 63u - (unsigned)__builtin_clzll(i / SLOT_FIRST + 1);
    if (k >= atomic_load_explicit(&r->nchunks, memory_order_relaxed)) {
        struct cl_task_slot *chunk =
            cl_xcalloc((size_t)SLOT_FIRST << k, sizeof(struct cl_task_slot));
        atomic_store_explicit(&r->chunks[k], chunk, memory_order_release);
        atomic_store_explicit(&r->nchunks, k + 1, memory_order_release);
    }
    return i;
}

static void publish(struct cl_task *t, const char *status, const char *detail, int64_t num)
{
    atomic_store_explicit(&t->slot->status, status, memory_order_relaxed);
    atomic_store_explicit(&t->slot->detail, detail, memory_order_relaxed);
    atomic_store_explicit(&t->slot->num, num, memory_order_relaxed);
}

static void shutdown_tasks(struct cl_loop *loop);

static struct cl_tasks *registry(struct cl_loop *loop)
{
    struct cl_tasks *r = atomic_load_explicit(&loop->tasks, memory_order_relaxed);
    if (r == NULL) {
        r = cl_xcalloc(1, sizeof *r);
        r->objects.obj_next = r->objects.obj_prev = &r->objects;
        r->next_id = 1;
        atomic_store_explicit(&loop->tasks, r, memory_order_release);
        loop->shutdown = shutdown_tasks;
    }
    return r;
}

/* ---- futures --------------------------------------------------------------------- */

static const struct cl_future_ops plain_ops = {"future", NULL, NULL};

static void destroy_plain(struct cl_future *f, bool sweeping)
{
    (void)sweeping;
    free(f);
}

static const struct cl_future_ops heap_plain_ops = {"future", NULL, destroy_plain};

void cl_future_init(struct cl_future *f, struct cl_loop *loop, const char *name)
{
    *f = (struct cl_future){.loop = loop, .ops = &plain_ops, .name = name};
    f->waiters.next = f->waiters.prev = &f->waiters;
}

/* A future on the heap: one reference, and on the loop's list for cl_loop_free. */
static void adopt(struct cl_future *f, struct cl_loop *loop, const char *name,
                  const struct cl_future_ops *ops)
{
    cl_future_init(f, loop, name);
    f->ops = ops;
    f->refs = 1;
    struct cl_future *head = &registry(loop)->objects;
    f->obj_next = head->obj_next;
    f->obj_prev = head;
    head->obj_next->obj_prev = f;
    head->obj_next = f;
}

void cl_future_adopt_(struct cl_future *f, struct cl_loop *loop, const char *name,
                      const struct cl_future_ops *ops)
{
    adopt(f, loop, name, ops);
}

struct cl_future *cl_future_new(struct cl_loop *loop, const char *name)
{
    struct cl_future *f = cl_xcalloc(1, sizeof *f);
    adopt(f, loop, name, &heap_plain_ops);
    return f;
}

void cl_future_ref(struct cl_future *f)
{
    if (f->refs > 0)
        f->refs++;
}

void cl_future_unref(struct cl_future *f)
{
    if (f->refs == 0 || --f->refs > 0)
        return;
    f->obj_prev->obj_next = f->obj_next;
    f->obj_next->obj_prev = f->obj_prev;
    f->ops->destroy(f, false);
}

static bool linked(const struct cl_waiter *w)
{
    return w->next != NULL;
}

void cl_future_forget(struct cl_waiter *w)
{
    if (!linked(w))
        return;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

void cl_future_on_done(struct cl_future *f, struct cl_waiter *w)
{
    if (f->done) {
        w->fn(w, f);
        return;
    }
    w->next = &f->waiters;
    w->prev = f->waiters.prev;
    f->waiters.prev->next = w;
    f->waiters.prev = w;
}

static void complete(struct cl_future *f, int err, intptr_t value, const char *msg)
{
    if (f->done)
        return;
    f->done = true;
    f->cancelling = false;
    f->err = err;
    f->value = value;
    f->msg = msg;
    cl_future_ref(f); /* a waiter may drop the last reference */
    while (f->waiters.next != &f->waiters) {
        struct cl_waiter *w = f->waiters.next;
        cl_future_forget(w);
        w->fn(w, f);
    }
    cl_future_unref(f);
}

void cl_future_complete_(struct cl_future *f, int err, intptr_t value, const char *msg)
{
    complete(f, err, value, msg);
}

/* A task or a combinator completes itself; setting one from outside is a bug
 * (asyncio raises RuntimeError). */
static void only_plain(const struct cl_future *f, const char *call)
{
    if (f->ops != &plain_ops && f->ops != &heap_plain_ops)
        cl_fatal("%s: '%s' is a %s, which completes itself", call, f->name, f->ops->kind);
}

void cl_future_set(struct cl_future *f, intptr_t value)
{
    only_plain(f, "cl_future_set");
    complete(f, 0, value, NULL);
}

void cl_future_fail(struct cl_future *f, int err, const char *msg)
{
    only_plain(f, "cl_future_fail");
    complete(f, err, 0, msg);
}

bool cl_future_cancel(struct cl_future *f)
{
    if (f->done || f->cancelling)
        return false;
    if (f->ops->cancel == NULL) {
        complete(f, ECANCELED, 0, NULL);
        return true;
    }
    f->cancelling = true;
    if (!f->ops->cancel(f)) {
        f->cancelling = false;
        return false;
    }
    return true;
}

/* ---- tasks ----------------------------------------------------------------------- */

static bool task_cancel(struct cl_future *f);
static void task_destroy(struct cl_future *f, bool sweeping);
static const struct cl_future_ops task_ops = {"task", task_cancel, task_destroy};

static struct cl_task *as_task(struct cl_future *f)
{
    return container_of(f, struct cl_task, fut);
}

static void task_step(void *arg);

static void schedule(struct cl_task *t)
{
    if (t->flags & CL_TASK_SCHEDULED)
        return;
    t->flags |= CL_TASK_SCHEDULED;
    publish(t, "ready", NULL, 0);
    cl_loop_call_soon(t->fut.loop, task_step, t);
}

static void wake_on_timer(struct cl_timer *timer)
{
    schedule(container_of(timer, struct cl_task, timer));
}

static void wake_on_fd(struct cl_io *io, uint32_t revents)
{
    (void)revents;
    struct cl_task *t = container_of(io, struct cl_task, io);
    cl_io_stop(t->fut.loop, io);
    schedule(t);
}

static void wake_on_future(struct cl_waiter *w, struct cl_future *f)
{
    (void)f;
    schedule(container_of(w, struct cl_task, waiter));
}

struct cl_task *cl_task_new(struct cl_loop *loop, cl_task_fn *fn, size_t frame_size,
                            const char *name)
{
    if (frame_size < sizeof(struct cl_task))
        cl_fatal("cl_task_new: a frame of %zu bytes is smaller than struct cl_task", frame_size);
    struct cl_tasks *r = registry(loop);
    struct cl_task *t = cl_xcalloc(1, frame_size);
    adopt(&t->fut, loop, name, &task_ops);
    t->fut.refs = 2; /* the caller's, and the running task's own */
    t->fn = fn;
    t->id = r->next_id++;
    t->timer.cb = wake_on_timer;
    t->io.fd = -1;
    t->waiter.fn = wake_on_future;
    t->slot_index = slot_take(r);
    t->slot = slot_at(r, t->slot_index);
    atomic_store_explicit(&t->slot->id, t->id, memory_order_relaxed);
    atomic_store_explicit(&t->slot->name, name, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->pending, 1, memory_order_relaxed);
    schedule(t);
    return t;
}

static void finish(struct cl_task *t)
{
    struct cl_loop *loop = t->fut.loop;
    struct cl_tasks *r = registry(loop);
    struct cl_task_slot *s = t->slot;
    atomic_store_explicit(&s->name, NULL, memory_order_relaxed);
    publish(t, NULL, NULL, 0);
    s->next_free = r->free_head;
    r->free_head = t->slot_index + 1;
    t->slot = NULL;
    if (atomic_fetch_sub_explicit(&r->pending, 1, memory_order_relaxed) == 1 && r->shutting_down)
        cl_loop_stop(loop);
    complete(&t->fut, t->fut.err, t->fut.value, t->fut.msg);
    cl_future_unref(&t->fut); /* the running task's own reference */
}

static void task_step(void *arg)
{
    struct cl_task *t = arg;
    struct cl_loop *loop = t->fut.loop;
    struct cl_tasks *r = registry(loop);
    t->flags &= ~CL_TASK_SCHEDULED;
    if (!(t->flags & CL_TASK_STARTED)) {
        t->flags |= CL_TASK_STARTED;
        if (t->flags & CL_TASK_CANCEL) { /* cancelled before it ran: it never runs */
            t->fut.err = ECANCELED;
            finish(t);
            return;
        }
    }
    publish(t, "running", NULL, 0);
    r->current = t;
    atomic_store_explicit(&loop->running, t->fut.name, memory_order_relaxed);
    int state = t->fn(t);
    atomic_store_explicit(&loop->running, NULL, memory_order_relaxed);
    r->current = NULL;
    if (state == CL_FINISHED)
        finish(t);
}

/* Cancellation starts here: abandon the current wait so that the task resumes
 * and meets the cancellation at its await. */
static bool task_cancel(struct cl_future *f)
{
    struct cl_task *t = as_task(f);
    if (t->flags & CL_TASK_IN_FINALLY)
        return false; /* its cleanup runs to the end */
    t->flags |= CL_TASK_CANCEL;
    if (cl_timer_armed(&t->timer)) {
        cl_timer_stop(f->loop, &t->timer);
        schedule(t);
    } else if (t->io.active) {
        cl_io_stop(f->loop, &t->io);
        schedule(t);
    } else if (linked(&t->waiter)) {
        /* Cancel what it awaits, as asyncio does; it resumes when that is done
         * (at once for a plain future, after the cleanup for a task). */
        cl_future_cancel(t->awaiting);
    }
    /* Otherwise it is running, or ready to: it meets the request at its next await. */
    return true;
}

bool cl_task_cancel(struct cl_task *t)
{
    return cl_future_cancel(&t->fut);
}

static void task_destroy(struct cl_future *f, bool sweeping)
{
    struct cl_task *t = as_task(f);
    if (sweeping) { /* cl_loop_free, with the task possibly still pending */
        cl_timer_stop(f->loop, &t->timer);
        cl_io_stop(f->loop, &t->io);
        cl_future_forget(&t->waiter);
    }
    free(t);
}

struct cl_task *cl_task_current(struct cl_loop *loop)
{
    struct cl_tasks *r = atomic_load_explicit(&loop->tasks, memory_order_relaxed);
    return r == NULL ? NULL : r->current;
}

size_t cl_task_pending(struct cl_loop *loop)
{
    struct cl_tasks *r = atomic_load_explicit(&loop->tasks, memory_order_acquire);
    return r == NULL ? 0 : atomic_load_explicit(&r->pending, memory_order_relaxed);
}

/* ---- what the await macros call ---------------------------------------------------- */

static bool cancel_due(const struct cl_task *t)
{
    return (t->flags & (CL_TASK_CANCEL | CL_TASK_IN_FINALLY)) == CL_TASK_CANCEL;
}

bool cl_await_future_(struct cl_task *t, struct cl_future *f)
{
    cl_future_ref(f);
    t->awaiting = f;
    if (f->done || cancel_due(t))
        return false;
    publish(t, "awaiting", f->name, 0);
    cl_future_on_done(f, &t->waiter);
    return true;
}

bool cl_await_sleep_(struct cl_task *t, uint64_t ns)
{
    if (cancel_due(t))
        return false;
    if (ns == 0) {
        schedule(t);
        return true;
    }
    uint64_t at = cl_now_ns() + ns;
    cl_timer_start_at(t->fut.loop, &t->timer, at);
    publish(t, "sleeping", NULL, (int64_t)at);
    return true;
}

bool cl_await_fd_(struct cl_task *t, int fd, uint32_t events)
{
    if (cancel_due(t))
        return false;
    int rc = cl_io_start(t->fut.loop, &t->io, fd, events, wake_on_fd);
    if (rc != 0) {
        t->fut.err = rc;
        t->fut.msg =
            rc == EPERM ? "epoll cannot watch this fd (a regular file?)" : "epoll_ctl failed";
        t->flags |= CL_TASK_FD_ERR;
        return false;
    }
    publish(t, events & EPOLLIN ? "waiting for fd readable" : "waiting for fd writable", NULL, fd);
    return true;
}

static int cleanup_target(const struct cl_task *t)
{
    return (t->flags & CL_TASK_IN_FINALLY) ? CL_AT_END : CL_AT_FINALLY;
}

bool cl_resume_(struct cl_task *t, bool propagate)
{
    struct cl_future *f = t->awaiting;
    t->awaiting = NULL;
    bool jump = false;
    if (cancel_due(t)) {
        t->flags &= ~CL_TASK_CANCEL; /* delivered: once */
        t->fut.err = ECANCELED;
        t->fut.msg = NULL;
        jump = true;
    } else if (t->flags & CL_TASK_FD_ERR) {
        t->flags &= ~CL_TASK_FD_ERR;
        jump = true;
    } else if (f != NULL && propagate && f->err != 0) {
        t->fut.err = f->err;
        t->fut.msg = f->msg;
        jump = true;
    }
    if (f != NULL)
        cl_future_unref(f);
    if (jump)
        t->resume_at = cleanup_target(t);
    return jump;
}

void cl_return_(struct cl_task *t, intptr_t value)
{
    t->fut.err = 0;
    t->fut.msg = NULL;
    t->fut.value = value;
    t->resume_at = cleanup_target(t);
}

void cl_raise_(struct cl_task *t, int err, const char *msg)
{
    t->fut.err = err;
    t->fut.msg = msg;
    t->resume_at = cleanup_target(t);
}

void cl_enter_finally_(struct cl_task *t)
{
    if (t->flags & CL_TASK_CANCEL) {
        /* Cancelled after its last await: it still ends cancelled, as in asyncio. */
        t->fut.err = ECANCELED;
        t->fut.msg = NULL;
    }
    t->flags = (t->flags | CL_TASK_IN_FINALLY) & ~CL_TASK_CANCEL;
}

/* ---- running until a future is done ------------------------------------------------- */

static void stop_loop(struct cl_waiter *w, struct cl_future *f)
{
    (void)w;
    cl_loop_stop(f->loop);
}

bool cl_loop_run_until(struct cl_loop *loop, struct cl_future *f)
{
    if (f->done)
        return true;
    struct cl_waiter w = {.fn = stop_loop};
    cl_future_ref(f);
    cl_future_on_done(f, &w);
    cl_loop_run(loop);
    cl_future_forget(&w);
    bool done = f->done;
    cl_future_unref(f);
    return done;
}

/* ---- gather ----------------------------------------------------------------------------- */

struct child {
    struct cl_waiter w;
    struct cl_future *f;
    struct cl_future *parent; /* the combinator this child belongs to */
};

static void watch_children(struct child *c, struct cl_future *parent, struct cl_future *const *futs,
                           size_t n, void (*fn)(struct cl_waiter *, struct cl_future *))
{
    for (size_t i = 0; i < n; i++) {
        c[i] = (struct child){.w.fn = fn, .f = futs[i], .parent = parent};
        cl_future_ref(futs[i]);
    }
    /* Only now: a child already done calls back at once and may count them all. */
    for (size_t i = 0; i < n; i++)
        cl_future_on_done(futs[i], &c[i].w);
}

static void release_children(struct child *c, size_t n, bool sweeping)
{
    for (size_t i = 0; i < n; i++) {
        cl_future_forget(&c[i].w);
        if (!sweeping)
            cl_future_unref(c[i].f);
    }
}

struct gather {
    struct cl_future fut;
    unsigned flags;
    size_t n, ndone;
    struct child c[];
};

static void gather_child_done(struct cl_waiter *w, struct cl_future *f)
{
    struct child *c = container_of(w, struct child, w);
    struct gather *g = container_of(c->parent, struct gather, fut);
    g->ndone++;
    if (f->err != 0 && !(g->flags & CL_RETURN_EXCEPTIONS) && !g->fut.cancelling)
        complete(&g->fut, f->err, 0, f->msg); /* the first failure, at once */
    else if (g->ndone == g->n)
        complete(&g->fut, g->fut.cancelling ? ECANCELED : 0, (intptr_t)g->n, NULL);
}

static bool gather_cancel(struct cl_future *f)
{
    struct gather *g = container_of(f, struct gather, fut);
    for (size_t i = 0; i < g->n && !f->done; i++)
        cl_future_cancel(g->c[i].f);
    return true;
}

static void gather_destroy(struct cl_future *f, bool sweeping)
{
    struct gather *g = container_of(f, struct gather, fut);
    release_children(g->c, g->n, sweeping);
    free(g);
}

static const struct cl_future_ops gather_ops = {"gather", gather_cancel, gather_destroy};

struct cl_future *cl_gather_new(struct cl_loop *loop, struct cl_future *const *futs, size_t n,
                                unsigned flags)
{
    struct gather *g = cl_xcalloc(1, sizeof *g + n * sizeof g->c[0]);
    adopt(&g->fut, loop, "gather", &gather_ops);
    g->flags = flags;
    g->n = n;
    if (n == 0)
        complete(&g->fut, 0, 0, NULL);
    watch_children(g->c, &g->fut, futs, n, gather_child_done);
    return &g->fut;
}

/* ---- wait --------------------------------------------------------------------------------- */

struct waitf {
    struct cl_future fut;
    enum cl_wait_mode mode;
    struct cl_timer timer;
    size_t n;
    struct child c[];
};

static void wait_finish(struct waitf *w)
{
    intptr_t done = 0;
    for (size_t i = 0; i < w->n; i++)
        done += w->c[i].f->done;
    cl_timer_stop(w->fut.loop, &w->timer);
    complete(&w->fut, 0, done, NULL);
}

static bool wait_satisfied(const struct waitf *w)
{
    size_t done = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct cl_future *f = w->c[i].f;
        if (!f->done)
            continue;
        done++;
        if (w->mode == CL_FIRST_COMPLETED ||
            (w->mode == CL_FIRST_EXCEPTION && f->err != 0 && f->err != ECANCELED))
            return true;
    }
    return done == w->n;
}

static void wait_child_done(struct cl_waiter *wt, struct cl_future *f)
{
    (void)f;
    struct child *c = container_of(wt, struct child, w);
    struct waitf *w = container_of(c->parent, struct waitf, fut);
    if (!w->fut.done && wait_satisfied(w))
        wait_finish(w);
}

static void wait_timeout(struct cl_timer *t)
{
    wait_finish(container_of(t, struct waitf, timer));
}

static bool wait_cancel(struct cl_future *f)
{
    struct waitf *w = container_of(f, struct waitf, fut);
    cl_timer_stop(f->loop, &w->timer);
    complete(f, ECANCELED, 0, NULL); /* the futures it watches are left alone */
    return true;
}

static void wait_destroy(struct cl_future *f, bool sweeping)
{
    struct waitf *w = container_of(f, struct waitf, fut);
    cl_timer_stop(f->loop, &w->timer);
    release_children(w->c, w->n, sweeping);
    free(w);
}

static const struct cl_future_ops wait_ops = {"wait", wait_cancel, wait_destroy};

struct cl_future *cl_wait_new(struct cl_loop *loop, struct cl_future *const *futs, size_t n,
                              enum cl_wait_mode mode, uint64_t timeout_ns)
{
    struct waitf *w = cl_xcalloc(1, sizeof *w + n * sizeof w->c[0]);
    adopt(&w->fut, loop, "wait", &wait_ops);
    w->mode = mode;
    w->n = n;
    w->timer.cb = wait_timeout;
    watch_children(w->c, &w->fut, futs, n, wait_child_done);
    if (!w->fut.done && wait_satisfied(w))
        wait_finish(w);
    else if (!w->fut.done && timeout_ns != CL_FOREVER)
        cl_timer_start(loop, &w->timer, timeout_ns);
    return &w->fut;
}

/* ---- wait_for ------------------------------------------------------------------------------ */

struct wait_for {
    struct cl_future fut;
    struct cl_timer timer;
    struct child inner;
    bool timed_out;
};

static void wait_for_inner_done(struct cl_waiter *wt, struct cl_future *f)
{
    struct wait_for *w = container_of(wt, struct wait_for, inner.w);
    cl_timer_stop(f->loop, &w->timer);
    if (w->timed_out && cl_future_cancelled(f))
        complete(&w->fut, ETIMEDOUT, 0, "timed out");
    else
        complete(&w->fut, f->err, f->value, f->msg);
}

static void wait_for_timeout(struct cl_timer *t)
{
    struct wait_for *w = container_of(t, struct wait_for, timer);
    w->timed_out = true;
    cl_future_cancel(w->inner.f); /* completes us once it has finished cancelling */
}

static bool wait_for_cancel(struct cl_future *f)
{
    struct wait_for *w = container_of(f, struct wait_for, fut);
    cl_timer_stop(f->loop, &w->timer);
    cl_future_cancel(w->inner.f);
    return true;
}

static void wait_for_destroy(struct cl_future *f, bool sweeping)
{
    struct wait_for *w = container_of(f, struct wait_for, fut);
    cl_timer_stop(f->loop, &w->timer);
    release_children(&w->inner, 1, sweeping);
    free(w);
}

static const struct cl_future_ops wait_for_ops = {"wait_for", wait_for_cancel, wait_for_destroy};

struct cl_future *cl_wait_for_new(struct cl_loop *loop, struct cl_future *fut, uint64_t timeout_ns)
{
    struct wait_for *w = cl_xcalloc(1, sizeof *w);
    adopt(&w->fut, loop, "wait_for", &wait_for_ops);
    w->timer.cb = wait_for_timeout;
    watch_children(&w->inner, &w->fut, &fut, 1, wait_for_inner_done);
    if (!w->fut.done && timeout_ns != CL_FOREVER)
        cl_timer_start(loop, &w->timer, timeout_ns);
    return &w->fut;
}

/* ---- shield --------------------------------------------------------------------------------- */

struct shield {
    struct cl_future fut;
    struct child inner;
};

static void shield_inner_done(struct cl_waiter *wt, struct cl_future *f)
{
    struct shield *s = container_of(wt, struct shield, inner.w);
    complete(&s->fut, f->err, f->value, f->msg); /* a no-op once the shield was cancelled */
}

static void shield_destroy(struct cl_future *f, bool sweeping)
{
    struct shield *s = container_of(f, struct shield, fut);
    release_children(&s->inner, 1, sweeping);
    free(s);
}

/* No cancel hook: cancelling the shield completes it at once, and only it. */
static const struct cl_future_ops shield_ops = {"shield", NULL, shield_destroy};

struct cl_future *cl_shield_new(struct cl_loop *loop, struct cl_future *fut)
{
    struct shield *s = cl_xcalloc(1, sizeof *s);
    adopt(&s->fut, loop, "shield", &shield_ops);
    watch_children(&s->inner, &s->fut, &fut, 1, shield_inner_done);
    return &s->fut;
}

/* ---- task groups ------------------------------------------------------------------------------
 */

struct cl_group {
    struct cl_future fut;
    struct cl_task *parent; /* cancelled at the first failure while the group is open */
    bool closed;            /* cl_group_wait was called: no more tasks */
    bool aborting;          /* its tasks were told to cancel */
    bool parent_cancelled;  /* ... because the parent was: the group ends cancelled */
    int first_err;
    const char *first_msg;
    size_t n, ndone, nfailed, cap;
    struct child **c; /* one allocation each: a waiter must not move */
};

static void group_maybe_done(struct cl_group *g)
{
    if (!g->closed || g->ndone < g->n)
        return;
    if (g->first_err != 0)
        complete(&g->fut, g->first_err, (intptr_t)g->nfailed, g->first_msg);
    else if (g->fut.cancelling || g->parent_cancelled)
        complete(&g->fut, ECANCELED, 0, NULL);
    else
        complete(&g->fut, 0, (intptr_t)g->n, NULL);
}

static void group_abort(struct cl_group *g)
{
    g->aborting = true;
    for (size_t i = 0; i < g->n; i++)
        cl_future_cancel(g->c[i]->f);
}

static void group_child_done(struct cl_waiter *w, struct cl_future *f)
{
    struct child *c = container_of(w, struct child, w);
    struct cl_group *g = container_of(c->parent, struct cl_group, fut);
    g->ndone++;
    if (f->err != 0 && f->err != ECANCELED) {
        g->nfailed++;
        if (g->first_err == 0) {
            g->first_err = f->err;
            g->first_msg = f->msg;
            if (!g->closed && g->parent != NULL)
                cl_task_cancel(g->parent);
            group_abort(g);
        }
    }
    group_maybe_done(g);
}

static bool group_cancel(struct cl_future *f)
{
    struct cl_group *g = container_of(f, struct cl_group, fut);
    g->closed = true;
    group_abort(g);
    group_maybe_done(g);
    return true;
}

static void group_destroy(struct cl_future *f, bool sweeping)
{
    struct cl_group *g = container_of(f, struct cl_group, fut);
    for (size_t i = 0; i < g->n; i++) {
        release_children(g->c[i], 1, sweeping);
        free(g->c[i]);
    }
    free(g->c);
    free(g);
}

static const struct cl_future_ops group_ops = {"task group", group_cancel, group_destroy};

struct cl_group *cl_group_new(struct cl_loop *loop, struct cl_task *parent)
{
    struct cl_group *g = cl_xcalloc(1, sizeof *g);
    adopt(&g->fut, loop, "task group", &group_ops);
    g->parent = parent;
    return g;
}

struct cl_task *cl_group_spawn(struct cl_group *g, cl_task_fn *fn, size_t frame_size,
                               const char *name)
{
    if (g->closed)
        return NULL;
    if (g->n == g->cap) {
        g->cap = g->cap == 0 ? 8 : 2 * g->cap;
        g->c = reallocarray(g->c, g->cap, sizeof(struct child *));
        if (g->c == NULL)
            cl_die(__FILE__, __LINE__, "reallocarray", ENOMEM);
    }
    struct cl_task *t = cl_task_new(g->fut.loop, fn, frame_size, name);
    struct child *c = cl_xcalloc(1, sizeof *c);
    g->c[g->n++] = c;
    /* The caller's reference becomes the group's. */
    *c = (struct child){.w.fn = group_child_done, .f = &t->fut, .parent = &g->fut};
    cl_future_on_done(&t->fut, &c->w);
    if (g->aborting)
        cl_task_cancel(t); /* spawned after a failure: cancelled before it runs */
    return t;
}

struct cl_future *cl_group_wait(struct cl_group *g)
{
    g->closed = true;
    /* The parent awaits from its cleanup after a cancellation: the tasks go too
     * (asyncio's TaskGroup.__aexit__ on CancelledError). */
    struct cl_task *p = g->parent;
    if (p != NULL && (p->flags & CL_TASK_IN_FINALLY) && p->fut.err == ECANCELED && !g->aborting) {
        g->parent_cancelled = true;
        group_abort(g);
    }
    group_maybe_done(g);
    return &g->fut;
}

/* ---- cl_loop_free's first step ------------------------------------------------------------ */

static void shutdown_tasks(struct cl_loop *loop)
{
    struct cl_tasks *r = registry(loop);
    /* Cancel every pending task (holding a reference to each meanwhile) ... */
    size_t n = 0;
    for (struct cl_future *f = r->objects.obj_next; f != &r->objects; f = f->obj_next)
        n += f->ops == &task_ops && !f->done;
    struct cl_future **pending = cl_xcalloc(n + 1, sizeof(struct cl_future *));
    n = 0;
    for (struct cl_future *f = r->objects.obj_next; f != &r->objects; f = f->obj_next)
        if (f->ops == &task_ops && !f->done) {
            cl_future_ref(f);
            pending[n++] = f;
        }
    for (size_t i = 0; i < n; i++)
        cl_future_cancel(pending[i]);
    for (size_t i = 0; i < n; i++)
        cl_future_unref(pending[i]);
    free(pending);
    /* ... and run their cleanup, until none is left or nothing can happen. */
    if (atomic_load_explicit(&r->pending, memory_order_relaxed) > 0) {
        r->shutting_down = true;
        cl_loop_run(loop);
    }
    /* Free what is left, references or not. First unhook every waiter from the
     * futures about to go, so that no unlink below touches a freed one. */
    for (struct cl_future *f = r->objects.obj_next; f != &r->objects; f = f->obj_next)
        while (f->waiters.next != &f->waiters)
            cl_future_forget(f->waiters.next);
    while (r->objects.obj_next != &r->objects) {
        struct cl_future *f = r->objects.obj_next;
        f->obj_prev->obj_next = f->obj_next;
        f->obj_next->obj_prev = f->obj_prev;
        if (f->ops == &task_ops && !f->done)
            fprintf(stderr, "cl_loop_free: task '%s' #%llu never finished its cleanup\n", f->name,
                    (unsigned long long)as_task(f)->id);
        f->ops->destroy(f, true);
    }
    for (unsigned k = 0; k < SLOT_CHUNKS; k++)
        free(atomic_load_explicit(&r->chunks[k], memory_order_relaxed));
    atomic_store_explicit(&loop->tasks, NULL, memory_order_release);
    free(r);
}

/* ---- the watchdog's report ----------------------------------------------------------------- */

uint64_t cl_loop_progress(void *loop)
{
    return atomic_load_explicit(((struct cl_loop *)loop)->steps, memory_order_relaxed);
}

static void report_slot(int fd, struct cl_task_slot *s, const char *name, uint64_t now)
{
    const char *status = atomic_load_explicit(&s->status, memory_order_relaxed);
    const char *detail = atomic_load_explicit(&s->detail, memory_order_relaxed);
    int64_t num = atomic_load_explicit(&s->num, memory_order_relaxed);
    unsigned long long id = atomic_load_explicit(&s->id, memory_order_relaxed);
    if (status == NULL)
        status = "finishing";
    dprintf(fd, "  task '%s' #%llu: %s", name, id, status);
    if (detail != NULL)
        dprintf(fd, " '%s'", detail);
    if (strcmp(status, "sleeping") == 0)
        dprintf(fd, ", due in %.1f ms", ((double)num - (double)now) / 1e6);
    else if (strncmp(status, "waiting for fd", 14) == 0)
        dprintf(fd, " %lld", (long long)num);
    dprintf(fd, "\n");
}

#define REPORT_KINDS 8

void cl_task_report(int fd, struct cl_loop *loop, size_t max_lines)
{
    const char *phase = atomic_load_explicit(&loop->phase, memory_order_relaxed);
    const char *running = atomic_load_explicit(&loop->running, memory_order_relaxed);
    dprintf(fd, "  loop: %s", phase);
    if (running != NULL)
        dprintf(fd, ", stepping task '%s'", running);
    dprintf(fd, " (%llu callbacks run)\n",
            (unsigned long long)atomic_load_explicit(loop->steps, memory_order_relaxed));
    struct cl_tasks *r = atomic_load_explicit(&loop->tasks, memory_order_acquire);
    if (r == NULL)
        return;
    uint64_t now = cl_now_ns();
    size_t lines = 0, more = 0;
    const char *kinds[REPORT_KINDS] = {0};
    size_t counts[REPORT_KINDS] = {0};
    size_t nchunks = atomic_load_explicit(&r->nchunks, memory_order_acquire);
    for (size_t k = 0; k < nchunks; k++) {
        struct cl_task_slot *c = atomic_load_explicit(&r->chunks[k], memory_order_acquire);
        for (size_t i = 0; i < ((size_t)SLOT_FIRST << k); i++) {
            const char *name = atomic_load_explicit(&c[i].name, memory_order_relaxed);
            if (name == NULL)
                continue;
            if (lines < max_lines) {
                report_slot(fd, &c[i], name, now);
                lines++;
                continue;
            }
            more++;
            const char *status = atomic_load_explicit(&c[i].status, memory_order_relaxed);
            size_t j = 0;
            while (j < REPORT_KINDS - 1 && kinds[j] != NULL && kinds[j] != status)
                j++;
            if (kinds[j] == NULL)
                kinds[j] = status;
            counts[j]++;
        }
    }
    if (more == 0)
        return;
    dprintf(fd, "  ... and %zu more:", more);
    for (size_t j = 0; j < REPORT_KINDS && counts[j] > 0; j++)
        dprintf(fd, "%s %zu %s", j ? "," : "", counts[j],
                j == REPORT_KINDS - 1 ? "other" : (kinds[j] ? kinds[j] : "finishing"));
    dprintf(fd, "\n");
}
