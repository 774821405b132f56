/* hybrid, the bridge: other threads and the loop, each way. A queue whose
 * getter checks and then arms an event loses the put that lands between the
 * two; lib's queue does both under one lock. A thread that writes the loop's
 * state directly races with it. The guides' bridge calls its callback from
 * inside the task, so a raise skips it. The loop in a thread of its own serves
 * plain code through run_coroutine_threadsafe, and a message bus matches
 * replies to requests by id. */
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hybrid.h"

static struct {
    int n, ok;
    uint64_t expected;
} rec;

/* ---- the loop in a thread of its own ---------------------------------------- */

static pthread_t loop_tid;

static void *loop_main(void *arg)
{
    cl_loop_run(arg);
    return NULL;
}

static struct cl_loop *loop_thread_start(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run, NULL);
    cl_loop_hold(loop); /* runs until told to stop, waiting for calls */
    CL_PT(pthread_create(&loop_tid, NULL, loop_main, loop));
    return loop;
}

static void loop_thread_stop(struct cl_loop *loop)
{
    cl_loop_release(loop);
    cl_loop_stop(loop);
    CL_PT(pthread_join(loop_tid, NULL));
    loop_close(loop);
}

/* ---- bridge-lost-wakeup and bridge-queue ------------------------------------------ */

#define MAX_ITEMS 100

static struct {
    struct cl_loop *loop;
    pthread_mutex_t mu;
    intptr_t items[MAX_ITEMS];
    size_t head, len;
    struct cl_future *event; /* the guides' queue: the getter's event, or NULL */
    struct cl_bqueue bq;     /* lib's */
    bool fixed;
    sem_t window, put_done; /* force the put into the getter's window */
    int nitems;
    _Atomic int puts, gets, unset; /* unset: puts that found no event to set */
    _Atomic size_t depth;          /* items in the guides' queue, for the watchdog */
} lw = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The getter's window, made certain: the producer puts now, then we go on. */
static void open_window(void)
{
    CL_SYS(sem_post(&lw.window));
    CL_SYS_RETRY(sem_wait(&lw.put_done));
}

static void set_event(void *arg)
{
    cl_future_set(arg, 0);
}

/* [snippet naive-put] */
static void naive_put(intptr_t item)
{
    CL_PT(pthread_mutex_lock(&lw.mu));
    lw.items[(lw.head + lw.len++) % MAX_ITEMS] = item;
    atomic_store(&lw.depth, lw.len);
    struct cl_future *ev = lw.event; /* NULL: nobody waits, it thinks */
    CL_PT(pthread_mutex_unlock(&lw.mu));
    if (ev != NULL)
        cl_loop_call_soon_threadsafe(lw.loop, set_event, ev);
    else
        atomic_fetch_add(&lw.unset, 1);
}
/* [end naive-put] */

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < lw.nitems; i++) {
        CL_SYS_RETRY(sem_wait(&lw.window)); /* only inside the getter's window */
        if (lw.fixed)
            CL_PT(cl_bqueue_put(&lw.bq, i, CL_FOREVER));
        else
            naive_put(i);
        atomic_fetch_add(&lw.puts, 1);
        CL_SYS(sem_post(&lw.put_done));
    }
    return NULL;
}

static bool naive_take(intptr_t *item)
{
    CL_PT(pthread_mutex_lock(&lw.mu));
    bool have = lw.len > 0;
    if (have) {
        *item = lw.items[lw.head];
        lw.head = (lw.head + 1) % MAX_ITEMS;
        lw.len--;
        atomic_store(&lw.depth, lw.len);
    }
    lw.event = NULL;
    CL_PT(pthread_mutex_unlock(&lw.mu));
    return have;
}

static void arm_event(struct cl_future *ev)
{
    CL_PT(pthread_mutex_lock(&lw.mu));
    lw.event = ev;
    CL_PT(pthread_mutex_unlock(&lw.mu));
}

struct getter {
    struct cl_task task;
    intptr_t item, n;
    struct cl_future *wait;
    int err;
};

