/* cl_task: stackless tasks on the loop. When a task first runs, the order of
 * sleeps, results and errors through awaits, cancellation on every path (its
 * cleanup runs exactly once), fd waits, the combinators (gather, wait, wait_for,
 * shield, task groups), cl_loop_free with tasks still pending, and the
 * watchdog's report, also read from another thread while tasks come and go.
 *
 * Each test records what its tasks did in one log line and compares it whole,
 * so a cleanup that runs twice, or a step out of order, fails. Ordering relies
 * on sleeps at least 50 ms apart; no test bounds a duration. The forked test
 * comes first, before this process has started any thread. */
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_task.h"
#include "cl_time.h"
#include "cl_watchdog.h"

#define LONG_MS 10000 /* a sleep the test never waits out */

struct world {
    struct cl_loop *loop;
    char log[1024];
};

__attribute__((format(printf, 2, 3))) static void say(struct world *w, const char *fmt, ...)
{
    size_t len = strlen(w->log);
    if (len > 0 && len < sizeof w->log - 1)
        w->log[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->log + len, sizeof w->log - len, fmt, ap);
    va_end(ap);
}

static struct world *world_new(void)
{
    struct world *w = cl_xcalloc(1, sizeof *w);
    w->loop = cl_loop_new(NULL);
    assert_non_null(w->loop);
    return w;
}

static void world_free(struct world *w)
{
    cl_loop_free(w->loop);
    free(w);
}

static const char *cancelled(const struct cl_task *t)
{
    return t->fut.err == ECANCELED ? "(cancelled)" : "";
}

/* ---- a worker: sleep, then return a value or fail; cleanup that may sleep too ---- */

struct worker {
    struct cl_task task;
    struct world *w;
    const char *tag;
    uint64_t sleep_ms, cleanup_ms;
    intptr_t value;
    bool fail;             /* raise EIO "boom" after the sleep */
    bool cancel_self;      /* cancel itself before the sleep */
    bool cancel_self_late; /* cancel itself after the sleep, then return */
};

static int worker_run(struct cl_task *t)
{
    struct worker *k = (struct worker *)t;
    CL_BEGIN(t);
    say(k->w, "%s:start", k->tag);
    if (k->cancel_self)
        cl_task_cancel(t);
    CL_SLEEP(t, CL_MS(k->sleep_ms));
    if (k->fail)
        CL_RAISE(t, EIO, "boom");
    if (k->cancel_self_late)
        cl_task_cancel(t);
    say(k->w, "%s:end", k->tag);
    CL_RETURN(t, k->value);
    CL_FINALLY(t);
    if (k->cleanup_ms > 0)
        CL_SLEEP(t, CL_MS(k->cleanup_ms));
    say(k->w, "%s:cleanup%s", k->tag, cancelled(t));
    CL_END(t);
}

static struct worker *worker(struct world *w, const char *tag, uint64_t sleep_ms, intptr_t value)
{
    struct worker *k =
        (struct worker *)cl_task_new(w->loop, worker_run, sizeof(struct worker), tag);
    k->w = w;
    k->tag = tag;
    k->sleep_ms = sleep_ms;
    k->value = value;
    return k;
}

static void drop(struct worker *k)
{
    cl_future_unref(&k->task.fut);
}

/* ---- a parent: await a future (propagating or not), then return its value + 1 ---- */

struct parent {
    struct cl_task task;
    struct world *w;
    struct cl_future *awaits;
    bool try_mode;
};

static int parent_run(struct cl_task *t)
{
    struct parent *p = (struct parent *)t;
    CL_BEGIN(t);
    say(p->w, "P:start");
    if (p->try_mode)
        CL_AWAIT_TRY(t, p->awaits);
    else
        CL_AWAIT(t, p->awaits);
    say(p->w, "P:got");
    CL_RETURN(t, p->awaits->value + 1);
    CL_FINALLY(t);
    say(p->w, "P:cleanup%s", cancelled(t));
    CL_END(t);
}

static struct parent *parent(struct world *w, struct cl_future *awaits)
{
    struct parent *p =
        (struct parent *)cl_task_new(w->loop, parent_run, sizeof(struct parent), "P");
    p->w = w;
    p->awaits = awaits;
    return p;
}

/* ---- a timer that cancels a future at a given time and records the answer ---- */

struct canceller {
    struct cl_timer timer;
    struct cl_future *target;
    int answers[2]; /* what the first and a second cl_future_cancel returned */
};

static void cancel_cb(struct cl_timer *t)
{
    struct canceller *c = (struct canceller *)t;
    c->answers[0] = cl_future_cancel(c->target);
    c->answers[1] = cl_future_cancel(c->target);
}

static void cancel_at(struct cl_loop *loop, struct canceller *c, struct cl_future *target,
                      uint64_t ms)
{
    *c = (struct canceller){.timer.cb = cancel_cb, .target = target, .answers = {-1, -1}};
    cl_timer_start(loop, &c->timer, CL_MS(ms));
}

/* ---- an observer: which futures were done when another one completed ---- */

struct observer {
    struct cl_waiter w;
    struct cl_future *watch[4];
    int n;
    bool done[4];
    bool fired;
};

static void observe_cb(struct cl_waiter *w, struct cl_future *f)
{
    (void)f;
    struct observer *o = (struct observer *)w;
    o->fired = true;
    for (int i = 0; i < o->n; i++)
        o->done[i] = o->watch[i]->done;
}

