/* cl_loop: the ready queue's order, the timer heap's order (against a sort),
 * timers that re-arm themselves, fds (and one stopped while ready in the same
 * wait), calls from other threads, stop and hold, the fds the loop owns, the
 * lag monitor, and the GIL around callbacks. Ordering tests use gaps of at
 * least 50 ms; no test bounds a duration from above. The forked test comes
 * first, before this process has started any thread. */
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "cl_check.h"
#include "cl_loop.h"
#include "cl_time.h"

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* A log of what ran, in order. */
struct log {
    int seq[64];
    int n;
};

static void note(struct log *l, int what)
{
    assert_true(l->n < 64);
    l->seq[l->n++] = what;
}

/* ---- fds the loop owns ---------------------------------------------------- */

static int new_loop_at_fd_limit(void *arg)
{
    (void)arg;
    /* Fill the table up to a limit of 64 fds, then free one: epoll_create1 gets
     * it, and eventfd finds none. */
    struct rlimit lim = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 10;
    int dups[64], n = 0, fd;
    while (n < 64 && (fd = dup(0)) >= 0)
        dups[n++] = fd;
    if (errno != EMFILE || n == 0)
        return 11;
    close(dups[--n]);
    struct cl_loop *loop = cl_loop_new(NULL);
    int rc = loop != NULL ? 12 : errno != EMFILE ? 13 : 0;
    fd = dup(0); /* the epoll fd was closed again: its slot is free */
    if (rc == 0 && fd != dups[n])
        rc = 14;
    close(fd);
    while (n > 0) /* LeakSanitizer needs an fd at exit */
        close(dups[--n]);
    return rc;
}

static void test_new_fails_cleanly_at_the_fd_limit(void **state)
{
    (void)state;
    if (RUNNING_ON_VALGRIND)
        skip(); /* valgrind keeps fds of its own above the limit and refuses setrlimit */
    struct child c;
    run_child(new_loop_at_fd_limit, NULL, 20, &c);
    assert_child_exit(&c, 0);
}