/* [snippet naive-get] */
static int naive_getter_run(struct cl_task *t)
{
    struct getter *g = (struct getter *)t;
    CL_BEGIN(t);
    for (g->n = 0; g->n < lw.nitems; g->n++) {
        if (!naive_take(&g->item)) { /* empty: then arm a fresh event, no lock between */
            open_window();           /* the producer's put lands here, and sets nothing */
            g->wait = cl_future_new(t->fut.loop, "a fresh event, armed after the check");
            arm_event(g->wait); /* under the lock again, but a new critical section */
            CL_AWAIT(t, g->wait);
            cl_future_unref(g->wait);
            naive_take(&g->item);
        }
        rec.ok += g->item == g->n;
        atomic_fetch_add(&lw.gets, 1);
    }
    CL_END(t);
}
/* [end naive-get] */

static int fixed_getter_run(struct cl_task *t)
{
    struct getter *g = (struct getter *)t;
    CL_BEGIN(t);
    for (g->n = 0; g->n < lw.nitems;) {
        g->err = cl_bqueue_get_or_arm(&lw.bq, &g->item, &g->wait);
        if (g->err == EAGAIN) { /* armed under the lock that saw the queue empty */
            open_window();      /* the same put, in the same place: it sees the waiter */
            CL_AWAIT_TRY(t, g->wait);
            continue;
        }
        rec.ok += g->err == 0 && g->item == g->n;
        atomic_fetch_add(&lw.gets, 1);
        g->n++;
    }
    CL_END(t);
}

static void lost_wakeup(struct cl_run *run, bool fixed)
{
    lw.nitems = (int)cl_param(run, ITEMS);
    lw.fixed = fixed;
    lw.head = lw.len = 0;
    lw.event = NULL;
    rec.n = lw.nitems;
    rec.ok = 0;
    CL_SYS(sem_init(&lw.window, 0, 0));
    CL_SYS(sem_init(&lw.put_done, 0, 0));
    struct cl_loop *loop = loop_open(run, NULL);
    lw.loop = loop;
    if (fixed)
        CL_PT(cl_bqueue_init(&lw.bq, loop, 4));
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, producer, NULL));
    struct cl_task *g = cl_task_new(loop, fixed ? fixed_getter_run : naive_getter_run,
                                    sizeof(struct getter), "getter");
    loop_run_until(loop, &g->fut); /* the lost wake-up waits here for ever */
    CL_PT(pthread_join(t, NULL));
    cl_future_unref(&g->fut);
    cl_loop_run(loop); /* wake-ups still queued */
    if (fixed)
        cl_bqueue_destroy(&lw.bq);
    loop_close(loop);
    CL_SYS(sem_destroy(&lw.window));
    CL_SYS(sem_destroy(&lw.put_done));
}

void run_lost_wakeup(struct cl_run *run)
{
    lost_wakeup(run, false);
}

void run_bridge_queue(struct cl_run *run)
{
    lost_wakeup(run, true);
}

void report_lost_wakeup(int fd)
{
    dprintf(fd,
            "  queue: %d put, %d taken, %zu waiting in it; %d put%s found no event to set "
            "(the getter armed its event after checking)\n",
            atomic_load(&lw.puts), atomic_load(&lw.gets),
            lw.fixed ? atomic_load(&lw.bq.depth) : atomic_load(&lw.depth), atomic_load(&lw.unset),
            atomic_load(&lw.unset) == 1 ? "" : "s");
}

static void judge_lost_wakeup(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = rec.ok == rec.n;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "items", rec.n);
    cl_metric_int(res, "received", atomic_load(&lw.gets));
    cl_metric_int(res, "task_wakes", (long long)atomic_load(&lw.bq.task_wakes));
    cl_verdict(res,
               "%d items, each put from a thread inside the getter's window between check and "
               "wait: %d received in order",
               rec.n, rec.ok);
}

const struct family lost_wakeup_f = {judge_lost_wakeup};

