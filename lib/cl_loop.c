#include "cl_loop.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_time.h"

static void *xrealloc(void *p, size_t n, size_t size)
{
    void *q = reallocarray(p, n, size);
    if (q == NULL)
        cl_die(__FILE__, __LINE__, "reallocarray", ENOMEM);
    return q;
}

/* Only the loop thread writes these; the watchdog reads them. */
static void set_phase(struct cl_loop *loop, const char *phase)
{
    atomic_store_explicit(&loop->phase, phase, memory_order_relaxed);
}

static void count_step(struct cl_loop *loop)
{
    uint64_t n = atomic_load_explicit(loop->steps, memory_order_relaxed);
    atomic_store_explicit(loop->steps, n + 1, memory_order_relaxed);
}

/* opts.heartbeat_ns: a timer of the program's is still due, so the loop waits
 * for it; it is not stuck. */
static void heartbeat(struct cl_timer *t)
{
    struct cl_loop *loop = (struct cl_loop *)((char *)t - offsetof(struct cl_loop, heartbeat));
    if (loop->nheap > loop->background_timers)
        count_step(loop);
    cl_timer_start(loop, t, loop->heartbeat_ns);
}

/* Between two callbacks, as CPython's eval loop checks between bytecodes: hand
 * the GIL over if a thread has asked for it. */
static void gil_check(struct cl_loop *loop)
{
    if (loop->gil != NULL)
        cl_gil_check(loop->gil, &loop->gil_thread);
}

/* ---- the ready queue ------------------------------------------------------ */

void cl_loop_call_soon(struct cl_loop *loop, cl_loop_fn *fn, void *arg)
{
    if (loop->ready_len == loop->ready_cap) {
        /* Grow and unwrap: the ring's items end up at 0 .. len-1. */
        size_t cap = loop->ready_cap * 2;
        struct cl_call *ring = xrealloc(NULL, cap, sizeof *ring);
        for (size_t i = 0; i < loop->ready_len; i++)
            ring[i] = loop->ready[(loop->ready_head + i) & (loop->ready_cap - 1)];
        free(loop->ready);
        loop->ready = ring;
        loop->ready_head = 0;
        loop->ready_cap = cap;
    }
    size_t tail = (loop->ready_head + loop->ready_len) & (loop->ready_cap - 1);
    loop->ready[tail] = (struct cl_call){fn, arg};
    loop->ready_len++;
}

/* Run the callbacks that are queued now; those they queue wait for the next
 * iteration. */
static void run_ready(struct cl_loop *loop)
{
    for (size_t n = loop->ready_len; n > 0; n--) {
        struct cl_call c = loop->ready[loop->ready_head];
        loop->ready_head = (loop->ready_head + 1) & (loop->ready_cap - 1);
        loop->ready_len--;
        c.fn(c.arg);
        count_step(loop);
        gil_check(loop);
    }
}

/* ---- timers: a 4-ary min-heap ---------------------------------------------- */

static bool before(const struct cl_heap_entry *a, const struct cl_heap_entry *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void place(struct cl_loop *loop, size_t i, struct cl_heap_entry e)
{
    loop->heap[i] = e;
    e.timer->slot = (uint32_t)(i + 1);
}

/* Move e up from the hole at i to where it belongs. */
static void sift_up(struct cl_loop *loop, size_t i, struct cl_heap_entry e)
{
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!before(&e, &loop->heap[parent]))
            break;
        place(loop, i, loop->heap[parent]);
        i = parent;
    }
    place(loop, i, e);
}

/* Move e down from the hole at i: each step takes the earliest of four children. */
static void sift_down(struct cl_loop *loop, size_t i, struct cl_heap_entry e)
{
    size_t n = loop->nheap;
    for (;;) {
        size_t first = 4 * i + 1;
        if (first >= n)
            break;
        size_t last = first + 4 < n ? first + 4 : n;
        size_t min = first;
        for (size_t c = first + 1; c < last; c++)
            if (before(&loop->heap[c], &loop->heap[min]))
                min = c;
        if (!before(&loop->heap[min], &e))
            break;
        place(loop, i, loop->heap[min]);
        i = min;
    }
    place(loop, i, e);
}

