/* pools: how long a pool lives, and what it keeps. A pool per request against one
 * reused pool; pools never shut down; the guides' task manager, whose table of
 * futures never shrinks; and the guides' hand-made pool, whose join hangs when a
 * task fails, with its fix. */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pools.h"

static struct {
    uint64_t n;
    uint64_t wrong;   /* results that were not the request's answer */
    uint64_t threads; /* threads the pools started */
    uint64_t elapsed_ns;
    long tasks_before, tasks_after; /* /proc/self/task entries */
    size_t table_leak, table_fixed, peak_fixed;
    long long retained_bytes;
    uint64_t errors, done_marked;
} seen;

/* ------------------------------------------------------------ a pool per request */

static int answer(void *arg, uint64_t *result)
{
    *result = *(const uint64_t *)arg + 1;
    return 0;
}

static struct cl_pool *pool_or_die(int workers)
{
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = workers});
    if (pool == NULL)
        cl_die(__FILE__, __LINE__, "cl_pool_new", errno);
    return pool;
}

/* One request: submit, wait for the answer, check it. */
static void request(struct cl_pool *pool, uint64_t i)
{
    struct cl_pool_future *f = cl_pool_submit(pool, answer, &i);
    uint64_t v = 0;
    if (f == NULL)
        cl_die(__FILE__, __LINE__, "cl_pool_submit", errno);
    seen.wrong += cl_pool_get(f, CL_FOREVER, &v, NULL) != CL_POOL_OK || v != i + 1;
    cl_pool_release(f);
}

void run_per_request(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (uint64_t)cl_param(run, TASKS);
    int workers = (int)cl_param(run, WORKERS);
    uint64_t t0 = cl_now_ns();
    /* [snippet pool-per-request] */
    for (uint64_t i = 0; i < seen.n; i++) {
        struct cl_pool *pool = pool_or_die(workers); /* `with ThreadPoolExecutor()` */
        request(pool, i);
        seen.threads += (uint64_t)cl_pool_stats(pool).threads;
        cl_pool_shutdown(pool, false); /* joins its thread: every request */
        progress(run);
    }
    /* [end pool-per-request] */
    seen.elapsed_ns = cl_now_ns() - t0;
}

void run_reused(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (uint64_t)cl_param(run, TASKS);
    uint64_t t0 = cl_now_ns();
    /* [snippet pool-reused] */
    struct cl_pool *pool = pool_or_die((int)cl_param(run, WORKERS)); /* once */
    for (uint64_t i = 0; i < seen.n; i++) {
        request(pool, i);
        progress(run);
    }
    seen.threads = (uint64_t)cl_pool_stats(pool).threads;
    cl_pool_shutdown(pool, false);
    /* [end pool-reused] */
    seen.elapsed_ns = cl_now_ns() - t0;
}

/* ------------------------------------------------------------ never shut down */

static struct cl_pool **forgotten; /* shut down by teardown, not by the run */
static size_t nforgotten;

static long threads_of_this_process(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        cl_die(__FILE__, __LINE__, "opendir /proc/self/task", errno);
    long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A task that holds its thread until the main thread opens the gate, so that each
 * submit finds no idle thread and the pool starts one more, up to its cap. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};

static int hold_thread(void *arg, uint64_t *result)
{
    (void)arg;
    CL_PT(pthread_mutex_lock(&gate.mu));
    while (!gate.open)
        CL_PT(pthread_cond_wait(&gate.cv, &gate.mu));
    CL_PT(pthread_mutex_unlock(&gate.mu));
    *result = 1;
    return 0;
}