static void observe(struct observer *o, struct cl_future *f)
{
    o->w.fn = observe_cb;
    cl_future_on_done(f, &o->w);
}

/* ---- cl_loop_free with tasks still pending (forked: it writes to stderr) ---- */

struct stopper {
    struct cl_timer timer;
    struct cl_loop *loop;
};

static void stop_cb(struct cl_timer *t)
{
    cl_loop_stop(((struct stopper *)t)->loop);
}

/* Run the loop for about ms, whatever is still pending then. */
static void run_for(struct cl_loop *loop, uint64_t ms)
{
    struct stopper s = {{.cb = stop_cb}, loop};
    cl_timer_start(loop, &s.timer, CL_MS(ms));
    cl_loop_run(loop);
    cl_timer_stop(loop, &s.timer);
}

struct stuck {
    struct cl_task task;
    struct cl_future *never; /* nobody sets it */
};

static int stuck_run(struct cl_task *t)
{
    struct stuck *s = (struct stuck *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, CL_MS(LONG_MS));
    CL_FINALLY(t);
    CL_AWAIT(t, s->never); /* cleanup that can never finish */
    CL_END(t);
}

static int free_with_pending(void *arg)
{
    (void)arg;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", LONG_MS, 0), *b = worker(w, "B", LONG_MS, 0);
    a->cleanup_ms = 50; /* cleanup that awaits: the loop runs it to the end */
    drop(a);
    drop(b);
    struct stuck *s = (struct stuck *)cl_task_new(w->loop, stuck_run, sizeof *s, "stuck");
    s->never = cl_future_new(w->loop, "never");
    run_for(w->loop, 20);  /* the three start, then sleep */
    cl_loop_free(w->loop); /* cancels them, and runs their cleanup */
    printf("%s\n", w->log);
    free(w);
    return 0;
}

/* Every pending task is cancelled and its cleanup run to the end; one whose
 * cleanup waits for ever is named on stderr and freed anyway (ASan and
 * valgrind see no leak). */
static void test_free_cancels_pending_tasks(void **state)
{
    (void)state;
    struct child c;
    run_child(free_with_pending, NULL, 30, &c);
    assert_child_exit(&c, 0);
    assert_string_equal(c.out, "A:start B:start B:cleanup(cancelled) A:cleanup(cancelled)\n");
    assert_contains(c.err, "cl_loop_free: task 'stuck' #3 never finished its cleanup");
}

static int set_a_task(void *arg)
{
    (void)arg;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 0, 0);
    cl_future_set(&a->task.fut, 1); /* dies */
    return 0;
}

/* Only a plain future is set from outside; a task completes itself. */
static void test_setting_a_task_dies(void **state)
{
    (void)state;
    struct child c;
    run_child(set_a_task, NULL, 30, &c);
    assert_true(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT); /* cl_die aborts */
    assert_contains(c.err, "cl_future_set: 'A' is a task, which completes itself");
}

/* ---- when a task runs, and in what order ---------------------------------- */

static void test_task_starts_at_the_next_iteration(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 0, 7);
    assert_string_equal(w->log, ""); /* created, not started */
    assert_int_equal(cl_task_pending(w->loop), 1);
    assert_true(cl_loop_run_until(w->loop, &a->task.fut));
    assert_string_equal(w->log, "A:start A:end A:cleanup");
    assert_int_equal(a->task.fut.err, 0);
    assert_int_equal(a->task.fut.value, 7);
    assert_int_equal(cl_task_pending(w->loop), 0);
    drop(a);
    world_free(w);
}

static void test_sleeps_end_in_deadline_order(void **state)
{
    (void)state;
    struct world *w = world_new();
    drop(worker(w, "A", 150, 0));
    drop(worker(w, "B", 50, 0));
    drop(worker(w, "C", 100, 0)); /* fire and forget: the tasks still run */
    cl_loop_run(w->loop);
    assert_string_equal(w->log,
                        "A:start B:start C:start B:end B:cleanup C:end C:cleanup A:end A:cleanup");
    world_free(w);
}

/* sleep(0) lets every other ready task run once. */
struct yielder {
    struct cl_task task;
    struct world *w;
    const char *tag;
};

static int yielder_run(struct cl_task *t)
{
    struct yielder *y = (struct yielder *)t;
    CL_BEGIN(t);
    say(y->w, "%s1", y->tag);
    CL_SLEEP(t, 0);
    say(y->w, "%s2", y->tag);
    CL_END(t);
}

static void test_sleep_zero_yields(void **state)
{
    (void)state;
    struct world *w = world_new();
    const char *tags[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct yielder *y = (struct yielder *)cl_task_new(w->loop, yielder_run, sizeof *y, "y");
        y->w = w;
        y->tag = tags[i];
        cl_future_unref(&y->task.fut);
    }
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "a1 b1 c1 a2 b2 c2");
    world_free(w);
}

/* Awaiting a future that is already done does not suspend: nothing else runs
 * in between, as in asyncio. */
static void test_await_done_future_does_not_suspend(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct cl_future *f = cl_future_new(w->loop, "ready");
    cl_future_set(f, 41);
    struct parent *p = parent(w, f);
    drop(worker(w, "Q", 0, 0));
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "P:start P:got P:cleanup Q:start Q:end Q:cleanup");
    assert_int_equal(p->task.fut.value, 42);
    cl_future_unref(&p->task.fut);
    cl_future_unref(f);
    world_free(w);
}