/* Take the entry at i out, filling its hole with the last entry. */
static void heap_remove(struct cl_loop *loop, size_t i)
{
    struct cl_timer *t = loop->heap[i].timer;
    t->slot = 0;
    if (t->background)
        loop->background_timers--;
    struct cl_heap_entry last = loop->heap[--loop->nheap];
    if (i == loop->nheap)
        return;
    if (i > 0 && before(&last, &loop->heap[(i - 1) / 4]))
        sift_up(loop, i, last);
    else
        sift_down(loop, i, last);
}

void cl_timer_start_at(struct cl_loop *loop, struct cl_timer *t, uint64_t at_ns)
{
    cl_timer_stop(loop, t);
    if (loop->nheap == loop->heap_cap) {
        if (loop->heap_cap >= UINT32_MAX / 2)
            cl_fatal("cl_timer_start: more than %u timers armed at once", UINT32_MAX / 2);
        loop->heap_cap *= 2;
        loop->heap = xrealloc(loop->heap, loop->heap_cap, sizeof *loop->heap);
    }
    if (t->background)
        loop->background_timers++;
    struct cl_heap_entry e = {at_ns, loop->timer_seq++, t};
    sift_up(loop, loop->nheap++, e);
}

void cl_timer_start(struct cl_loop *loop, struct cl_timer *t, uint64_t delay_ns)
{
    cl_timer_start_at(loop, t, cl_now_ns() + delay_ns);
}

void cl_timer_stop(struct cl_loop *loop, struct cl_timer *t)
{
    if (t->slot != 0)
        heap_remove(loop, t->slot - 1);
}

/* Fire the timers that are due. A timer armed from here on waits for the next
 * pass even if it is already due (a zero-delay timer re-armed by its own callback
 * would otherwise spin here forever: libuv #4245). */
static void run_timers(struct cl_loop *loop)
{
    uint64_t limit = loop->timer_seq;
    while (loop->nheap > 0 && loop->heap[0].at <= loop->now_ns && loop->heap[0].seq < limit) {
        struct cl_timer *t = loop->heap[0].timer;
        bool background = t->background;
        heap_remove(loop, 0);
        t->cb(t);
        if (!background) /* the lag monitor ticking is no progress of the program's */
            count_step(loop);
        gil_check(loop);
    }
}

/* ---- fds ------------------------------------------------------------------- */

int cl_io_start(struct cl_loop *loop, struct cl_io *io, int fd, uint32_t events,
                void (*cb)(struct cl_io *io, uint32_t revents))
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op = io->active ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (io->active && io->fd != fd) {
        cl_io_stop(loop, io);
        op = EPOLL_CTL_ADD;
    }
    if (epoll_ctl(loop->epfd, op, fd, &ev) == -1)
        return errno;
    if (!io->active && !io->background)
        loop->active_ios++;
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->active = true;
    return 0;
}