/* ---- cross-thread-unsafe ------------------------------------------------------------ */

static struct {
    uint64_t done, sum; /* written by the thread, read by a task: no bridge, no lock */
    uint64_t polls;
} xt;

/* [snippet cross-thread] */
static void *unsafe_worker(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= (uint64_t)rec.n; i++) {
        cl_sleep_ns(20 * 1000);
        xt.sum += i * i; /* the loop's state, from another thread: a data race */
        xt.done++;
    }
    return NULL;
}

static int watcher_run(struct cl_task *t)
{
    CL_BEGIN(t);
    while (xt.done < (uint64_t)rec.n) { /* reads what the thread writes */
        xt.polls++;
        CL_SLEEP(t, CL_MS(1));
    }
    CL_RETURN(t, (intptr_t)xt.sum);
    CL_END(t);
}
/* [end cross-thread] */

void run_cross_thread(struct cl_run *run)
{
    rec.n = (int)cl_param(run, ITEMS);
    xt.done = xt.sum = xt.polls = 0;
    struct cl_loop *loop = loop_open(run, NULL);
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, unsafe_worker, NULL));
    struct cl_task *w = cl_task_new(loop, watcher_run, sizeof(struct cl_task), "watcher");
    loop_run_until(loop, &w->fut);
    CL_PT(pthread_join(t, NULL));
    rec.expected = cl_sum_squares_closed((uint64_t)rec.n + 1);
    rec.ok = w->fut.err == 0 && (uint64_t)w->fut.value == rec.expected;
    cl_future_unref(&w->fut);
    loop_close(loop);
}

static void judge_cross_thread(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = rec.ok == 1;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "polls", (long long)xt.polls);
    cl_verdict(res,
               "a thread wrote %d results into the loop's state while a task read them, %llu "
               "reads, no bridge: a data race%s",
               rec.n, (unsigned long long)xt.polls,
               rec.ok ? " (the sum came out right this time)" : ", and the sum came out wrong");
}

const struct family cross_thread_f = {judge_cross_thread};

/* ---- callback-on-error and callback-on-error-fixed ---------------------------------------- */

static struct {
    bool fixed;
    _Atomic int callbacks, errors_seen;
    int failed; /* tasks that raised */
} cb;

struct job {
    struct cl_task task;
    intptr_t i;
};

static void job_init(struct cl_task *t, void *arg)
{
    ((struct job *)t)->i = (intptr_t)arg;
}

/* [snippet callback-in-task] */
static void on_result(intptr_t value)
{
    (void)value;
    atomic_fetch_add(&cb.callbacks, 1); /* the thread's callback: "a result is in" */
}

static int job_run(struct cl_task *t)
{
    struct job *j = (struct job *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, CL_MS(1));
    if (j->i % 3 == 2)
        CL_RAISE(t, EIO, "the backend failed"); /* leaves before the callback below */
    if (!cb.fixed)
        on_result(j->i * j->i); /* the guides' bridge: called at the end of the coroutine */
    CL_RETURN(t, j->i * j->i);
    CL_END(t);
}
/* [end callback-in-task] */

/* [snippet done-callback] */
static void on_done(struct cl_xfuture *xf, void *arg)
{
    (void)arg;
    int err = 0;
    atomic_fetch_add(&cb.callbacks, 1); /* every outcome, a failure included */
    if (cl_xfuture_result(xf, NULL, &err) == CL_POOL_FAILED)
        atomic_fetch_add(&cb.errors_seen, 1);
}
/* [end done-callback] */