/* ---- results and errors through awaits ------------------------------------------ */

static void test_await_a_task_gets_its_value(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *c = worker(w, "C", 50, 7);
    struct parent *p = parent(w, &c->task.fut);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "C:start P:start C:end C:cleanup P:got P:cleanup");
    assert_int_equal(p->task.fut.err, 0);
    assert_int_equal(p->task.fut.value, 8);
    cl_future_unref(&p->task.fut);
    drop(c);
    world_free(w);
}

/* CL_AWAIT propagates the child's error (its cleanup runs, once); CL_AWAIT_TRY
 * leaves it on the child. */
static void test_errors_propagate_through_await(void **state)
{
    (void)state;
    for (int try_mode = 0; try_mode < 2; try_mode++) {
        struct world *w = world_new();
        struct worker *c = worker(w, "C", 50, 0);
        c->fail = true;
        struct parent *p = parent(w, &c->task.fut);
        p->try_mode = try_mode;
        cl_loop_run(w->loop);
        assert_int_equal(c->task.fut.err, EIO);
        assert_string_equal(c->task.fut.msg, "boom");
        if (try_mode) {
            assert_string_equal(w->log, "C:start P:start C:cleanup P:got P:cleanup");
            assert_int_equal(p->task.fut.err, 0);
            assert_int_equal(p->task.fut.value, 1);
        } else {
            assert_string_equal(w->log, "C:start P:start C:cleanup P:cleanup");
            assert_int_equal(p->task.fut.err, EIO);
            assert_string_equal(p->task.fut.msg, "boom");
        }
        cl_future_unref(&p->task.fut);
        drop(c);
        world_free(w);
    }
}

/* ---- cancellation ----------------------------------------------------------------- */

static void test_cancel_a_sleeping_task(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", LONG_MS, 0);
    struct canceller c;
    cancel_at(w->loop, &c, &a->task.fut, 50);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "A:start A:cleanup(cancelled)");
    assert_true(cl_future_cancelled(&a->task.fut));
    assert_int_equal(c.answers[0], 1);      /* the first cancel took */
    assert_int_equal(c.answers[1], 0);      /* the second found it cancelling */
    assert_false(cl_task_cancel(&a->task)); /* done */
    assert_false(cl_timer_armed(&a->task.timer));
    drop(a);
    world_free(w);
}

static void test_cancel_before_the_first_step(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 0, 0);
    assert_true(cl_task_cancel(&a->task));
    cl_loop_run(w->loop);
    assert_string_equal(w->log, ""); /* never ran, so nothing to clean up */
    assert_true(cl_future_cancelled(&a->task.fut));
    drop(a);
    world_free(w);
}

/* A cancel that arrives during the cleanup is refused; the cleanup finishes. */
static void test_cancel_during_cleanup_is_refused(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 50, 3);
    a->cleanup_ms = 100;
    struct canceller c;
    cancel_at(w->loop, &c, &a->task.fut, 100);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "A:start A:end A:cleanup");
    assert_int_equal(c.answers[0], 0);
    assert_int_equal(a->task.fut.err, 0);
    assert_int_equal(a->task.fut.value, 3);
    drop(a);
    world_free(w);
}

/* Cancelling a task that awaits another cancels that one too (asyncio does);
 * the awaiter resumes only after the awaited task's cleanup. */
static void test_cancel_reaches_the_awaited_task(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *c = worker(w, "C", LONG_MS, 0);
    c->cleanup_ms = 50;
    struct parent *p = parent(w, &c->task.fut);
    struct canceller k;
    cancel_at(w->loop, &k, &p->task.fut, 50);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "C:start P:start C:cleanup(cancelled) P:cleanup(cancelled)");
    assert_true(cl_future_cancelled(&p->task.fut));
    assert_true(cl_future_cancelled(&c->task.fut));
    cl_future_unref(&p->task.fut);
    drop(c);
    world_free(w);
}

/* Cancelled by itself: delivered at its next await. Cancelled after its last
 * await: it still ends cancelled (its return value is dropped), as in asyncio. */
static void test_self_cancel(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", LONG_MS, 1);
    a->cancel_self = true;
    struct worker *b = worker(w, "B", 50, 2);
    b->cancel_self_late = true;
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "A:start A:cleanup(cancelled) B:start B:end B:cleanup(cancelled)");
    assert_true(cl_future_cancelled(&a->task.fut));
    assert_true(cl_future_cancelled(&b->task.fut));
    drop(a);
    drop(b);
    world_free(w);
}

/* The awaited future completes, and the task is cancelled before it runs again:
 * the cancellation wins and the result is not seen. */
struct set_then_cancel {
    struct cl_timer timer;
    struct cl_future *f;
    struct cl_task *t;
};

static void set_then_cancel_cb(struct cl_timer *timer)
{
    struct set_then_cancel *s = (struct set_then_cancel *)timer;
    cl_future_set(s->f, 1);
    assert_true(cl_task_cancel(s->t));
}

