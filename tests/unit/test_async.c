/* cl_async: asyncio's Lock, Semaphore, Event, Condition, Queue and as_completed
 * on cl_task tasks. First come, first served by hand-off; a cancelled waiter
 * leaves nothing held (a permit or an item handed to it goes on); a condition's
 * waiter holds the lock again whichever way its wait ends; task_done and join;
 * a closed queue; the order and the timeout of as_completed; misuse that dies;
 * and the watchdog's view of a task waiting on a primitive.
 *
 * Each test records what its tasks did in one log line and compares it whole.
 * Ordering relies on sleeps at least 50 ms apart; no test bounds a duration.
 * The forked tests come first, before this process has started any thread. */
#include "unit.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_async.h"
#include "cl_check.h"

#define LONG_MS 10000 /* a sleep the test never waits out */

static struct cl_loop *loop;
static char log_[1024];

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    size_t len = strlen(log_);
    if (len > 0 && len < sizeof log_ - 1)
        log_[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_ + len, sizeof log_ - len, fmt, ap);
    va_end(ap);
}

static int setup(void **state)
{
    (void)state;
    log_[0] = '\0';
    loop = cl_loop_new(NULL);
    return loop == NULL;
}

static int teardown(void **state)
{
    (void)state;
    cl_loop_free(loop);
    return 0;
}

static void drop(void *task)
{
    cl_future_unref(&((struct cl_task *)task)->fut);
}

/* A timer that cancels a task, or calls a function, at a given time. */
struct at {
    struct cl_timer timer;
    struct cl_task *cancel;
    void (*fn)(void *arg);
    void *arg;
};

static void at_cb(struct cl_timer *t)
{
    struct at *a = (struct at *)t;
    if (a->cancel != NULL)
        cl_task_cancel(a->cancel);
    if (a->fn != NULL)
        a->fn(a->arg);
}

static void stop_loop(void *arg)
{
    cl_loop_stop(arg);
}

static void at_ms(struct at *a, uint64_t ms)
{
    a->timer.cb = at_cb;
    cl_timer_start(loop, &a->timer, CL_MS(ms));
}

/* ---- a task that holds a semaphore (or a lock) for a while ---- */

struct holder {
    struct cl_task task;
    struct cl_asem *sem;
    const char *tag;
    uint64_t hold_ms;
    bool held;
    int *inside, *most; /* how many hold it now, and at most */
};

static int holder_run(struct cl_task *t)
{
    struct holder *h = (struct holder *)t;
    CL_BEGIN(t);
    CL_SEM_ACQUIRE(t, h->sem);
    h->held = true;
    say("%s+", h->tag);
    if (h->inside != NULL && ++*h->inside > *h->most)
        *h->most = *h->inside;
    CL_SLEEP(t, CL_MS(h->hold_ms));
    CL_FINALLY(t);
    if (h->held) {
        if (h->inside != NULL)
            --*h->inside;
        say("%s-", h->tag);
        cl_asem_release(h->sem);
    } else {
        say("%s:never", h->tag);
    }
    CL_END(t);
}

static struct holder *holder(struct cl_asem *sem, const char *tag, uint64_t hold_ms)
{
    struct holder *h = (struct holder *)cl_task_new(loop, holder_run, sizeof *h, tag);
    h->sem = sem;
    h->tag = tag;
    h->hold_ms = hold_ms;
    return h;
}

/* ---- misuse dies (forked: it aborts) ---- */

static int release_unlocked(void *arg)
{
    (void)arg;
    setup(NULL);
    struct cl_alock l;
    cl_alock_init(&l, loop, "the lock");
    cl_alock_release(&l);
    return 0;
}

static int release_past_bound(void *arg)
{
    (void)arg;
    setup(NULL);
    struct cl_asem s;
    cl_asem_init(&s, loop, 2, 2, "two permits");
    cl_asem_release(&s);
    return 0;
}

static int done_too_often(void *arg)
{
    (void)arg;
    setup(NULL);
    struct cl_aqueue q;
    cl_aqueue_init(&q, loop, 0, "jobs");
    assert_true(cl_aqueue_put_nowait(&q, 1));
    cl_aqueue_task_done(&q);
    cl_aqueue_task_done(&q);
    return 0;
}