void cl_io_stop(struct cl_loop *loop, struct cl_io *io)
{
    if (!io->active)
        return;
    /* The fd may already be closed (then epoll dropped it itself): ignore errors. */
    (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->active = false;
    if (!io->background)
        loop->active_ios--;
    /* It may be ready later in this wait's batch: forget it there. */
    for (int i = loop->ievent + 1; i < loop->nevents; i++)
        if (loop->events[i].data.ptr == io)
            loop->events[i].data.ptr = NULL;
}

static void run_io(struct cl_loop *loop)
{
    for (loop->ievent = 0; loop->ievent < loop->nevents; loop->ievent++) {
        struct cl_io *io = loop->events[loop->ievent].data.ptr;
        if (io == NULL)
            continue;
        bool background = io->background;
        io->cb(io, loop->events[loop->ievent].events);
        if (!background) /* the calls the eventfd brings count when they run */
            count_step(loop);
        gil_check(loop);
    }
    loop->nevents = 0;
}

/* ---- calls from other threads ------------------------------------------------ */

void cl_loop_call_soon_threadsafe(struct cl_loop *loop, cl_loop_fn *fn, void *arg)
{
    CL_PT(pthread_mutex_lock(&loop->ts_mu));
    if (loop->ts_len == loop->ts_cap) {
        loop->ts_cap = loop->ts_cap == 0 ? 16 : loop->ts_cap * 2;
        loop->ts_calls = xrealloc(loop->ts_calls, loop->ts_cap, sizeof *loop->ts_calls);
    }
    loop->ts_calls[loop->ts_len++] = (struct cl_call){fn, arg};
    /* Only the first call since the loop last drained writes the eventfd. */
    bool first = !atomic_load_explicit(&loop->ts_pending, memory_order_relaxed);
    atomic_store_explicit(&loop->ts_pending, true, memory_order_relaxed);
    atomic_fetch_add_explicit(&loop->ts_posts, 1, memory_order_relaxed);
    CL_PT(pthread_mutex_unlock(&loop->ts_mu));
    if (first) {
        atomic_fetch_add_explicit(&loop->ts_wakes, 1, memory_order_relaxed);
        uint64_t one = 1;
        /* Cannot block (EFD_NONBLOCK), and EAGAIN means a wake-up is pending. */
        (void)!write(loop->wakefd, &one, sizeof one);
    }
}

/* The eventfd is readable: take the queued calls and run them. Reading the
 * eventfd before taking the queue loses nothing: a call queued after the swap
 * sees ts_pending false and writes again. */
static void drain_threadsafe(struct cl_io *io, uint32_t revents)
{
    (void)revents;
    struct cl_loop *loop = (struct cl_loop *)((char *)io - offsetof(struct cl_loop, wake_io));
    uint64_t count;
    (void)!read(loop->wakefd, &count, sizeof count);
    CL_PT(pthread_mutex_lock(&loop->ts_mu));
    struct cl_call *calls = loop->ts_calls;
    size_t n = loop->ts_len, cap = loop->ts_cap;
    loop->ts_calls = loop->ts_spare;
    loop->ts_cap = loop->ts_spare_cap;
    loop->ts_len = 0;
    atomic_store_explicit(&loop->ts_pending, false, memory_order_relaxed);
    CL_PT(pthread_mutex_unlock(&loop->ts_mu));
    for (size_t i = 0; i < n; i++)
        cl_loop_call_soon(loop, calls[i].fn, calls[i].arg);
    loop->ts_spare = calls;
    loop->ts_spare_cap = cap;
}

static void wake(struct cl_loop *loop)
{
    uint64_t one = 1;
    (void)!write(loop->wakefd, &one, sizeof one);
}

void cl_loop_stop(struct cl_loop *loop)
{
    atomic_store_explicit(&loop->stop, true, memory_order_relaxed);
    wake(loop); /* in case another thread asks while the loop waits */
}

void cl_loop_hold(struct cl_loop *loop)
{
    atomic_fetch_add_explicit(&loop->holds, 1, memory_order_relaxed);
}

void cl_loop_release(struct cl_loop *loop)
{
    atomic_fetch_sub_explicit(&loop->holds, 1, memory_order_relaxed);
    wake(loop); /* an idle loop may now return */
}

/* ---- the loop ------------------------------------------------------------------ */

struct cl_loop *cl_loop_new(const struct cl_loop_opts *opts)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd == -1)
        return NULL;
    int wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakefd == -1) {
        int err = errno;
        close(epfd);
        errno = err;
        return NULL;
    }
    struct cl_loop *loop = cl_xcalloc(1, sizeof *loop);
    loop->epfd = epfd;
    loop->wakefd = wakefd;
    loop->ready_cap = 64;
    loop->ready = xrealloc(NULL, loop->ready_cap, sizeof *loop->ready);
    loop->heap_cap = 64;
    loop->heap = xrealloc(NULL, loop->heap_cap, sizeof *loop->heap);
    CL_PT(pthread_mutex_init(&loop->ts_mu, NULL));
    atomic_init(&loop->ts_pending, false);
    atomic_init(&loop->ts_posts, 0);
    atomic_init(&loop->ts_wakes, 0);
    atomic_init(&loop->holds, 0);
    atomic_init(&loop->stop, false);
    atomic_init(&loop->phase, "not running");
    atomic_init(&loop->running, NULL);
    atomic_init(&loop->own_steps, 0);
    loop->steps = opts != NULL && opts->steps != NULL ? opts->steps : &loop->own_steps;
    atomic_init(&loop->tasks, NULL);
    loop->now_ns = cl_now_ns();
    if (opts != NULL && opts->gil != NULL) {
        loop->gil = opts->gil;
        loop->gil_thread.id = opts->gil_id;
    }
    loop->wake_io.background = true;
    int rc = cl_io_start(loop, &loop->wake_io, wakefd, EPOLLIN, drain_threadsafe);
    if (rc != 0) {
        cl_loop_free(loop);
        errno = rc;
        return NULL;
    }
    if (opts != NULL && opts->heartbeat_ns > 0) {
        loop->heartbeat = (struct cl_timer){.background = true, .cb = heartbeat};
        loop->heartbeat_ns = opts->heartbeat_ns;
        cl_timer_start(loop, &loop->heartbeat, loop->heartbeat_ns);
    }
    return loop;
}