static void test_cancel_while_ready(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct cl_future *f = cl_future_new(w->loop, "f");
    struct parent *p = parent(w, f);
    struct set_then_cancel s = {{.cb = set_then_cancel_cb}, f, &p->task};
    cl_timer_start(w->loop, &s.timer, CL_MS(50));
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "P:start P:cleanup(cancelled)");
    assert_true(cl_future_cancelled(&p->task.fut));
    assert_int_equal(f->value, 1); /* the future itself is not cancelled */
    cl_future_unref(&p->task.fut);
    cl_future_unref(f);
    world_free(w);
}

/* run_until returns false when nothing can complete the future any more, and
 * the report names what the task awaits. */
static void test_run_until_returns_when_nothing_can_happen(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct cl_future *f = cl_future_new(w->loop, "the reply");
    struct parent *p = parent(w, f);
    assert_false(cl_loop_run_until(w->loop, &p->task.fut));
    assert_string_equal(w->log, "P:start");
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    cl_task_report(fds[1], w->loop, 10);
    char buf[512] = {0};
    assert_true(read(fds[0], buf, sizeof buf - 1) > 0);
    assert_contains(buf, "  loop: not running (");
    assert_contains(buf, "  task 'P' #1: awaiting 'the reply'\n");
    close(fds[0]);
    close(fds[1]);
    cl_task_cancel(&p->task); /* cancels the future it awaits, too */
    assert_true(cl_loop_run_until(w->loop, &p->task.fut));
    assert_true(cl_future_cancelled(f));
    assert_string_equal(w->log, "P:start P:cleanup(cancelled)");
    cl_future_unref(&p->task.fut);
    cl_future_unref(f);
    world_free(w);
}

/* ---- fds ------------------------------------------------------------------------------ */

struct reader {
    struct cl_task task;
    struct world *w;
    int fd;
    char buf[16];
};

static int reader_run(struct cl_task *t)
{
    struct reader *r = (struct reader *)t;
    CL_BEGIN(t);
    say(r->w, "R:wait");
    CL_READABLE(t, r->fd);
    ssize_t n = read(r->fd, r->buf, sizeof r->buf - 1);
    say(r->w, "R:read %zd", n);
    CL_RETURN(t, n);
    CL_FINALLY(t);
    say(r->w, "R:cleanup%s", cancelled(t));
    CL_END(t);
}

struct writer_timer {
    struct cl_timer timer;
    int fd;
};

static void write_cb(struct cl_timer *t)
{
    struct writer_timer *wt = (struct writer_timer *)t;
    assert_int_equal(write(wt->fd, "data", 4), 4);
}

static void test_await_a_readable_fd(void **state)
{
    (void)state;
    struct world *w = world_new();
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    struct reader *r = (struct reader *)cl_task_new(w->loop, reader_run, sizeof *r, "reader");
    r->w = w;
    r->fd = p[0];
    struct writer_timer wt = {{.cb = write_cb}, p[1]};
    cl_timer_start(w->loop, &wt.timer, CL_MS(50));
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "R:wait R:read 4 R:cleanup");
    assert_string_equal(r->buf, "data");
    assert_false(r->task.io.active);

    /* Cancelled while it waits: the fd is unwatched and the cleanup runs. */
    w->log[0] = '\0';
    struct reader *r2 = (struct reader *)cl_task_new(w->loop, reader_run, sizeof *r2, "reader");
    r2->w = w;
    r2->fd = p[0];
    struct canceller c;
    cancel_at(w->loop, &c, &r2->task.fut, 50);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "R:wait R:cleanup(cancelled)");
    assert_false(r2->task.io.active);
    assert_int_equal(w->loop->active_ios, 0);
    cl_future_unref(&r->task.fut);
    cl_future_unref(&r2->task.fut);
    close(p[0]);
    close(p[1]);
    world_free(w);
}

/* epoll cannot watch a regular file: the task fails with EPERM and says why. */
static void test_await_a_regular_file_fails(void **state)
{
    (void)state;
    struct world *w = world_new();
    char path[] = "/tmp/cl_task_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct reader *r = (struct reader *)cl_task_new(w->loop, reader_run, sizeof *r, "reader");
    r->w = w;
    r->fd = fd;
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "R:wait R:cleanup");
    assert_int_equal(r->task.fut.err, EPERM);
    assert_contains(r->task.fut.msg, "regular file");
    cl_future_unref(&r->task.fut);
    close(fd);
    world_free(w);
}

/* ---- gather ------------------------------------------------------------------------------ */

static void test_gather(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 150, 1), *b = worker(w, "B", 50, 2),
                  *c = worker(w, "C", 100, 3);
    struct cl_future *futs[] = {&a->task.fut, &b->task.fut, &c->task.fut};
    struct cl_future *g = cl_gather_new(w->loop, futs, 3, 0);
    struct observer o = {.watch = {futs[0], futs[1], futs[2]}, .n = 3};
    observe(&o, g);
    assert_true(cl_loop_run_until(w->loop, g));
    assert_int_equal(g->err, 0);
    assert_int_equal(g->value, 3);
    assert_true(o.done[0] && o.done[1] && o.done[2]);
    assert_int_equal(a->task.fut.value, 1); /* results in argument order */
    assert_int_equal(b->task.fut.value, 2);
    assert_int_equal(c->task.fut.value, 3);
    assert_string_equal(w->log,
                        "A:start B:start C:start B:end B:cleanup C:end C:cleanup A:end A:cleanup");
    cl_future_unref(g);
    drop(a);
    drop(b);
    drop(c);
    world_free(w);
}