void run_no_shutdown(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    size_t k = (size_t)cl_param(run, POOLS);
    int workers = (int)cl_param(run, WORKERS);
    seen.n = k * (size_t)workers;
    forgotten = cl_xcalloc(k, sizeof(struct cl_pool *));
    struct cl_pool_future **fs = cl_xcalloc(seen.n, sizeof(struct cl_pool_future *));
    seen.tasks_before = threads_of_this_process();
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = false;
    CL_PT(pthread_mutex_unlock(&gate.mu));
    /* [snippet no-shutdown] */
    for (size_t p = 0; p < k; p++) {
        struct cl_pool *pool = pool_or_die(workers); /* ThreadPoolExecutor(), no `with` */
        for (int t = 0; t < workers; t++)
            fs[p * (size_t)workers + (size_t)t] = cl_pool_submit(pool, hold_thread, NULL);
        forgotten[nforgotten++] = pool; /* and never cl_pool_shutdown */
    }
    /* [end no-shutdown] */
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = true;
    CL_PT(pthread_cond_broadcast(&gate.cv));
    CL_PT(pthread_mutex_unlock(&gate.mu));
    for (size_t i = 0; i < seen.n; i++) { /* every task done: the threads sit idle */
        uint64_t v = 0;
        seen.wrong += fs[i] == NULL || cl_pool_get(fs[i], CL_FOREVER, &v, NULL) != CL_POOL_OK;
        if (fs[i] != NULL)
            cl_pool_release(fs[i]);
        progress(run);
    }
    free(fs);
    seen.tasks_after = threads_of_this_process();
}

void teardown_lifetime(void)
{
    for (size_t i = 0; i < nforgotten; i++) /* what the run should have done */
        cl_pool_shutdown(forgotten[i], false);
    free(forgotten);
    forgotten = NULL;
    nforgotten = 0;
}

/* ------------------------------------------------------------ the task manager */

/* The guides' TaskManager: every future in a table, by id, with a done callback
 * "to clean up", which only reports. The fixed one removes its own entry. */
struct manager {
    pthread_mutex_t mu;
    pthread_cond_t idle;
    struct cl_pool *pool;
    struct cl_pool_future **table;
    size_t n, cap, peak;
    size_t pending;
    bool removes; /* the fix */
};

/* [snippet futures-leak] */
static void task_completed(struct cl_pool_future *f, void *arg)
{
    struct manager *m = arg;
    CL_PT(pthread_mutex_lock(&m->mu));
    bool found = false;
    for (size_t i = 0; m->removes && i < m->n && !found; i++)
        if (m->table[i] == f) { /* the fix: the callback takes its entry out */
            m->table[i] = m->table[--m->n];
            found = true;
        }
    if (--m->pending == 0) /* the guides' version only logs, then returns */
        CL_PT(pthread_cond_broadcast(&m->idle));
    CL_PT(pthread_mutex_unlock(&m->mu));
    if (found)
        cl_pool_release(f); /* the table's reference goes with it */
}
/* [end futures-leak] */

static int tiny(void *arg, uint64_t *result)
{
    (void)arg;
    *result = 1;
    return 0;
}

static void manager_submit(struct manager *m)
{
    struct cl_pool_future *f = cl_pool_submit(m->pool, tiny, NULL);
    if (f == NULL)
        cl_die(__FILE__, __LINE__, "cl_pool_submit", errno);
    CL_PT(pthread_mutex_lock(&m->mu));
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->table = realloc(m->table, m->cap * sizeof(struct cl_pool_future *));
        if (m->table == NULL)
            cl_die(__FILE__, __LINE__, "realloc", ENOMEM);
    }
    m->table[m->n++] = f; /* self.futures[task_id] = future */
    if (m->n > m->peak)
        m->peak = m->n;
    m->pending++;
    CL_PT(pthread_mutex_unlock(&m->mu));
    cl_pool_on_done(f, task_completed, m);
}

/* Rounds of `round` tasks, each waited for (wait_all), as a service would. */
static void manage(struct cl_run *run, struct manager *m, size_t tasks, size_t round)
{
    CL_PT(pthread_mutex_init(&m->mu, NULL));
    CL_PT(pthread_cond_init(&m->idle, NULL));
    for (size_t done = 0; done < tasks;) {
        for (size_t i = 0; i < round && done < tasks; i++, done++)
            manager_submit(m);
        CL_PT(pthread_mutex_lock(&m->mu));
        while (m->pending > 0)
            CL_PT(pthread_cond_wait(&m->idle, &m->mu));
        CL_PT(pthread_mutex_unlock(&m->mu));
        progress(run);
    }
}

static void manager_free(struct manager *m)
{
    for (size_t i = 0; i < m->n; i++)
        cl_pool_release(m->table[i]);
    free(m->table);
    CL_PT(pthread_cond_destroy(&m->idle));
    CL_PT(pthread_mutex_destroy(&m->mu));
}