static void test_free_closes_both_fds(void **state)
{
    (void)state;
    int before = open_fds();
    struct cl_loop *loop = cl_loop_new(NULL);
    assert_non_null(loop);
    assert_int_equal(open_fds(), before + 2);
    assert_true(fcntl(loop->epfd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(loop->wakefd, F_GETFD) & FD_CLOEXEC);
    cl_loop_run(loop); /* nothing to do: returns at once */
    cl_loop_free(loop);
    assert_int_equal(open_fds(), before);
}

/* ---- the ready queue -------------------------------------------------------- */

struct soon {
    struct cl_loop *loop;
    struct log *log;
    int id;
    struct soon *then; /* queued by this one when it runs */
};

static void soon_cb(void *arg)
{
    struct soon *s = arg;
    note(s->log, s->id);
    if (s->then != NULL)
        cl_loop_call_soon(s->loop, soon_cb, s->then);
}

/* FIFO, and a callback queued by a callback runs after those already queued,
 * even when the ring has to grow past its first 64 entries. */
static void test_call_soon_order(void **state)
{
    (void)state;
    _Atomic uint64_t steps = 5; /* the counter a watchdog would read */
    struct cl_loop_opts opts = {.steps = &steps};
    struct cl_loop *loop = cl_loop_new(&opts);
    struct log log = {0};
    struct soon later = {loop, &log, 99, NULL};
    struct soon first = {loop, &log, 1, &later};
    struct soon second = {loop, &log, 2, NULL};
    cl_loop_call_soon(loop, soon_cb, &first);
    cl_loop_call_soon(loop, soon_cb, &second);
    cl_loop_run(loop);
    assert_int_equal(log.n, 3);
    assert_int_equal(log.seq[0], 1);
    assert_int_equal(log.seq[1], 2);
    assert_int_equal(log.seq[2], 99);

    struct log big = {0};
    struct soon many[60];
    for (int i = 0; i < 60; i++) {
        many[i] = (struct soon){loop, &big, i, NULL};
        cl_loop_call_soon(loop, soon_cb, &many[i]);
    }
    /* Wrap the ring: run half, then queue more than fit. */
    cl_loop_run(loop);
    assert_int_equal(big.n, 60);
    for (int i = 0; i < 60; i++)
        assert_int_equal(big.seq[i], i);
    assert_int_equal(atomic_load(&steps), 5 + 3 + 60); /* one per callback */
    cl_loop_free(loop);
}

/* ---- timers ------------------------------------------------------------------ */

struct marker {
    struct cl_timer timer;
    struct log *log;
    int id;
};

static void tm_cb(struct cl_timer *t)
{
    struct marker *m = (struct marker *)t;
    note(m->log, m->id);
}

static void test_timers_fire_in_deadline_order(void **state)
{
    (void)state;
    uint64_t t0 = cl_now_ns();
    struct cl_loop *loop = cl_loop_new(NULL);
    struct log log = {0};
    struct marker a = {{.cb = tm_cb}, &log, 150}, b = {{.cb = tm_cb}, &log, 50},
                  c = {{.cb = tm_cb}, &log, 100}, gone = {{.cb = tm_cb}, &log, -1};
    cl_timer_start(loop, &a.timer, CL_MS(150));
    cl_timer_start(loop, &b.timer, CL_MS(50));
    cl_timer_start(loop, &gone.timer, CL_MS(75));
    cl_timer_start(loop, &c.timer, CL_MS(1000));
    cl_timer_start(loop, &c.timer, CL_MS(100)); /* re-arming moves it */
    cl_timer_stop(loop, &gone.timer);
    assert_false(cl_timer_armed(&gone.timer));
    cl_timer_stop(loop, &gone.timer); /* twice is harmless */
    cl_loop_run(loop);
    assert_true(cl_now_ns() - t0 >= CL_MS(150)); /* never early */
    assert_int_equal(log.n, 3);
    assert_int_equal(log.seq[0], 50);
    assert_int_equal(log.seq[1], 100);
    assert_int_equal(log.seq[2], 150);
    assert_false(cl_timer_armed(&a.timer));
    cl_loop_free(loop);
}

/* Timers with the same deadline fire in the order they were armed. */
static void test_equal_deadlines_are_fifo(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    struct log log = {0};
    struct marker t[40];
    uint64_t at = cl_now_ns() + CL_MS(50);
    for (int i = 0; i < 40; i++) {
        t[i] = (struct marker){{.cb = tm_cb}, &log, i};
        cl_timer_start_at(loop, &t[i].timer, at);
    }
    cl_loop_run(loop);
    assert_int_equal(log.n, 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(log.seq[i], i);
    cl_loop_free(loop);
}

/* The 4-ary heap against a sort: 20,000 timers, all already due, armed at random
 * deadlines, a third of them stopped or moved at random; they must fire in
 * (deadline, arming order) order. No timing involved: every deadline is past. */
struct heap_timer {
    struct cl_timer timer;
    uint64_t at, seq;
    bool armed;
};

static uint64_t fired_count, fired_at_prev, fired_seq_prev;
static bool order_ok;

static void heap_cb(struct cl_timer *t)
{
    struct heap_timer *h = (struct heap_timer *)t;
    if (!h->armed)
        order_ok = false; /* a stopped timer fired */
    if (fired_count > 0 &&
        (h->at < fired_at_prev || (h->at == fired_at_prev && h->seq < fired_seq_prev)))
        order_ok = false;
    fired_at_prev = h->at;
    fired_seq_prev = h->seq;
    h->armed = false;
    fired_count++;
}

static void test_heap_order_against_a_sort(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct cl_loop *loop = cl_loop_new(NULL);
    struct heap_timer *h = cl_xcalloc(N, sizeof *h);
    uint64_t base = cl_now_ns() - CL_MS(1000), rng = 42, seq = 0;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        h[i].timer.cb = heap_cb;
        h[i].at = base + (rng >> 33) % 5000; /* many equal deadlines */
        h[i].seq = seq++;
        h[i].armed = true;
        cl_timer_start_at(loop, &h[i].timer, h[i].at);
    }
    uint64_t expect = N;
    for (int i = 0; i < N; i += 3) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        if ((rng >> 40) & 1) {
            cl_timer_stop(loop, &h[i].timer);
            h[i].armed = false;
            expect--;
        } else {
            h[i].at = base + (rng >> 33) % 5000;
            h[i].seq = seq++;
            cl_timer_start_at(loop, &h[i].timer, h[i].at);
        }
    }
    assert_int_equal(loop->nheap, expect);
    fired_count = 0;
    order_ok = true;
    cl_loop_run(loop);
    assert_true(order_ok);
    assert_int_equal(fired_count, expect);
    assert_int_equal(loop->nheap, 0);
    free(h);
    cl_loop_free(loop);
}