/* Without CL_RETURN_EXCEPTIONS the first failure completes the gather at once
 * while the others keep running; with it, every outcome waits on its task. */
static void test_gather_errors(void **state)
{
    (void)state;
    for (int keep = 0; keep < 2; keep++) {
        struct world *w = world_new();
        struct worker *a = worker(w, "A", 150, 1), *b = worker(w, "B", 50, 2),
                      *c = worker(w, "C", 100, 3);
        b->fail = true;
        struct cl_future *futs[] = {&a->task.fut, &b->task.fut, &c->task.fut};
        struct cl_future *g = cl_gather_new(w->loop, futs, 3, keep ? CL_RETURN_EXCEPTIONS : 0);
        struct observer o = {.watch = {futs[0], futs[1], futs[2]}, .n = 3};
        observe(&o, g);
        cl_loop_run(w->loop);
        if (keep) {
            assert_int_equal(g->err, 0);
            assert_true(o.done[0] && o.done[1] && o.done[2]);
        } else {
            assert_int_equal(g->err, EIO);
            assert_string_equal(g->msg, "boom");
            assert_true(!o.done[0] && o.done[1] && !o.done[2]);
        }
        assert_int_equal(b->task.fut.err, EIO); /* and the others finished */
        assert_int_equal(a->task.fut.value, 1);
        assert_int_equal(c->task.fut.value, 3);
        assert_string_equal(w->log,
                            "A:start B:start C:start B:cleanup C:end C:cleanup A:end A:cleanup");
        cl_future_unref(g);
        drop(a);
        drop(b);
        drop(c);
        world_free(w);
    }
}

/* Cancelling a gather cancels every task; it completes once they all have. */
static void test_gather_cancel(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", LONG_MS, 0), *b = worker(w, "B", LONG_MS, 0);
    a->cleanup_ms = 100;
    struct cl_future *futs[] = {&a->task.fut, &b->task.fut};
    struct cl_future *g = cl_gather_new(w->loop, futs, 2, 0);
    struct observer o = {.watch = {futs[0], futs[1]}, .n = 2};
    observe(&o, g);
    struct canceller c;
    cancel_at(w->loop, &c, g, 50);
    cl_loop_run(w->loop);
    assert_true(cl_future_cancelled(g));
    assert_true(o.done[0] && o.done[1]);
    assert_string_equal(w->log, "A:start B:start B:cleanup(cancelled) A:cleanup(cancelled)");
    cl_future_unref(g);
    drop(a);
    drop(b);
    world_free(w);
}

/* ---- wait ------------------------------------------------------------------------------------ */

/* Tasks of 50 ms, 100 ms (fails) and 150 ms: how many are done when each mode returns. */
static void test_wait_modes(void **state)
{
    (void)state;
    const enum cl_wait_mode modes[] = {CL_FIRST_COMPLETED, CL_FIRST_EXCEPTION, CL_ALL_COMPLETED};
    const intptr_t done_at_return[] = {1, 2, 3};
    for (int m = 0; m < 3; m++) {
        struct world *w = world_new();
        struct worker *a = worker(w, "A", 50, 0), *b = worker(w, "B", 100, 0),
                      *c = worker(w, "C", 150, 0);
        b->fail = true;
        struct cl_future *futs[] = {&a->task.fut, &b->task.fut, &c->task.fut};
        struct cl_future *wt = cl_wait_new(w->loop, futs, 3, modes[m], CL_FOREVER);
        struct observer o = {.watch = {futs[0], futs[1], futs[2]}, .n = 3};
        observe(&o, wt);
        cl_loop_run(w->loop);
        assert_int_equal(wt->err, 0); /* wait never fails */
        assert_int_equal(wt->value, done_at_return[m]);
        for (int i = 0; i < 3; i++)
            assert_int_equal(o.done[i], i < done_at_return[m]);
        assert_false(cl_future_cancelled(futs[2])); /* nothing is cancelled */
        cl_future_unref(wt);
        drop(a);
        drop(b);
        drop(c);
        world_free(w);
    }
}

/* A timeout returns what is done so far and cancels nothing; FIRST_EXCEPTION
 * with no failure waits for all. */
static void test_wait_timeout_and_no_exception(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 100, 0), *b = worker(w, "B", 150, 0);
    struct cl_future *futs[] = {&a->task.fut, &b->task.fut};
    struct cl_future *wt = cl_wait_new(w->loop, futs, 2, CL_ALL_COMPLETED, CL_MS(50));
    struct cl_future *fe = cl_wait_new(w->loop, futs, 2, CL_FIRST_EXCEPTION, CL_FOREVER);
    cl_loop_run(w->loop);
    assert_int_equal(wt->err, 0);
    assert_int_equal(wt->value, 0);
    assert_int_equal(fe->value, 2);
    assert_string_equal(w->log, "A:start B:start A:end A:cleanup B:end B:cleanup");
    cl_future_unref(wt);
    cl_future_unref(fe);
    drop(a);
    drop(b);
    world_free(w);
}

/* ---- wait_for and shield -------------------------------------------------------------------- */