void run_futures_leak(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (uint64_t)cl_param(run, TASKS);
    struct cl_pool *pool = pool_or_die((int)cl_param(run, WORKERS));
    struct manager leaky = {.pool = pool}, fixed = {.pool = pool, .removes = true};
    size_t before = mallinfo2().uordblks;
    manage(run, &leaky, seen.n, 1000);
    seen.retained_bytes = (long long)mallinfo2().uordblks - (long long)before;
    seen.table_leak = leaky.n; /* every task done, and every future still here */
    manage(run, &fixed, seen.n, 1000);
    seen.table_fixed = fixed.n;
    seen.peak_fixed = fixed.peak;
    cl_pool_shutdown(pool, false);
    manager_free(&leaky);
    manager_free(&fixed);
}

/* ------------------------------------------------------------ the hand-made pool */

/* The guides' ThreadPool: workers poll a queue with a 1 s timeout and a shutdown
 * flag; wait_completion is queue.join(). */
struct hm_task {
    int fail; /* "raises" */
};

static struct {
    struct cl_queue q;
    pthread_t threads[HAND_MADE_MAX_WORKERS];
    int nthreads;
    _Atomic bool fixed; /* read by the watchdog's report */
    _Atomic bool shutdown;
    _Atomic uint64_t put, marked_done, errors;
} hm;

/* [snippet hand-made] */
static void *hm_worker(void *arg)
{
    (void)arg;
    while (!atomic_load(&hm.shutdown)) {
        void *item;
        if (cl_queue_get_timed(&hm.q, &item, 1000 * MS) != CL_Q_OK)
            continue; /* queue.Empty after the 1 s poll: look at the flag again */
        const struct hm_task *t = item;
        if (t->fail != 0) { /* except Exception: print it, and go round the loop */
            atomic_fetch_add(&hm.errors, 1);
            continue; /* ...past task_done: join() waits for it forever */
        }
        cl_queue_task_done(&hm.q);
        atomic_fetch_add(&hm.marked_done, 1);
    }
    return NULL;
}
/* [end hand-made] */

/* [snippet hand-made-fixed] */
static void *hm_worker_fixed(void *arg)
{
    (void)arg;
    void *item;
    while (cl_queue_get(&hm.q, &item) == CL_Q_OK) { /* CL_Q_CLOSED: shut down */
        const struct hm_task *t = item;
        if (t->fail != 0)
            atomic_fetch_add(&hm.errors, 1); /* reported to the caller, below */
        cl_queue_task_done(&hm.q);           /* on every path: Python's finally */
        atomic_fetch_add(&hm.marked_done, 1);
    }
    return NULL;
}
/* [end hand-made-fixed] */

static void hand_made(struct cl_run *run, bool fixed)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (uint64_t)cl_param(run, TASKS);
    int workers = (int)cl_param(run, WORKERS);
    hm.nthreads = workers;
    atomic_store(&hm.fixed, fixed);
    atomic_store(&hm.shutdown, false);
    atomic_store(&hm.put, 0);
    atomic_store(&hm.marked_done, 0);
    atomic_store(&hm.errors, 0);
    CL_PT(cl_queue_init(&hm.q, seen.n));
    struct hm_task *tasks = cl_xcalloc(seen.n, sizeof *tasks);
    tasks[seen.n / 2].fail = 1; /* one task raises, in every run */
    for (int i = 0; i < hm.nthreads; i++)
        CL_PT(pthread_create(&hm.threads[i], NULL, fixed ? hm_worker_fixed : hm_worker, NULL));
    for (uint64_t i = 0; i < seen.n; i++) {
        cl_queue_put(&hm.q, &tasks[i]);
        atomic_fetch_add(&hm.put, 1);
        progress(run);
    }
    waiting(run, "waits in wait_completion (queue join) for every task_done");
    cl_queue_join(&hm.q); /* wait_completion() */
    waiting(run, NULL);
    uint64_t t0 = cl_now_ns();
    if (fixed)
        cl_queue_close(&hm.q); /* wakes every worker at once: no poll to sit out */
    atomic_store(&hm.shutdown, true);
    for (int i = 0; i < hm.nthreads; i++)
        CL_PT(pthread_join(hm.threads[i], NULL));
    seen.elapsed_ns = cl_now_ns() - t0;
    seen.errors = atomic_load(&hm.errors);
    seen.done_marked = atomic_load(&hm.marked_done);
    cl_queue_destroy(&hm.q);
    free(tasks);
}