/* A zero-delay timer that re-arms itself fires once per iteration, so the ready
 * queue still runs between its firings (libuv #4245 spun instead). */
struct rearm {
    struct cl_timer timer;
    struct cl_loop *loop;
    struct log *log;
    int left;
};

static void rearm_cb(struct cl_timer *t)
{
    struct rearm *r = (struct rearm *)t;
    note(r->log, 'T');
    if (--r->left > 0)
        cl_timer_start(r->loop, &r->timer, 0);
}

struct chain {
    struct cl_loop *loop;
    struct log *log;
    int left;
};

static void chain_cb(void *arg)
{
    struct chain *c = arg;
    note(c->log, 'C');
    if (--c->left > 0)
        cl_loop_call_soon(c->loop, chain_cb, c);
}

static void test_zero_delay_timer_does_not_spin(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    struct log log = {0};
    struct rearm r = {{.cb = rearm_cb}, loop, &log, 4};
    struct chain c = {loop, &log, 4};
    cl_timer_start(loop, &r.timer, 0);
    cl_loop_call_soon(loop, chain_cb, &c);
    cl_loop_run(loop);
    assert_int_equal(log.n, 8);
    int timers = 0;
    for (int i = 0; i < 8; i++) {
        timers += log.seq[i] == 'T';
        /* never two timer firings without a ready callback between them */
        if (i > 0 && log.seq[i] == 'T')
            assert_int_equal(log.seq[i - 1], 'C');
    }
    assert_int_equal(timers, 4);
    cl_loop_free(loop);
}

/* ---- fds ----------------------------------------------------------------------- */

struct reader {
    struct cl_io io;
    struct cl_loop *loop;
    struct cl_io *other; /* stopped by this one's callback */
    int calls;
    char got[16];
};

static void reader_cb(struct cl_io *io, uint32_t revents)
{
    struct reader *r = (struct reader *)io;
    assert_true(revents & EPOLLIN);
    r->calls++;
    ssize_t n = read(io->fd, r->got, sizeof r->got - 1);
    assert_true(n > 0);
    r->got[n] = '\0';
    cl_io_stop(r->loop, io);
    if (r->other != NULL)
        cl_io_stop(r->loop, r->other);
}

static void test_fd_readiness(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    struct reader r = {.loop = loop};
    assert_int_equal(cl_io_start(loop, &r.io, p[0], EPOLLIN, reader_cb), 0);
    assert_int_equal(write(p[1], "hello", 5), 5);
    cl_loop_run(loop); /* returns once the watcher is stopped */
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.got, "hello");
    assert_false(r.io.active);
    close(p[0]);
    close(p[1]);
    cl_loop_free(loop);
}

static void pair(struct reader *a, struct reader *b)
{
    a->other = &b->io;
    b->other = &a->io;
}

/* Two fds ready in the same wait; whichever runs first stops the other, which
 * must then not be called, although epoll already reported it. */