/* A timeout cancels the task, waits for its cleanup, then fails with ETIMEDOUT. */
static void test_wait_for_timeout(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", LONG_MS, 0);
    a->cleanup_ms = 100;
    struct cl_future *wf = cl_wait_for_new(w->loop, &a->task.fut, CL_MS(50));
    struct observer o = {.watch = {&a->task.fut}, .n = 1};
    observe(&o, wf);
    cl_loop_run(w->loop);
    assert_int_equal(wf->err, ETIMEDOUT);
    assert_string_equal(wf->msg, "timed out");
    assert_true(o.done[0]); /* its cleanup had finished */
    assert_true(cl_future_cancelled(&a->task.fut));
    assert_string_equal(w->log, "A:start A:cleanup(cancelled)");
    cl_future_unref(wf);
    drop(a);
    world_free(w);
}

static void test_wait_for_in_time_and_cancelled(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 50, 9);
    struct cl_future *wf = cl_wait_for_new(w->loop, &a->task.fut, CL_MS(150));
    struct worker *b = worker(w, "B", LONG_MS, 0);
    struct cl_future *wb = cl_wait_for_new(w->loop, &b->task.fut, CL_MS(LONG_MS));
    struct canceller c;
    cancel_at(w->loop, &c, wb, 100);
    cl_loop_run(w->loop);
    assert_int_equal(wf->err, 0);
    assert_int_equal(wf->value, 9);
    assert_true(cl_future_cancelled(wb)); /* cancelling wait_for cancels the task */
    assert_true(cl_future_cancelled(&b->task.fut));
    assert_string_equal(w->log, "A:start B:start A:end A:cleanup B:cleanup(cancelled)");
    cl_future_unref(wf);
    cl_future_unref(wb);
    drop(a);
    drop(b);
    world_free(w);
}

/* A task awaiting a shield is cancelled at 50 ms; the shielded task runs on
 * and finishes at 150 ms with its result. */
static void test_shield(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 150, 5);
    struct cl_future *s = cl_shield_new(w->loop, &a->task.fut);
    struct parent *p = parent(w, s);
    struct canceller c;
    cancel_at(w->loop, &c, &p->task.fut, 50);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "A:start P:start P:cleanup(cancelled) A:end A:cleanup");
    assert_true(cl_future_cancelled(&p->task.fut));
    assert_true(cl_future_cancelled(s));
    assert_int_equal(a->task.fut.err, 0);
    assert_int_equal(a->task.fut.value, 5);
    cl_future_unref(&p->task.fut);
    cl_future_unref(s);
    drop(a);
    world_free(w);
}

/* wait_for(shield(task)): the timeout gives up waiting; the task is not touched. */
static void test_wait_for_a_shielded_task(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct worker *a = worker(w, "A", 150, 5);
    struct cl_future *s = cl_shield_new(w->loop, &a->task.fut);
    struct cl_future *wf = cl_wait_for_new(w->loop, s, CL_MS(50));
    struct observer o = {.watch = {&a->task.fut}, .n = 1};
    observe(&o, wf);
    cl_loop_run(w->loop);
    assert_int_equal(wf->err, ETIMEDOUT);
    assert_false(o.done[0]);
    assert_int_equal(a->task.fut.err, 0);
    assert_int_equal(a->task.fut.value, 5);
    assert_string_equal(w->log, "A:start A:end A:cleanup");
    cl_future_unref(wf);
    cl_future_unref(s);
    drop(a);
    world_free(w);
}

/* ---- task groups -------------------------------------------------------------------------------
 */

struct gparent {
    struct cl_task task;
    struct world *w;
    struct cl_group *g;
    struct worker *kids[3];
    uint64_t body_sleep_ms; /* before awaiting the group: the group is still open */
    bool fail_b;
};

static int gparent_run(struct cl_task *t)
{
    struct gparent *p = (struct gparent *)t;
    CL_BEGIN(t);
    p->g = cl_group_new(t->fut.loop, t);
    for (int i = 0; i < 3; i++) {
        static const char *const tags[] = {"A", "B", "C"};
        struct worker *k =
            (struct worker *)cl_group_spawn(p->g, worker_run, sizeof(struct worker), tags[i]);
        k->w = p->w;
        k->tag = tags[i];
        k->sleep_ms = 50 + 100 * (uint64_t)i; /* 50, 150, 250 ms */
        k->fail = p->fail_b && i == 1;
        p->kids[i] = k;
    }
    if (p->body_sleep_ms > 0)
        CL_SLEEP(t, CL_MS(p->body_sleep_ms));
    say(p->w, "G:await");
    CL_AWAIT(t, cl_group_wait(p->g));
    say(p->w, "G:ok");
    CL_FINALLY(t);
    say(p->w, "G:finally%s", cancelled(t));
    CL_AWAIT(t, cl_group_wait(p->g)); /* async with's exit: every task has finished */
    say(p->w, "G:after");
    CL_END(t);
}

static struct gparent *gparent(struct world *w, uint64_t body_sleep_ms, bool fail_b)
{
    struct gparent *p =
        (struct gparent *)cl_task_new(w->loop, gparent_run, sizeof(struct gparent), "G");
    p->w = w;
    p->body_sleep_ms = body_sleep_ms;
    p->fail_b = fail_b;
    return p;
}

static void gparent_free(struct world *w, struct gparent *p)
{
    cl_future_unref(cl_group_wait(p->g));
    cl_future_unref(&p->task.fut);
    world_free(w);
}

