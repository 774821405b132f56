/* An event loop for one thread, after libuv's uv_run and asyncio's _run_once.
 *
 * One iteration: wait in epoll_wait for the fds being watched, at most until the
 * next timer is due; run the callbacks of the ready fds; run the timers that
 * are due; then run the callbacks that were ready when this step began (one
 * queued by them waits for the next iteration, so a callback that keeps
 * rescheduling itself cannot starve the fds). While callbacks are ready,
 * epoll_wait would return at once, and it costs more than a task switch: the
 * loop then polls only every CL_LOOP_POLL_EVERY iterations (Tokio's scheduler
 * turns to its I/O driver every 61 ticks), which bounds how long a ready fd
 * waits. Timers live in a 4-ary min-heap
 * (libev's layout: half the depth of a binary heap, and a node's four children
 * share a cache line or two), ordered by deadline and then by arming order, so
 * timers due at the same moment fire in the order they were armed.
 *
 * Everything here belongs to the loop's thread except three calls, which any
 * thread may make: cl_loop_call_soon_threadsafe (a mutex-guarded queue plus an
 * eventfd that wakes epoll_wait; sends made before the loop drains the queue
 * share one wake-up, as libuv's uv_async_send does), cl_loop_stop, and
 * cl_loop_hold/release. The watchdog may read the atomics marked so, from any
 * thread, while the loop is stuck.
 *
 * Limits: epoll_wait counts in milliseconds, so a timer fires up to 1 ms late
 * (never early); the 64 fds that are ready at once are served per wait. */
#ifndef CL_LOOP_H
#define CL_LOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "cl_gil.h"

#define CL_MS(n) ((uint64_t)(n)*1000000ull) /* milliseconds, in ns */

#define CL_LOOP_EVENTS     64 /* fds served per epoll_wait */
#define CL_LOOP_POLL_EVERY 64 /* iterations with work ready between two polls */

struct cl_loop;

/* A callback with its argument: one entry of the ready queue. */
typedef void cl_loop_fn(void *arg);

struct cl_call {
    cl_loop_fn *fn;
    void *arg;
};

/* A one-shot timer, kept by its owner (embed it in a struct of your own and find
 * that struct again from the pointer the callback gets). 16 bytes. */
struct cl_timer {
    uint32_t slot;   /* 1 + its place in the heap; 0 while not armed */
    bool background; /* does not keep cl_loop_run going (the lag monitor's) */
    void (*cb)(struct cl_timer *t);
};

/* Readiness of one fd, level-triggered, reported until cl_io_stop. */
struct cl_io {
    int fd;
    uint32_t events; /* EPOLLIN, EPOLLOUT */
    bool active;     /* registered with the loop's epoll */
    bool background; /* does not keep cl_loop_run going (the loop's own eventfd) */
    void (*cb)(struct cl_io *io, uint32_t revents);
};

/* A timer in the heap, with its key kept beside the pointer so that sifting
 * compares without touching the timer itself. */
struct cl_heap_entry {
    uint64_t at;  /* deadline, CLOCK_MONOTONIC ns */
    uint64_t seq; /* arming order: the tie-break that keeps equal deadlines FIFO */
    struct cl_timer *timer;
};

struct cl_loop_opts {
    /* NULL, or the simulated GIL the loop thread holds while it runs callbacks
     * (and drops while it waits in epoll_wait), as CPython's loop thread does. */
    struct cl_gil *gil;
    int gil_id; /* the loop thread's id among the GIL's users */
    /* NULL, or a counter to add one to for each callback run, in place of the
     * loop's own: a .run variant passes &run->workers[0].progress, so that the
     * runner's watchdog counts the loop's callbacks as progress. The loop
     * thread must be its only writer (a load and a store, no locked add). */
    _Atomic uint64_t *steps;
    /* 0, or: while a timer of the program's is armed, add one to *steps every
     * heartbeat_ns, because a loop that waits for a timer still due is not
     * stuck. A loop that waits for nothing at all (a task awaiting a future no
     * one will set) still makes no progress, and the watchdog sees it. */
    uint64_t heartbeat_ns;
};

struct cl_tasks; /* cl_task.c's registry of tasks */

struct cl_loop {
    int epfd;        /* epoll instance, O_CLOEXEC */
    int wakefd;      /* eventfd that other threads write to wake epoll_wait */
    uint64_t now_ns; /* the clock when this iteration's wait returned */

    /* Ready queue: a ring of callbacks, capacity a power of two. */
    struct cl_call *ready;
    size_t ready_head, ready_len, ready_cap;

    /* Timers: heap[0] is due first. */
    struct cl_heap_entry *heap;
    size_t nheap, heap_cap;
    uint64_t timer_seq;       /* next arming order number */
    size_t background_timers; /* armed timers that do not keep the loop alive */
    size_t active_ios;        /* registered fds that keep the loop alive */
    struct epoll_event events[CL_LOOP_EVENTS];
    int nevents, ievent; /* this wait's events, and the one being served */
    unsigned unpolled;   /* iterations since the last epoll_wait */

    /* Calls from other threads: under ts_mu, swapped out whole by the loop. */
    pthread_mutex_t ts_mu;
    struct cl_call *ts_calls, *ts_spare;
    size_t ts_len, ts_cap, ts_spare_cap;
    _Atomic bool ts_pending;   /* calls queued and the wake-up written (under ts_mu) */
    _Atomic uint64_t ts_posts; /* calls made from other threads */
    _Atomic uint64_t ts_wakes; /* eventfd writes they cost (fewer: they coalesce) */
    struct cl_io wake_io;
    _Atomic int holds; /* cl_loop_hold minus cl_loop_release */
    _Atomic bool stop; /* cl_loop_stop asked: leave after this iteration */
    bool in_run;       /* inside cl_loop_run, which does not nest */