static int notify_unlocked(void *arg)
{
    (void)arg;
    setup(NULL);
    struct cl_alock l;
    struct cl_acond c;
    cl_alock_init(&l, loop, "the lock");
    cl_acond_init(&c, &l, "ready");
    cl_acond_notify(&c, 1);
    return 0;
}

static void test_misuse_dies(void **state)
{
    (void)state;
    struct {
        int (*fn)(void *);
        const char *says;
    } cases[] = {
        {release_unlocked, "cl_alock_release: 'the lock' is not locked"},
        {release_past_bound, "'two permits': released more times than acquired"},
        {done_too_often, "cl_aqueue_task_done: 'jobs': more items done than were put"},
        {notify_unlocked, "cl_acond_notify: 'ready': its lock is not held"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct child c;
        run_child(cases[i].fn, NULL, 30, &c);
        assert_true(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
        assert_contains(c.err, cases[i].says);
    }
}

/* ---- Lock and Semaphore ---- */

/* One at a time, in the order they asked. */
static void test_lock_is_fifo(void **state)
{
    (void)state;
    struct cl_alock l;
    cl_alock_init(&l, loop, "the lock");
    drop(holder(&l.sem, "A", 50));
    drop(holder(&l.sem, "B", 50));
    drop(holder(&l.sem, "C", 50));
    cl_loop_run(loop);
    assert_string_equal(log_, "A+ A- B+ B- C+ C-");
    assert_false(cl_alock_locked(&l));
}

/* A release hands the permit over: a task that asks right after the release,
 * in the same step, queues behind the waiter instead of barging in. */
struct barger {
    struct cl_task task;
    struct cl_alock *lock;
};

static int barger_run(struct cl_task *t)
{
    struct barger *b = (struct barger *)t;
    CL_BEGIN(t);
    CL_LOCK(t, b->lock);
    say("A+");
    CL_SLEEP(t, CL_MS(50));
    say("A-");
    cl_alock_release(b->lock);
    CL_LOCK(t, b->lock); /* again at once: B waits already */
    say("A+");
    cl_alock_release(b->lock);
    CL_END(t);
}

static void test_lock_hand_off_stops_barging(void **state)
{
    (void)state;
    struct cl_alock l;
    cl_alock_init(&l, loop, "the lock");
    struct barger *a = (struct barger *)cl_task_new(loop, barger_run, sizeof *a, "A");
    a->lock = &l;
    drop(a);
    drop(holder(&l.sem, "B", 50));
    cl_loop_run(loop);
    assert_string_equal(log_, "A+ A- B+ B- A+");
    assert_false(cl_alock_locked(&l));
}

/* Semaphore(2), 6 tasks: two inside at most, in pairs. */
static void test_semaphore_limits(void **state)
{
    (void)state;
    struct cl_asem s;
    cl_asem_init(&s, loop, 2, 0, "a permit");
    int inside = 0, most = 0;
    const char *tags[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) {
        struct holder *h = holder(&s, tags[i], 50);
        h->inside = &inside;
        h->most = &most;
        drop(h);
    }
    cl_loop_run(loop);
    assert_string_equal(log_, "a+ b+ a- b- c+ d+ c- d- e+ f+ e- f-");
    assert_int_equal(most, 2);
    assert_int_equal(s.value, 2);
}

/* A waiter cancelled while it waits never gets the lock; one cancelled after
 * the permit was handed to it, before it could run, passes it on. */
static void release_and_cancel(void *arg)
{
    struct holder **h = arg;
    cl_asem_release(h[0]->sem); /* A lets go early: to B */
    h[0]->held = false;
    say("A-");
    cl_task_cancel(&h[1]->task); /* B had it handed, and never runs with it */
}

static void test_cancelled_waiters_hold_nothing(void **state)
{
    (void)state;
    struct cl_alock l;
    cl_alock_init(&l, loop, "the lock");
    struct holder *h[4] = {holder(&l.sem, "A", LONG_MS), holder(&l.sem, "B", 50),
                           holder(&l.sem, "C", 50), holder(&l.sem, "D", 50)};
    struct at cancel_c = {.cancel = &h[2]->task}, handoff = {.fn = release_and_cancel, .arg = h},
              stop = {.fn = stop_loop, .arg = loop};
    at_ms(&cancel_c, 50);
    at_ms(&handoff, 100);
    at_ms(&stop, 200);
    cl_loop_run(loop);
    assert_string_equal(log_, "A+ C:never A- B:never D+ D-");
    assert_true(cl_future_cancelled(&h[1]->task.fut));
    assert_true(cl_future_cancelled(&h[2]->task.fut));
    assert_false(cl_alock_locked(&l));
    cl_task_cancel(&h[0]->task);
    cl_loop_run(loop);
    for (int i = 0; i < 4; i++)
        drop(h[i]);
}

/* ---- Event ---- */

struct waiter {
    struct cl_task task;
    struct cl_aevent *ev;
    const char *tag;
};

static int waiter_run(struct cl_task *t)
{
    struct waiter *w = (struct waiter *)t;
    CL_BEGIN(t);
    CL_EVENT_WAIT(t, w->ev);
    say("%s", w->tag);
    CL_END(t);
}

static struct waiter *waiter(struct cl_aevent *ev, const char *tag)
{
    struct waiter *w = (struct waiter *)cl_task_new(loop, waiter_run, sizeof *w, tag);
    w->ev = ev;
    w->tag = tag;
    return w;
}

static void set_event(void *arg)
{
    say("set");
    cl_aevent_set(arg);
}

/* set wakes every waiter at once; waiting on a set flag does not wait; clear
 * makes the next ones wait again. */
static void test_event(void **state)
{
    (void)state;
    struct cl_aevent ev;
    cl_aevent_init(&ev, loop, "the start");
    drop(waiter(&ev, "w1"));
    drop(waiter(&ev, "w2"));
    drop(waiter(&ev, "w3"));
    struct at a = {.fn = set_event, .arg = &ev};
    at_ms(&a, 50);
    cl_loop_run(loop);
    assert_string_equal(log_, "set w1 w2 w3");
    drop(waiter(&ev, "late"));
    cl_loop_run(loop);
    assert_string_equal(log_, "set w1 w2 w3 late");
    cl_aevent_clear(&ev);
    struct waiter *w = waiter(&ev, "after-clear");
    assert_false(cl_loop_run_until(loop, &w->task.fut)); /* nothing can set it */
    cl_task_cancel(&w->task);
    cl_loop_run(loop);
    assert_true(cl_future_cancelled(&w->task.fut));
    drop(w);
}

/* ---- Condition ---- */

struct cwaiter {
    struct cl_task task;
    struct cl_acond *cond;
    bool *ready;
    const char *tag;
};

static int cwaiter_run(struct cl_task *t)
{
    struct cwaiter *w = (struct cwaiter *)t;
    CL_BEGIN(t);
    CL_LOCK(t, w->cond->lock);
    while (!*w->ready)
        CL_COND_WAIT(t, w->cond);
    say("%s", w->tag);
    CL_FINALLY(t);
    if (t->fut.err == ECANCELED)
        say("%s:cancelled%s", w->tag, cl_alock_locked(w->cond->lock) ? "(locked)" : "");
    cl_alock_release(w->cond->lock); /* held on every path */
    CL_END(t);
}

struct notifier {
    struct cl_task task;
    struct cl_acond *cond;
    bool *ready;
    bool all;
};

static int notifier_run(struct cl_task *t)
{
    struct notifier *n = (struct notifier *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, CL_MS(100));
    CL_LOCK(t, n->cond->lock);
    *n->ready = true;
    say(n->all ? "notify-all" : "notify-1");
    if (n->all)
        cl_acond_notify_all(n->cond);
    else
        cl_acond_notify(n->cond, 1);
    CL_SLEEP(t, CL_MS(50)); /* the woken wait for the lock meanwhile */
    say("release");
    cl_alock_release(n->cond->lock);
    CL_END(t);
}

/* notify(1) wakes one waiter, notify_all the rest; each runs only once it
 * holds the lock again. A waiter cancelled mid-wait takes the lock back before
 * its cleanup runs. */
static void test_condition(void **state)
{
    (void)state;
    struct cl_alock l;
    struct cl_acond c;
    bool ready = false;
    cl_alock_init(&l, loop, "the lock");
    cl_acond_init(&c, &l, "ready");
    struct cwaiter *w[3];
    const char *tags[] = {"w1", "w2", "w3"};
    for (int i = 0; i < 3; i++) {
        w[i] = (struct cwaiter *)cl_task_new(loop, cwaiter_run, sizeof *w[i], tags[i]);
        w[i]->cond = &c;
        w[i]->ready = &ready;
        w[i]->tag = tags[i];
    }
    struct notifier *n = (struct notifier *)cl_task_new(loop, notifier_run, sizeof *n, "n");
    n->cond = &c;
    n->ready = &ready;
    struct at cancel = {.cancel = &w[2]->task};
    at_ms(&cancel, 50);
    cl_loop_run(loop);
    assert_string_equal(log_, "w3:cancelled(locked) notify-1 release w1");
    assert_int_equal(c.waiters.len, 1); /* w2: notified by nobody since */
    assert_false(cl_alock_locked(&l));
    cl_future_unref(&n->task.fut);
    n = (struct notifier *)cl_task_new(loop, notifier_run, sizeof *n, "n2");
    n->cond = &c;
    n->ready = &ready;
    n->all = true;
    cl_loop_run(loop);
    assert_string_equal(log_, "w3:cancelled(locked) notify-1 release w1 notify-all release w2");
    drop(n);
    for (int i = 0; i < 3; i++)
        drop(w[i]);
}

/* As in asyncio, a notified waiter asks for the lock only when it runs: the
 * notifier releases and takes the lock again in the same step, ahead of it. */
struct renotifier {
    struct cl_task task;
    struct cl_acond *cond;
};

static int renotifier_run(struct cl_task *t)
{
    struct renotifier *n = (struct renotifier *)t;
    CL_BEGIN(t);
    CL_LOCK(t, n->cond->lock);
    cl_acond_notify(n->cond, 1);
    cl_alock_release(n->cond->lock);
    CL_LOCK(t, n->cond->lock); /* free: the waiter has not asked yet */
    say("n:again");
    CL_SLEEP(t, CL_MS(50));
    cl_alock_release(n->cond->lock);
    CL_END(t);
}

static void test_condition_notified_waiter_can_be_overtaken(void **state)
{
    (void)state;
    struct cl_alock l;
    struct cl_acond c;
    bool ready = false;
    cl_alock_init(&l, loop, "the lock");
    cl_acond_init(&c, &l, "ready");
    struct cwaiter *w = (struct cwaiter *)cl_task_new(loop, cwaiter_run, sizeof *w, "w");
    w->cond = &c;
    w->ready = &ready;
    w->tag = "w";
    cl_loop_run(loop); /* w waits */
    ready = true;
    struct renotifier *n = (struct renotifier *)cl_task_new(loop, renotifier_run, sizeof *n, "n");
    n->cond = &c;
    cl_loop_run(loop);
    assert_string_equal(log_, "n:again w");
    drop(n);
    drop(w);
}

/* ---- Queue ---- */

struct getter {
    struct cl_task task;
    struct cl_aqueue *q;
    const char *tag;
    intptr_t item;
    int n;
    uint64_t work_ms;
};

static int getter_run(struct cl_task *t)
{
    struct getter *g = (struct getter *)t;
    CL_BEGIN(t);
    while (g->n-- > 0) {
        CL_QUEUE_GET(t, g->q, g->item);
        say("%s<%ld", g->tag, (long)g->item);
        if (g->work_ms > 0)
            CL_SLEEP(t, CL_MS(g->work_ms));
        cl_aqueue_task_done(g->q);
    }
    CL_FINALLY(t);
    if (t->fut.err != 0)
        say("%s:err%d", g->tag, t->fut.err);
    CL_END(t);
}

static struct getter *getter(struct cl_aqueue *q, const char *tag, int n)
{
    struct getter *g = (struct getter *)cl_task_new(loop, getter_run, sizeof *g, tag);
    g->q = q;
    g->tag = tag;
    g->n = n;
    return g;
}

struct putter {
    struct cl_task task;
    struct cl_aqueue *q;
    intptr_t next, last;
    bool join;
};

static int putter_run(struct cl_task *t)
{
    struct putter *p = (struct putter *)t;
    CL_BEGIN(t);
    for (; p->next <= p->last; p->next++) {
        CL_QUEUE_PUT(t, p->q, p->next);
        say("P>%ld", (long)p->next);
    }
    if (p->join) {
        CL_QUEUE_JOIN(t, p->q);
        say("joined");
    }
    CL_FINALLY(t);
    if (t->fut.err != 0)
        say("P:err%d", t->fut.err);
    CL_END(t);
}

static struct putter *putter(struct cl_aqueue *q, intptr_t first, intptr_t last, bool join)
{
    struct putter *p = (struct putter *)cl_task_new(loop, putter_run, sizeof *p, "P");
    p->q = q;
    p->next = first;
    p->last = last;
    p->join = join;
    return p;
}

/* A bounded queue: the putter waits for a slot, items come out in order,
 * getters wait their turn, and join returns once every item is task_done. */
static void test_queue_bounded_with_join(void **state)
{
    (void)state;
    struct cl_aqueue q;
    cl_aqueue_init(&q, loop, 2, "an item");
    struct getter *g = getter(&q, "G", 5);
    g->work_ms = 50;
    drop(g);
    drop(putter(&q, 1, 5, true));
    cl_loop_run(loop);
    /* G waits first; 1 goes straight to it, 2 and 3 fill the queue (P runs on
     * until it must wait), 4 takes the slot 2 frees, 5 the one 3 frees */
    assert_string_equal(log_, "P>1 P>2 P>3 G<1 G<2 P>4 G<3 P>5 G<4 G<5 joined");
    assert_int_equal(cl_aqueue_size(&q), 0);
    assert_int_equal(q.unfinished, 0);
    cl_aqueue_free(&q);
}

/* Getters are served in the order they came; a getter cancelled after an
 * item was handed to it gives the item to the next one. */
static void hand_then_cancel(void *arg)
{
    struct getter **g = arg;
    cl_aqueue_put_nowait(g[0]->q, 7); /* to g1 */
    cl_task_cancel(&g[0]->task);      /* before g1 can run */
}

static void test_queue_item_of_a_cancelled_getter_goes_on(void **state)
{
    (void)state;
    struct cl_aqueue q;
    cl_aqueue_init(&q, loop, 0, "an item");
    struct getter *g[2] = {getter(&q, "g1", 1), getter(&q, "g2", 1)};
    struct at a = {.fn = hand_then_cancel, .arg = g};
    at_ms(&a, 50);
    cl_loop_run(loop);
    assert_string_equal(log_, "g1:err125 g2<7");
    assert_int_equal(q.unfinished, 0);
    drop(g[0]);
    drop(g[1]);
    cl_aqueue_free(&q);
}

/* After close: a waiting putter fails, getters drain what is left, then fail. */
static void close_queue(void *arg)
{
    cl_aqueue_close(arg, EPIPE, "closed");
}

static void test_queue_close(void **state)
{
    (void)state;
    struct cl_aqueue q;
    cl_aqueue_init(&q, loop, 1, "an item");
    struct putter *p = putter(&q, 1, 3, false);
    struct at a = {.fn = close_queue, .arg = &q};
    at_ms(&a, 50);
    cl_loop_run(loop);
    assert_string_equal(log_, "P>1 P:err32");
    struct getter *g = getter(&q, "G", 3);
    cl_loop_run(loop);
    assert_string_equal(log_, "P>1 P:err32 G<1 G:err32");
    assert_int_equal(g->task.fut.err, EPIPE);
    assert_false(cl_aqueue_put_nowait(&q, 9));
    drop(p);
    drop(g);
    cl_aqueue_free(&q);
}

/* ---- as_completed ---- */

struct sleeper {
    struct cl_task task;
    uint64_t ms;
};

static int sleeper_run(struct cl_task *t)
{
    struct sleeper *s = (struct sleeper *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, CL_MS(s->ms));
    CL_RETURN(t, (intptr_t)s->ms);
    CL_END(t);
}

struct consumer {
    struct cl_task task;
    struct cl_as_completed *ac;
    intptr_t index;
    int i;
};

static int consumer_run(struct cl_task *t)
{
    struct consumer *c = (struct consumer *)t;
    CL_BEGIN(t);
    for (c->i = 0; c->i < 3; c->i++) {
        CL_NEXT_COMPLETED(t, c->ac, c->index);
        say("%ld", (long)c->index);
    }
    CL_FINALLY(t);
    if (t->fut.err != 0)
        say("%s", t->fut.msg);
    CL_END(t);
}

/* 150, 50, 100 ms: indices 1, 2, 0. With a 125 ms timeout, the third await
 * fails with ETIMEDOUT (the loop itself, not a future). */
static void test_as_completed(void **state)
{
    (void)state;
    const char *expect[] = {"1 2 0", "1 2 as_completed: timed out"};
    uint64_t timeouts[] = {CL_FOREVER, CL_MS(125)};
    for (int k = 0; k < 2; k++) {
        log_[0] = '\0';
        struct cl_future *futs[3];
        const uint64_t ms[] = {150, 50, 100};
        for (int i = 0; i < 3; i++) {
            struct sleeper *s = (struct sleeper *)cl_task_new(loop, sleeper_run, sizeof *s, "s");
            s->ms = ms[i];
            futs[i] = &s->task.fut;
        }
        struct cl_as_completed *ac = cl_as_completed_new(loop, futs, 3, timeouts[k]);
        struct consumer *c = (struct consumer *)cl_task_new(loop, consumer_run, sizeof *c, "c");
        c->ac = ac;
        cl_loop_run(loop);
        assert_string_equal(log_, expect[k]);
        assert_int_equal(c->task.fut.err, k == 0 ? 0 : ETIMEDOUT);
        drop(c);
        cl_future_unref(cl_as_completed_future(ac));
        for (int i = 0; i < 3; i++)
            cl_future_unref(futs[i]);
    }
}

/* ---- the watchdog's view, and cl_loop_free with waiters ---- */

static void test_report_names_the_primitive(void **state)
{
    (void)state;
    struct cl_alock l;
    struct cl_aqueue q;
    cl_alock_init(&l, loop, "the cache lock");
    cl_aqueue_init(&q, loop, 0, "an item");
    struct cl_task *t[3] = {&holder(&l.sem, "A", LONG_MS)->task, &holder(&l.sem, "B", 50)->task,
                            &getter(&q, "G", 1)->task};
    struct at stop = {.fn = stop_loop, .arg = loop};
    at_ms(&stop, 50);
    cl_loop_run(loop);
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    cl_task_report(fds[1], loop, 10);
    char buf[1024] = {0};
    assert_true(read(fds[0], buf, sizeof buf - 1) > 0);
    assert_contains(buf, "task 'A' #1: sleeping");
    assert_contains(buf, "task 'B' #2: awaiting 'the cache lock'\n");
    assert_contains(buf, "task 'G' #3: awaiting 'an item'\n");
    close(fds[0]);
    close(fds[1]);
    /* Cancelled in turn: A's cleanup hands the lock to B, whose cancellation
     * passes it back; no entry is left in a queue (ASan sees no leak). */
    for (int i = 0; i < 3; i++)
        cl_task_cancel(t[i]);
    cl_loop_run(loop);
    assert_false(cl_alock_locked(&l));
    assert_int_equal(l.sem.waiters.len + q.getters.len, 0);
    for (int i = 0; i < 3; i++)
        drop(t[i]);
    cl_aqueue_free(&q);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misuse_dies),
        cmocka_unit_test_setup_teardown(test_lock_is_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_hand_off_stops_barging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semaphore_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_waiters_hold_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_notified_waiter_can_be_overtaken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_bounded_with_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_item_of_a_cancelled_getter_goes_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_as_completed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_names_the_primitive, setup, teardown),
    };
    return UNIT_MAIN("async", tests);
}