static void test_group_all_succeed(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct gparent *p = gparent(w, 0, false);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "G:await A:start B:start C:start A:end A:cleanup B:end B:cleanup "
                                "C:end C:cleanup G:ok G:finally G:after");
    assert_int_equal(p->task.fut.err, 0);
    assert_int_equal(cl_group_wait(p->g)->value, 3);
    gparent_free(w, p);
}

/* B fails at 150 ms: C is cancelled, the group fails with B's error (one
 * failure), and so does the parent that awaited it. */
static void test_group_failure_cancels_siblings(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct gparent *p = gparent(w, 0, true);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "G:await A:start B:start C:start A:end A:cleanup B:cleanup "
                                "C:cleanup(cancelled) G:finally");
    struct cl_future *g = cl_group_wait(p->g);
    assert_int_equal(g->err, EIO);
    assert_string_equal(g->msg, "boom");
    assert_int_equal(g->value, 1);
    assert_int_equal(p->task.fut.err, EIO);
    assert_true(cl_future_cancelled(&p->kids[2]->task.fut));
    gparent_free(w, p);
}

/* The parent is still in its body (a long sleep) when B fails: the group
 * cancels the parent too, whose cleanup awaits the group and ends with B's error. */
static void test_group_failure_cancels_the_parent(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct gparent *p = gparent(w, LONG_MS, true);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "A:start B:start C:start A:end A:cleanup B:cleanup "
                                "G:finally(cancelled) C:cleanup(cancelled)");
    assert_int_equal(p->task.fut.err, EIO);
    for (int i = 0; i < 3; i++)
        assert_true(p->kids[i]->task.fut.done); /* no task outlives the group */
    gparent_free(w, p);
}

/* The parent is cancelled from outside while its group is open: its cleanup's
 * wait cancels every task of the group, and it ends cancelled. */
static void test_group_parent_cancelled(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct gparent *p = gparent(w, LONG_MS, false);
    struct canceller c;
    cancel_at(w->loop, &c, &p->task.fut, 100);
    cl_loop_run(w->loop);
    assert_string_equal(w->log, "A:start B:start C:start A:end A:cleanup G:finally(cancelled) "
                                "B:cleanup(cancelled) C:cleanup(cancelled)");
    assert_true(cl_future_cancelled(&p->task.fut));
    assert_true(cl_future_cancelled(cl_group_wait(p->g)));
    assert_null(cl_group_spawn(p->g, worker_run, sizeof(struct worker), "late")); /* closed */
    gparent_free(w, p);
}

/* ---- the watchdog's report
 * ------------------------------------------------------------------------ */

struct report_probe {
    struct cl_timer timer;
    struct cl_loop *loop;
    struct cl_task *tasks[3];
    int fd;
    size_t max_lines;
};

static void report_cb(struct cl_timer *t)
{
    struct report_probe *r = (struct report_probe *)t;
    cl_task_report(r->fd, r->loop, r->max_lines);
    for (int i = 0; i < 3; i++)
        cl_task_cancel(r->tasks[i]);
}