void cl_loop_heartbeat_stop(struct cl_loop *loop)
{
    cl_timer_stop(loop, &loop->heartbeat);
}

void cl_loop_free(struct cl_loop *loop)
{
    cl_timer_stop(loop, &loop->heartbeat);
    if (loop->shutdown != NULL)
        loop->shutdown(loop);
    cl_io_stop(loop, &loop->wake_io);
    CL_SYS(close(loop->wakefd));
    CL_SYS(close(loop->epfd));
    CL_PT(pthread_mutex_destroy(&loop->ts_mu));
    free(loop->ts_calls);
    free(loop->ts_spare);
    free(loop->heap);
    free(loop->ready);
    free(loop);
}

static bool alive(struct cl_loop *loop)
{
    return loop->ready_len > 0 || loop->nheap > loop->background_timers || loop->active_ios > 0 ||
           atomic_load_explicit(&loop->holds, memory_order_relaxed) > 0 ||
           atomic_load_explicit(&loop->ts_pending, memory_order_relaxed);
}

/* How long epoll_wait may sleep, in ms, rounded up so a timer is never early. */
static int poll_timeout(struct cl_loop *loop)
{
    if (loop->ready_len > 0 || atomic_load_explicit(&loop->stop, memory_order_relaxed))
        return 0;
    if (loop->nheap == 0)
        return -1;
    uint64_t now = cl_now_ns();
    if (loop->heap[0].at <= now)
        return 0;
    uint64_t ms = (loop->heap[0].at - now + CL_MS(1) - 1) / CL_MS(1);
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Wait for the fds (at most until the next timer) and run their callbacks. */
static void poll_io(struct cl_loop *loop)
{
    int timeout = poll_timeout(loop);
    if (loop->gil != NULL) {
        /* Waiting for I/O is a blocking call: let the other threads run. */
        set_phase(loop, "waiting in epoll_wait (GIL released)");
        cl_gil_drop(loop->gil, &loop->gil_thread);
    } else {
        set_phase(loop, "waiting in epoll_wait");
    }
    int n = epoll_wait(loop->epfd, loop->events, CL_LOOP_EVENTS, timeout);
    if (n == -1 && errno != EINTR)
        cl_die(__FILE__, __LINE__, "epoll_wait", errno);
    if (loop->gil != NULL) {
        set_phase(loop, "waiting for the GIL");
        cl_gil_take(loop->gil, &loop->gil_thread);
    }
    set_phase(loop, "running callbacks");
    loop->nevents = n > 0 ? n : 0;
    run_io(loop);
}

static void iterate(struct cl_loop *loop)
{
    /* With callbacks ready, epoll_wait would not wait: skip the system call
     * most of the time (it costs more than a task switch), but not for more
     * than CL_LOOP_POLL_EVERY iterations, so the fds are never starved. */
    if (loop->ready_len == 0 || ++loop->unpolled >= CL_LOOP_POLL_EVERY) {
        loop->unpolled = 0;
        poll_io(loop);
    }
    if (loop->nheap > 0) { /* only timers need the time */
        loop->now_ns = cl_now_ns();
        run_timers(loop);
    }
    run_ready(loop);
}

void cl_loop_run(struct cl_loop *loop)
{
    if (loop->in_run)
        cl_fatal("cl_loop_run: the loop is already running (runs do not nest)");
    loop->in_run = true;
    if (loop->gil != NULL)
        cl_gil_take(loop->gil, &loop->gil_thread);
    /* A stop asked before the run still gets one pass that does not wait, as
     * asyncio's run_forever does. */
    while (alive(loop) || atomic_load_explicit(&loop->stop, memory_order_relaxed)) {
        iterate(loop);
        if (atomic_load_explicit(&loop->stop, memory_order_relaxed))
            break;
    }
    atomic_store_explicit(&loop->stop, false, memory_order_relaxed);
    loop->in_run = false;
    if (loop->gil != NULL)
        cl_gil_drop(loop->gil, &loop->gil_thread);
    set_phase(loop, "not running");
}

/* ---- the lag monitor ------------------------------------------------------------- */

const uint64_t cl_lag_bucket_us[CL_LAG_BUCKETS] = {
    100,   200,    500,    1000,   2000,    5000,    10000,   20000,
    50000, 100000, 200000, 500000, 1000000, 2000000, 5000000, UINT64_MAX,
};

static void add_relaxed(_Atomic uint64_t *a, uint64_t d)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static void lag_fire(struct cl_timer *t)
{
    struct cl_lag_monitor *m =
        (struct cl_lag_monitor *)((char *)t - offsetof(struct cl_lag_monitor, timer));
    uint64_t now = cl_now_ns();
    uint64_t lag = now > m->due_ns ? now - m->due_ns : 0;
    size_t b = 0;
    while (b < CL_LAG_BUCKETS - 1 && lag / 1000 >= cl_lag_bucket_us[b])
        b++;
    add_relaxed(&m->buckets[b], 1);
    add_relaxed(&m->samples, 1);
    add_relaxed(&m->sum_ns, lag);
    if (lag > atomic_load_explicit(&m->max_ns, memory_order_relaxed))
        atomic_store_explicit(&m->max_ns, lag, memory_order_relaxed);
    if (lag > m->threshold_ns) {
        add_relaxed(&m->warnings, 1);
        if (m->warn_fd >= 0)
            dprintf(m->warn_fd, "loop lag: a timer ran %.1f ms late (threshold %.1f ms)\n",
                    (double)lag / 1e6, (double)m->threshold_ns / 1e6);
    }
    if (m->on_sample != NULL)
        m->on_sample(m, m->due_ns, now);
    m->due_ns = now + m->interval_ns;
    cl_timer_start_at(m->loop, &m->timer, m->due_ns);
}

void cl_lag_start(struct cl_lag_monitor *m, struct cl_loop *loop, uint64_t interval_ns,
                  uint64_t threshold_ns, int warn_fd)
{
    *m = (struct cl_lag_monitor){
        .timer = {.background = true, .cb = lag_fire},
        .loop = loop,
        .interval_ns = interval_ns,
        .threshold_ns = threshold_ns,
        .due_ns = cl_now_ns() + interval_ns,
        .warn_fd = warn_fd,
    };
    cl_timer_start_at(loop, &m->timer, m->due_ns);
}

void cl_lag_stop(struct cl_lag_monitor *m)
{
    cl_timer_stop(m->loop, &m->timer);
}

uint64_t cl_lag_percentile_us(struct cl_lag_monitor *m, double p)
{
    uint64_t n = atomic_load_explicit(&m->samples, memory_order_relaxed);
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)n + 0.5), seen = 0;
    if (want == 0)
        want = 1;
    for (size_t b = 0; b < CL_LAG_BUCKETS; b++) {
        seen += atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
        if (seen >= want)
            return cl_lag_bucket_us[b];
    }
    return cl_lag_bucket_us[CL_LAG_BUCKETS - 1];
}