static void callback_on_error(struct cl_run *run, bool fixed)
{
    rec.n = (int)cl_param(run, ITEMS);
    rec.ok = 0;
    cb.fixed = fixed;
    cb.failed = 0;
    atomic_store(&cb.callbacks, 0);
    atomic_store(&cb.errors_seen, 0);
    struct cl_loop *loop = loop_thread_start(run);
    struct cl_xfuture *xf[MAX_ITEMS];
    for (int i = 0; i < rec.n; i++) {
        xf[i] = cl_run_coro_threadsafe(loop, job_run, sizeof(struct job), "job", job_init,
                                       (void *)(intptr_t)i);
        if (fixed)
            cl_xfuture_on_done(xf[i], on_done, NULL);
    }
    for (int i = 0; i < rec.n; i++) {
        intptr_t v = 0;
        int err = 0;
        enum cl_pool_status s = cl_xfuture_wait(xf[i], CL_FOREVER, &v, &err);
        rec.ok += s == CL_POOL_OK ? v == (intptr_t)i * i : s == CL_POOL_FAILED && err == EIO;
        cb.failed += s == CL_POOL_FAILED;
    }
    loop_thread_stop(loop); /* after the loop's last callback: the counts are final */
    for (int i = 0; i < rec.n; i++)
        cl_xfuture_release(xf[i]);
}

void run_callback_on_error(struct cl_run *run)
{
    callback_on_error(run, false);
}

void run_callback_on_error_fixed(struct cl_run *run)
{
    callback_on_error(run, true);
}

static void judge_callback(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    int calls = atomic_load(&cb.callbacks);
    res->exact = rec.ok == rec.n && calls == rec.n;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "tasks", rec.n);
    cl_metric_int(res, "failed", cb.failed);
    cl_metric_int(res, "callbacks", calls);
    cl_metric_int(res, "errors_reported", atomic_load(&cb.errors_seen));
    cl_verdict(res, "%d tasks, %d of them raised: the callback ran %d times%s", rec.n, cb.failed,
               calls, calls == rec.n ? "" : " (never for a task that raised)");
}

const struct family callback_f = {judge_callback};

/* ---- loop-thread: the round trip --------------------------------------------------- */

static struct {
    double bridge_us, eventfd_us;
    int posters;
    uint64_t posts, wakes, ran;
} lt;

#define POSTS_EACH 1000

static void count_post(void *arg)
{
    (void)arg;
    lt.ran++; /* on the loop's thread only */
}

static void *poster(void *arg)
{
    struct cl_loop *loop = arg;
    for (int i = 0; i < POSTS_EACH; i++)
        cl_loop_call_soon_threadsafe(loop, count_post, NULL);
    return NULL;
}

static int read_ran(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_RETURN(t, (intptr_t)lt.ran); /* after every call posted before it */
    CL_END(t);
}

/* N threads post at once: how many posts share one eventfd write. */
static void coalescing(struct cl_run *run, struct cl_loop *loop)
{
    lt.posters = (int)cl_param(run, POSTERS);
    lt.ran = 0;
    uint64_t posts0 = atomic_load(&loop->ts_posts), wakes0 = atomic_load(&loop->ts_wakes);
    pthread_t t[100];
    for (int i = 0; i < lt.posters; i++)
        CL_PT(pthread_create(&t[i], NULL, poster, loop));
    for (int i = 0; i < lt.posters; i++)
        CL_PT(pthread_join(t[i], NULL));
    struct cl_xfuture *xf =
        cl_run_coro_threadsafe(loop, read_ran, sizeof(struct cl_task), "count", NULL, NULL);
    intptr_t ran = 0;
    if (cl_xfuture_wait(xf, CL_FOREVER, &ran, NULL) != CL_POOL_OK)
        cl_fatal("hybrid: the counting task failed");
    cl_xfuture_release(xf);
    lt.ran = (uint64_t)ran;
    lt.posts = atomic_load(&loop->ts_posts) - posts0 - 1; /* less the counting call */
    lt.wakes = atomic_load(&loop->ts_wakes) - wakes0;
}

struct plus_one {
    struct cl_task task;
    intptr_t x;
};

static void plus_one_init(struct cl_task *t, void *arg)
{
    ((struct plus_one *)t)->x = (intptr_t)arg;
}

static int plus_one_run(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_RETURN(t, ((struct plus_one *)t)->x + 1);
    CL_END(t);
}

static int efd[2];