static void test_report_names_what_each_task_awaits(void **state)
{
    (void)state;
    for (size_t max_lines = 1; max_lines <= 10; max_lines += 9) {
        struct world *w = world_new();
        int p[2], q[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
        struct worker *s = worker(w, "sleeper", LONG_MS, 0);
        struct cl_future *reply = cl_future_new(w->loop, "reply");
        struct parent *a = parent(w, reply);
        struct reader *r = (struct reader *)cl_task_new(w->loop, reader_run, sizeof *r, "reader");
        r->w = w;
        r->fd = q[0];
        struct report_probe probe = {
            {.cb = report_cb}, w->loop, {&s->task, &a->task, &r->task}, p[1], max_lines};
        cl_timer_start(w->loop, &probe.timer, CL_MS(50));
        cl_loop_run(w->loop);
        char buf[1024] = {0};
        assert_true(read(p[0], buf, sizeof buf - 1) > 0);
        assert_contains(buf, "  loop: running callbacks (");
        assert_contains(buf, "  task 'sleeper' #1: sleeping, due in ");
        if (max_lines == 1) {
            assert_contains(buf, "  ... and 2 more: 1 awaiting, 1 waiting for fd readable\n");
            assert_int_equal(count_lines(buf), 3);
        } else {
            assert_contains(buf, "  task 'P' #2: awaiting 'reply'\n");
            char line[64];
            snprintf(line, sizeof line, "  task 'reader' #3: waiting for fd readable %d\n", q[0]);
            assert_contains(buf, line);
            assert_int_equal(count_lines(buf), 4);
        }
        /* All finished: the report has the loop's line only. */
        memset(buf, 0, sizeof buf);
        cl_task_report(p[1], w->loop, 10);
        assert_true(read(p[0], buf, sizeof buf - 1) > 0);
        assert_int_equal(count_lines(buf), 1);
        drop(s);
        cl_future_unref(&a->task.fut);
        cl_future_unref(reply);
        cl_future_unref(&r->task.fut);
        for (int i = 0; i < 2; i++) {
            close(p[i]);
            close(q[i]);
        }
        world_free(w);
    }
}

/* A task hangs: the real watchdog, on its own thread, sees no progress and
 * names the task and what it awaits while the loop thread sits in epoll_wait. */
static void report_for_watchdog(int fd, void *arg)
{
    cl_task_report(fd, arg, 10);
}

static void stop_loop_on_fire(void *arg)
{
    cl_loop_stop(arg);
}

static void test_watchdog_names_a_hung_task(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct cl_future *item = cl_future_new(w->loop, "item from the producer");
    struct parent *p = parent(w, item);
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    struct cl_watchdog wd;
    struct cl_watchdog_cfg cfg = {
        .timeout_s = 0.2,
        .progress = cl_loop_progress,
        .report = report_for_watchdog,
        .fire = stop_loop_on_fire,
        .arg = w->loop,
        .fd = fds[1],
    };
    cl_loop_hold(w->loop); /* as if another thread were to set the item: wait for ever */
    cl_watchdog_start(&wd, &cfg);
    assert_false(cl_loop_run_until(w->loop, &p->task.fut));
    assert_true(cl_watchdog_stop(&wd));
    cl_loop_release(w->loop);
    char buf[2048] = {0};
    assert_true(read(fds[0], buf, sizeof buf - 1) > 0);
    assert_contains(buf, "watchdog: no progress for ");
    assert_contains(buf, "  loop: waiting in epoll_wait (");
    assert_contains(buf, "  task 'P' #1: awaiting 'item from the producer'\n");
    close(fds[0]);
    close(fds[1]);
    cl_future_unref(&p->task.fut);
    cl_future_unref(item);
    world_free(w); /* cancels P */
}

/* The registry read from another thread while thousands of tasks start and
 * finish (and its chunks grow): ThreadSanitizer checks that the report races
 * with nothing. */
struct reporter {
    pthread_t tid;
    struct cl_loop *loop;
    int fd;
    _Atomic bool stop;
    _Atomic uint64_t reports;
};

static void *reporter_main(void *arg)
{
    struct reporter *r = arg;
    while (!atomic_load(&r->stop)) {
        cl_task_report(r->fd, r->loop, 4);
        atomic_fetch_add(&r->reports, 1);
    }
    return NULL;
}

struct spawner {
    struct cl_task task;
    struct world *w;
    int round;
};

static int spawner_run(struct cl_task *t)
{
    struct spawner *s = (struct spawner *)t;
    CL_BEGIN(t);
    for (s->round = 0; s->round < 6; s->round++) {
        for (int i = 0; i < 1000; i++)
            drop(worker(s->w, "churn", (uint64_t)(i % 3), i));
        CL_SLEEP(t, CL_MS(5));
    }
    CL_END(t);
}

static void test_report_from_another_thread_races_with_nothing(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct reporter r = {.loop = w->loop};
    r.fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(r.fd >= 0);
    CL_PT(pthread_create(&r.tid, NULL, reporter_main, &r));
    struct spawner *s = (struct spawner *)cl_task_new(w->loop, spawner_run, sizeof *s, "spawner");
    s->w = w;
    cl_loop_run(w->loop);
    while (atomic_load(&r.reports) < 3)
        cl_sleep_ns(CL_MS(1));
    atomic_store(&r.stop, true);
    CL_PT(pthread_join(r.tid, NULL));
    assert_true(s->task.fut.done);
    assert_int_equal(cl_task_pending(w->loop), 0);
    close(r.fd);
    cl_future_unref(&s->task.fut);
    world_free(w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_cancels_pending_tasks),
        cmocka_unit_test(test_setting_a_task_dies),
        cmocka_unit_test(test_task_starts_at_the_next_iteration),
        cmocka_unit_test(test_sleeps_end_in_deadline_order),
        cmocka_unit_test(test_sleep_zero_yields),
        cmocka_unit_test(test_await_done_future_does_not_suspend),
        cmocka_unit_test(test_await_a_task_gets_its_value),
        cmocka_unit_test(test_errors_propagate_through_await),
        cmocka_unit_test(test_cancel_a_sleeping_task),
        cmocka_unit_test(test_cancel_before_the_first_step),
        cmocka_unit_test(test_cancel_during_cleanup_is_refused),
        cmocka_unit_test(test_cancel_reaches_the_awaited_task),
        cmocka_unit_test(test_self_cancel),
        cmocka_unit_test(test_cancel_while_ready),
        cmocka_unit_test(test_run_until_returns_when_nothing_can_happen),
        cmocka_unit_test(test_await_a_readable_fd),
        cmocka_unit_test(test_await_a_regular_file_fails),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_gather_errors),
        cmocka_unit_test(test_gather_cancel),
        cmocka_unit_test(test_wait_modes),
        cmocka_unit_test(test_wait_timeout_and_no_exception),
        cmocka_unit_test(test_wait_for_timeout),
        cmocka_unit_test(test_wait_for_in_time_and_cancelled),
        cmocka_unit_test(test_shield),
        cmocka_unit_test(test_wait_for_a_shielded_task),
        cmocka_unit_test(test_group_all_succeed),
        cmocka_unit_test(test_group_failure_cancels_siblings),
        cmocka_unit_test(test_group_failure_cancels_the_parent),
        cmocka_unit_test(test_group_parent_cancelled),
        cmocka_unit_test(test_report_names_what_each_task_awaits),
        cmocka_unit_test(test_watchdog_names_a_hung_task),
        cmocka_unit_test(test_report_from_another_thread_races_with_nothing),
    };
    return UNIT_MAIN("task", tests);
}