static void test_stop_a_watcher_ready_in_the_same_wait(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    int a[2], b[2];
    assert_int_equal(pipe2(a, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pipe2(b, O_CLOEXEC | O_NONBLOCK), 0);
    struct reader r[2] = {{.loop = loop}, {.loop = loop}};
    pair(&r[0], &r[1]);
    assert_int_equal(cl_io_start(loop, &r[0].io, a[0], EPOLLIN, reader_cb), 0);
    assert_int_equal(cl_io_start(loop, &r[1].io, b[0], EPOLLIN, reader_cb), 0);
    assert_int_equal(write(a[1], "a", 1), 1);
    assert_int_equal(write(b[1], "b", 1), 1);
    cl_loop_run(loop);
    assert_int_equal(r[0].calls + r[1].calls, 1);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    cl_loop_free(loop);
}

/* A callback that keeps queueing itself never starves the fds: epoll_wait is
 * skipped while callbacks are ready, but at most CL_LOOP_POLL_EVERY times. */
struct spinner {
    struct cl_loop *loop;
    int runs;
    bool stop;
};

static void spin_cb(void *arg)
{
    struct spinner *s = arg;
    s->runs++;
    if (!s->stop)
        cl_loop_call_soon(s->loop, spin_cb, s);
}

struct stopping_reader {
    struct cl_io io;
    struct spinner *spinner;
    int runs_then;
};

static void stopping_reader_cb(struct cl_io *io, uint32_t revents)
{
    (void)revents;
    struct stopping_reader *r = (struct stopping_reader *)io;
    r->runs_then = r->spinner->runs;
    r->spinner->stop = true;
    cl_io_stop(r->spinner->loop, io);
}

static void test_busy_loop_still_polls_fds(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    struct spinner s = {loop, 0, false};
    struct stopping_reader r = {.spinner = &s};
    assert_int_equal(cl_io_start(loop, &r.io, p[0], EPOLLIN, stopping_reader_cb), 0);
    cl_loop_call_soon(loop, spin_cb, &s);
    cl_loop_run(loop);
    assert_true(r.runs_then >= 1);
    assert_true(r.runs_then <= CL_LOOP_POLL_EVERY);
    close(p[0]);
    close(p[1]);
    cl_loop_free(loop);
}

static void never_cb(struct cl_io *io, uint32_t revents)
{
    (void)io;
    (void)revents;
    fail_msg("called");
}

/* epoll cannot watch a regular file: the error comes back, nothing is kept. */
static void test_regular_file_is_eperm(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    char path[] = "/tmp/cl_loop_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct cl_io io = {0};
    assert_int_equal(cl_io_start(loop, &io, fd, EPOLLIN, never_cb), EPERM);
    assert_false(io.active);
    cl_loop_run(loop); /* nothing keeps it alive */
    close(fd);
    cl_loop_free(loop);
}

/* ---- other threads --------------------------------------------------------------- */

#define POSTERS 4
#define POSTS   2000

struct post_state {
    struct cl_loop *loop;
    pthread_t loop_thread;
    int last[POSTERS]; /* last sequence number seen from each poster */
    int received;
    bool wrong_thread, out_of_order;
};

struct post {
    struct post_state *st;
    int poster, seq;
};

static void post_cb(void *arg)
{
    struct post *p = arg;
    struct post_state *st = p->st;
    if (!pthread_equal(pthread_self(), st->loop_thread))
        st->wrong_thread = true;
    if (p->seq != st->last[p->poster] + 1)
        st->out_of_order = true;
    st->last[p->poster] = p->seq;
    if (++st->received == POSTERS * POSTS)
        cl_loop_release(st->loop);
}

struct poster {
    pthread_t tid;
    struct post_state *st;
    struct post posts[POSTS];
    int id;
};

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < POSTS; i++) {
        p->posts[i] = (struct post){p->st, p->id, i + 1};
        cl_loop_call_soon_threadsafe(p->st->loop, post_cb, &p->posts[i]);
    }
    return NULL;
}

/* Every call from another thread runs once, on the loop thread, in each
 * sender's order; the eventfd is written at most once per call (usually far
 * less: sends before the loop drains share a wake-up). */
static void test_call_soon_threadsafe(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    struct post_state st = {.loop = loop, .loop_thread = pthread_self()};
    struct poster *posters = cl_xcalloc(POSTERS, sizeof *posters);
    cl_loop_hold(loop); /* released by the last call */
    for (int i = 0; i < POSTERS; i++) {
        posters[i].st = &st;
        posters[i].id = i;
        CL_PT(pthread_create(&posters[i].tid, NULL, poster_main, &posters[i]));
    }
    cl_loop_run(loop);
    for (int i = 0; i < POSTERS; i++)
        CL_PT(pthread_join(posters[i].tid, NULL));
    assert_int_equal(st.received, POSTERS * POSTS);
    assert_false(st.wrong_thread);
    assert_false(st.out_of_order);
    assert_int_equal(atomic_load(&loop->ts_posts), POSTERS * POSTS);
    uint64_t wakes = atomic_load(&loop->ts_wakes);
    assert_true(wakes >= 1 && wakes <= (uint64_t)POSTERS * POSTS);
    free(posters);
    cl_loop_free(loop);
}

static void *stop_later(void *arg)
{
    cl_sleep_ns(CL_MS(50));
    cl_loop_stop(arg);
    return NULL;
}

/* A held loop waits forever; cl_loop_stop from another thread ends the run. */
static void test_stop_from_another_thread(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    cl_loop_hold(loop);
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, stop_later, loop));
    cl_loop_run(loop);
    CL_PT(pthread_join(t, NULL));
    cl_loop_release(loop);
    cl_loop_run(loop); /* the stop was used up; nothing left to do */
    cl_loop_free(loop);
}

/* ---- the lag monitor ----------------------------------------------------------------- */

struct blocker {
    struct cl_timer timer;
    struct cl_lag_monitor *mon;
};