static void *echo_thread(void *arg)
{
    uint64_t n = (uint64_t)(uintptr_t)arg, v;
    for (uint64_t i = 0; i < n; i++) {
        CL_SYS_RETRY(read(efd[0], &v, sizeof v));
        CL_SYS_RETRY(write(efd[1], &v, sizeof v));
    }
    return NULL;
}

static double median_us(uint64_t *ns, size_t n)
{
    cl_sort_ns(ns, n);
    return (double)ns[n / 2] / 1e3;
}

void run_loop_thread(struct cl_run *run)
{
    size_t n = (size_t)cl_param(run, ITEMS);
    uint64_t *ns = calloc(n, sizeof *ns);
    if (ns == NULL)
        cl_fatal("hybrid: out of memory");
    rec.n = (int)n;
    rec.ok = 0;
    struct cl_loop *loop = loop_thread_start(run);
    /* [snippet round-trip] */
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = cl_now_ns();
        struct cl_xfuture *xf = cl_run_coro_threadsafe(loop, plus_one_run, sizeof(struct plus_one),
                                                       "plus one", plus_one_init, (void *)i);
        intptr_t v = -1;
        int err = 0;
        if (cl_xfuture_wait(xf, CL_FOREVER, &v, &err) == CL_POOL_OK && v == (intptr_t)i + 1)
            rec.ok++;
        cl_xfuture_release(xf);
        ns[i] = cl_now_ns() - t0;
    }
    /* [end round-trip] */
    coalescing(run, loop);
    loop_thread_stop(loop);
    lt.bridge_us = median_us(ns, n);
    /* the floor: a thread and another waking each other through two eventfds */
    efd[0] = eventfd(0, EFD_CLOEXEC);
    efd[1] = eventfd(0, EFD_CLOEXEC);
    if (efd[0] < 0 || efd[1] < 0)
        cl_refuse(run, "eventfd", errno, "two eventfds");
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, echo_thread, (void *)(uintptr_t)n));
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 1, t0 = cl_now_ns();
        CL_SYS_RETRY(write(efd[0], &v, sizeof v));
        CL_SYS_RETRY(read(efd[1], &v, sizeof v));
        ns[i] = cl_now_ns() - t0;
    }
    CL_PT(pthread_join(t, NULL));
    CL_SYS(close(efd[0]));
    CL_SYS(close(efd[1]));
    lt.eventfd_us = median_us(ns, n);
    free(ns);
}

static void judge_loop_thread(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    uint64_t want = (uint64_t)lt.posters * POSTS_EACH;
    res->exact = rec.ok == rec.n && lt.ran == want && lt.posts == want;
    res->ops = (uint64_t)rec.n;
    cl_metric_int(res, "round_trips", rec.n);
    cl_metric_int(res, "posters", lt.posters);
    cl_metric_int(res, "posts", (long long)lt.posts);
    cl_metric_int(res, "posts_run", (long long)lt.ran);
    cl_metric_int(res, "wakes", (long long)lt.wakes);
    cl_metric_real(res, "posts_per_wake", lt.wakes > 0 ? (double)lt.posts / (double)lt.wakes : 0);
    cl_metric_real(res, "round_trip_us", lt.bridge_us);
    cl_metric_real(res, "eventfd_round_trip_us", lt.eventfd_us);
    cl_metric_real(res, "ratio", lt.eventfd_us > 0 ? lt.bridge_us / lt.eventfd_us : 0);
    cl_verdict(res,
               "%d calls from plain code into the loop's thread and back: %.1f us each "
               "(median), %.2fx a bare eventfd round trip (%.1f us); %d threads posted %llu "
               "calls, all run, in %llu wake-ups",
               rec.ok, lt.bridge_us, lt.eventfd_us > 0 ? lt.bridge_us / lt.eventfd_us : 0,
               lt.eventfd_us, lt.posters, (unsigned long long)lt.ran, (unsigned long long)lt.wakes);
}

const struct family loop_thread_f = {judge_loop_thread};