    /* The simulated GIL (opts.gil): the loop thread's side of it. */
    struct cl_gil *gil;
    struct cl_gil_thread gil_thread;

    /* For the watchdog: read them from any thread (relaxed atomics). */
    _Atomic(const char *) phase;   /* "waiting in epoll_wait", "running callbacks", ... */
    _Atomic(const char *) running; /* name of the task being stepped, or NULL */
    _Atomic uint64_t *steps;       /* callbacks run so far (opts.steps or own_steps) */
    _Atomic uint64_t own_steps;
    struct cl_timer heartbeat; /* opts.heartbeat_ns's background timer */
    uint64_t heartbeat_ns;

    /* Tasks (cl_task.c): the registry, and what cl_loop_free must do first. */
    _Atomic(struct cl_tasks *) tasks;
    void (*shutdown)(struct cl_loop *loop);
};

/* A new loop: an epoll instance and an eventfd, both close-on-exec. NULL with
 * errno set (EMFILE, ENOMEM) if either cannot be had; nothing is left open. */
struct cl_loop *cl_loop_new(const struct cl_loop_opts *opts);

/* Cancels the tasks still pending and runs the loop until their cleanup has
 * finished (as asyncio.run does before it closes the loop), frees every task and
 * future of the loop, closes both fds. Timers and fds of the caller's own are not
 * touched; stop them first. Any reference still held is dangling afterwards. */
void cl_loop_free(struct cl_loop *loop);

/* Run until cl_loop_stop, or until nothing can happen any more: no ready
 * callback, no timer and no fd that keeps the loop alive, no hold. */
void cl_loop_run(struct cl_loop *loop);

/* Ask the loop to return once the current iteration is done (any thread). */
void cl_loop_stop(struct cl_loop *loop);

/* Keep cl_loop_run from returning while idle, for a thread that will call
 * cl_loop_call_soon_threadsafe later (any thread). */
void cl_loop_hold(struct cl_loop *loop);
void cl_loop_release(struct cl_loop *loop);

/* Run fn(arg) at the next iteration, after the callbacks already queued. */
void cl_loop_call_soon(struct cl_loop *loop, cl_loop_fn *fn, void *arg);

/* The same from any other thread: queues the call and wakes the loop. */
void cl_loop_call_soon_threadsafe(struct cl_loop *loop, cl_loop_fn *fn, void *arg);

/* Arm t to call t->cb once, delay_ns from now (asyncio's call_later) or at a
 * CLOCK_MONOTONIC time (call_at). Arming an armed timer moves it. */
void cl_timer_start(struct cl_loop *loop, struct cl_timer *t, uint64_t delay_ns);
void cl_timer_start_at(struct cl_loop *loop, struct cl_timer *t, uint64_t at_ns);
/* Disarm; harmless on a timer that is not armed. */
void cl_timer_stop(struct cl_loop *loop, struct cl_timer *t);

/* Stop opts.heartbeat_ns's timer: for a run that never waits, where it would
 * make the loop read the clock at every iteration. */
void cl_loop_heartbeat_stop(struct cl_loop *loop);

static inline bool cl_timer_armed(const struct cl_timer *t)
{
    return t->slot != 0;
}

/* Watch fd for events (EPOLLIN, EPOLLOUT, or both). 0, or the errno of
 * epoll_ctl: EPERM for a regular file, which epoll cannot watch. */
int cl_io_start(struct cl_loop *loop, struct cl_io *io, int fd, uint32_t events,
                void (*cb)(struct cl_io *io, uint32_t revents));
/* Stop watching; safe from any callback, even for an fd that is ready in the
 * same wait, and on a watcher that is not active. Call it before close(fd). */
void cl_io_stop(struct cl_loop *loop, struct cl_io *io);

/* ------------------------------------------------------------------------------
 * The loop-lag monitor: a background timer that asks to fire every interval and
 * records how late it actually ran (Node's monitorEventLoopDelay). A callback
 * that blocks the loop for 300 ms shows as one sample about 300 ms late. */

#define CL_LAG_BUCKETS 16

/* Upper bounds of the histogram's buckets, in µs (the last one is open). */
extern const uint64_t cl_lag_bucket_us[CL_LAG_BUCKETS];

struct cl_lag_monitor {
    struct cl_timer timer;
    struct cl_loop *loop;
    uint64_t interval_ns;
    uint64_t threshold_ns; /* a sample above it writes a warning line */
    uint64_t due_ns;       /* when the timer asked to fire */
    int warn_fd;           /* where the warnings go; -1 for none */
    /* NULL, or called on the loop thread with each sample: when the timer was
     * due and when it ran (a chapter's timeline). Set it after cl_lag_start. */
    void (*on_sample)(struct cl_lag_monitor *m, uint64_t due_ns, uint64_t ran_ns);
    /* Written by the loop thread, readable from any thread. */
    _Atomic uint64_t samples, warnings;
    _Atomic uint64_t max_ns, sum_ns;
    _Atomic uint64_t buckets[CL_LAG_BUCKETS];
};

/* Start sampling every interval_ns; asyncio's debug mode warns at 100 ms. */
void cl_lag_start(struct cl_lag_monitor *m, struct cl_loop *loop, uint64_t interval_ns,
                  uint64_t threshold_ns, int warn_fd);
void cl_lag_stop(struct cl_lag_monitor *m);

/* The bucket bound (µs) below which a fraction p of the samples fell; 0 if none. */
uint64_t cl_lag_percentile_us(struct cl_lag_monitor *m, double p);

#endif