static void block_cb(struct cl_timer *t)
{
    (void)t;
    cl_sleep_ns(CL_MS(300)); /* a blocking call on the loop thread */
}

static void end_cb(struct cl_timer *t)
{
    cl_lag_stop(((struct blocker *)t)->mon);
}

/* A callback that blocks 300 ms makes the 50 ms monitor fire at least 250 ms
 * late, which is above the 100 ms threshold: a warning line and a sample in a
 * bucket of 200 ms or more. The monitor alone does not keep the loop alive. */
static void test_lag_monitor_sees_a_blocked_loop(void **state)
{
    (void)state;
    struct cl_loop *loop = cl_loop_new(NULL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    struct cl_lag_monitor mon;
    cl_lag_start(&mon, loop, CL_MS(50), CL_MS(100), p[1]);
    cl_loop_run(loop); /* only the monitor: returns at once */
    struct blocker b = {{.cb = block_cb}, &mon}, end = {{.cb = end_cb}, &mon};
    cl_timer_start(loop, &b.timer, CL_MS(10));
    cl_timer_start(loop, &end.timer, CL_MS(450));
    cl_loop_run(loop);
    assert_false(cl_timer_armed(&mon.timer));
    uint64_t samples = atomic_load(&mon.samples);
    assert_true(samples >= 1);
    assert_true(atomic_load(&mon.max_ns) >= CL_MS(250));
    assert_true(atomic_load(&mon.warnings) >= 1);
    char buf[512] = {0};
    assert_true(read(p[0], buf, sizeof buf - 1) > 0);
    assert_contains(buf, "loop lag: a timer ran ");
    assert_contains(buf, "ms late (threshold 100.0 ms)");
    uint64_t high = 0;
    for (int i = 0; i < CL_LAG_BUCKETS; i++)
        if (cl_lag_bucket_us[i] > 200000)
            high += atomic_load(&mon.buckets[i]);
    assert_true(high >= 1);
    assert_true(cl_lag_percentile_us(&mon, 1.0) > 200000);
    close(p[0]);
    close(p[1]);
    cl_loop_free(loop);
}

/* The monitor's samples are no progress of the program: a loop that only
 * samples its lag (its tasks all stuck) leaves the watchdog's count alone, so
 * the watchdog still sees the stall. The program's own timers count. */
static uint64_t seen_samples, seen_early;

static void on_sample(struct cl_lag_monitor *m, uint64_t due_ns, uint64_t ran_ns)
{
    (void)m;
    seen_samples++;
    seen_early += ran_ns < due_ns;
}

/* ... and each sample reaches on_sample, never early. */
static void test_lag_monitor_is_not_progress(void **state)
{
    (void)state;
    _Atomic uint64_t steps = 0;
    struct cl_loop_opts opts = {.steps = &steps};
    struct cl_loop *loop = cl_loop_new(&opts);
    struct cl_lag_monitor mon;
    cl_lag_start(&mon, loop, CL_MS(5), CL_MS(1000), -1);
    mon.on_sample = on_sample;
    struct blocker end = {{.cb = end_cb}, &mon};
    cl_timer_start(loop, &end.timer, CL_MS(100));
    cl_loop_run(loop);
    assert_true(atomic_load(&mon.samples) >= 5);
    assert_int_equal(seen_samples, atomic_load(&mon.samples));
    assert_int_equal(seen_early, 0);
    assert_int_equal(atomic_load(&steps), 1); /* the end timer's callback alone */
    cl_loop_free(loop);
}

/* The heartbeat counts while a timer of the program's is due (the first beat,
 * at 10 ms, comes before the 100 ms timer whatever the load), never after it
 * has fired, and not at all once stopped. */
static void test_heartbeat_while_a_timer_is_due(void **state)
{
    (void)state;
    _Atomic uint64_t steps = 0;
    struct cl_loop_opts opts = {.steps = &steps, .heartbeat_ns = CL_MS(10)};
    struct cl_loop *loop = cl_loop_new(&opts);
    struct log log = {0};
    struct marker m = {{.cb = tm_cb}, &log, 1};
    cl_timer_start(loop, &m.timer, CL_MS(100));
    cl_loop_run(loop); /* returns: the heartbeat alone does not keep it going */
    assert_int_equal(log.n, 1);
    uint64_t n = atomic_load(&steps);
    assert_true(n >= 2 && n <= 11); /* the timer, and one beat every 10 ms before it */
    cl_loop_heartbeat_stop(loop);
    cl_timer_start(loop, &m.timer, CL_MS(30));
    cl_loop_run(loop);
    assert_int_equal(atomic_load(&steps), n + 1); /* the timer alone */
    cl_loop_free(loop);
}

/* The percentile reads the histogram: 90 samples under 0.1 ms, 10 near 150 ms. */
static void test_lag_percentile(void **state)
{
    (void)state;
    struct cl_lag_monitor m = {0};
    assert_int_equal(cl_lag_percentile_us(&m, 0.5), 0);
    atomic_store(&m.buckets[0], 90);
    atomic_store(&m.buckets[10], 10); /* 100 .. 200 ms */
    atomic_store(&m.samples, 100);
    assert_int_equal(cl_lag_percentile_us(&m, 0.5), 100);
    assert_int_equal(cl_lag_percentile_us(&m, 0.9), 100);
    assert_int_equal(cl_lag_percentile_us(&m, 0.95), 200000);
    assert_int_equal(cl_lag_percentile_us(&m, 1.0), 200000);
}

/* ---- the GIL ----------------------------------------------------------------------------- */

struct gil_probe {
    struct cl_loop *loop;
    struct cl_gil *gil;
    int owner_in_callback;
    _Atomic bool took_it;
};

static void gil_probe_cb(void *arg)
{
    struct gil_probe *g = arg;
    g->owner_in_callback = atomic_load(&g->gil->owner);
    cl_loop_release(g->loop);
}

/* Waits until the loop thread is in epoll_wait, takes the GIL (which works only
 * if the loop let it go), then sends the loop a callback. */
static void *take_while_loop_waits(void *arg)
{
    struct gil_probe *g = arg;
    const char *phase;
    while ((phase = atomic_load(&g->loop->phase)) == NULL ||
           strncmp(phase, "waiting in epoll_wait", 21) != 0)
        cl_sleep_ns(CL_MS(1));
    struct cl_gil_thread me = {.id = 1};
    cl_gil_take(g->gil, &me);
    atomic_store(&g->took_it, true);
    cl_gil_drop(g->gil, &me);
    cl_loop_call_soon_threadsafe(g->loop, gil_probe_cb, g);
    return NULL;
}

/* With a GIL, the loop thread releases it while it waits in epoll_wait and
 * holds it while callbacks run, as CPython's does. */
static void test_gil_held_around_callbacks(void **state)
{
    (void)state;
    struct cl_gil gil;
    assert_int_equal(cl_gil_init(&gil, CL_MS(5)), 0);
    struct cl_loop_opts opts = {.gil = &gil, .gil_id = 0};
    struct cl_loop *loop = cl_loop_new(&opts);
    struct gil_probe g = {.loop = loop, .gil = &gil, .owner_in_callback = -2};
    cl_loop_hold(loop); /* released by the callback */
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, take_while_loop_waits, &g));
    cl_loop_run(loop);
    CL_PT(pthread_join(t, NULL));
    assert_true(atomic_load(&g.took_it));
    assert_int_equal(g.owner_in_callback, 0);
    assert_int_equal(atomic_load(&gil.owner), -1); /* released when the run ends */
    assert_true(loop->gil_thread.takes >= 2);
    cl_loop_free(loop);
    cl_gil_destroy(&gil);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_fails_cleanly_at_the_fd_limit),
        cmocka_unit_test(test_free_closes_both_fds),
        cmocka_unit_test(test_call_soon_order),
        cmocka_unit_test(test_timers_fire_in_deadline_order),
        cmocka_unit_test(test_equal_deadlines_are_fifo),
        cmocka_unit_test(test_heap_order_against_a_sort),
        cmocka_unit_test(test_zero_delay_timer_does_not_spin),
        cmocka_unit_test(test_fd_readiness),
        cmocka_unit_test(test_stop_a_watcher_ready_in_the_same_wait),
        cmocka_unit_test(test_busy_loop_still_polls_fds),
        cmocka_unit_test(test_regular_file_is_eperm),
        cmocka_unit_test(test_call_soon_threadsafe),
        cmocka_unit_test(test_stop_from_another_thread),
        cmocka_unit_test(test_lag_monitor_sees_a_blocked_loop),
        cmocka_unit_test(test_lag_monitor_is_not_progress),
        cmocka_unit_test(test_heartbeat_while_a_timer_is_due),
        cmocka_unit_test(test_lag_percentile),
        cmocka_unit_test(test_gil_held_around_callbacks),
    };
    return UNIT_MAIN("loop", tests);
}