void run_hand_made(struct cl_run *run)
{
    hand_made(run, false);
}

void run_hand_made_fixed(struct cl_run *run)
{
    hand_made(run, true);
}

void report_hand_made(int fd)
{
    uint64_t put = atomic_load(&hm.put), marked = atomic_load(&hm.marked_done);
    uint64_t errors = atomic_load(&hm.errors);
    dprintf(fd,
            "  the hand-made pool: %llu tasks put, %llu marked done, %llu failed; join waits "
            "for %llu task_done call%s that %s\n",
            (unsigned long long)put, (unsigned long long)marked, (unsigned long long)errors,
            (unsigned long long)(put - marked), put - marked == 1 ? "" : "s",
            atomic_load(&hm.fixed) ? "have not come yet"
                                   : "the failing task skipped: it will never come");
}

/* ------------------------------------------------------------ check */

void check_lifetime(const struct cl_run *run, struct cl_result *res)
{
    double us = seen.n ? (double)seen.elapsed_ns / 1e3 / (double)seen.n : 0;
    char a[32], b[32];
    res->ops = seen.n;
    switch ((enum kind)run->variant->kind) {
    case PER_REQUEST:
    case REUSED:
        res->exact = seen.wrong == 0;
        cl_metric_real(res, "us_per_request", us);
        cl_metric_int(res, "threads_started", (long long)seen.threads);
        cl_verdict(res, "%s requests%s: %.1f us each, %s thread%s started%s",
                   cl_fmt_count(seen.n, a),
                   run->variant->kind == PER_REQUEST ? ", a new pool each" : " on one pool", us,
                   cl_fmt_count(seen.threads, b), seen.threads == 1 ? "" : "s",
                   run->variant->kind == PER_REQUEST ? " and joined" : "");
        break;
    case NO_SHUTDOWN: {
        long grew = seen.tasks_after - seen.tasks_before;
        res->exact = seen.wrong == 0 && grew == (long)seen.n;
        cl_metric_int(res, "threads_before", seen.tasks_before);
        cl_metric_int(res, "threads_after", seen.tasks_after);
        cl_metric_int(res, "idle_threads_left", grew);
        cl_verdict(res,
                   "%lld pools never shut down: %ld idle threads left behind "
                   "(/proc/self/task %ld -> %ld); a shutdown would have joined them",
                   cl_param(run, POOLS), grew, seen.tasks_before, seen.tasks_after);
        break;
    }
    case FUTURES_LEAK: {
        res->exact = seen.table_leak == 0;
        cl_metric_int(res, "table_leak", (long long)seen.table_leak);
        cl_metric_int(res, "table_fixed", (long long)seen.table_fixed);
        cl_metric_int(res, "peak_fixed", (long long)seen.peak_fixed);
        cl_metric_int(res, "retained_kib", seen.retained_bytes / 1024);
        char kib[48] = ""; /* malloc's own count: none under a sanitizer's allocator */
        if (seen.retained_bytes > 0)
            snprintf(kib, sizeof kib, " (%lld KiB of memory)", seen.retained_bytes / 1024);
        cl_verdict(res,
                   "%s tasks done, none pending, and the table still holds %s futures%s; "
                   "the callback that removes its entry leaves %zu",
                   cl_fmt_count(seen.n, a), cl_fmt_count(seen.table_leak, b), kib,
                   seen.table_fixed);
        break;
    }
    default: /* the hand-made pools; the unfixed one never gets here */
        res->exact = seen.done_marked == seen.n && seen.errors == 1;
        cl_metric_int(res, "marked_done", (long long)seen.done_marked);
        cl_metric_int(res, "errors", (long long)seen.errors);
        cl_metric_real(res, "shutdown_ms", (double)seen.elapsed_ns / 1e6);
        cl_verdict(res,
                   "%llu tasks, %llu error reported, join returned: task_done on every "
                   "path; shutdown by close took %.2f ms",
                   (unsigned long long)seen.n, (unsigned long long)seen.errors,
                   (double)seen.elapsed_ns / 1e6);
    }
}
