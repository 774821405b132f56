/* pools: the process pool's variants, and the chunking sweep that runs on both
 * pools. The tasks a worker process runs are in proc_tasks, named by index: the
 * parent never sends code, only (task, first item, count, argument). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pools.h"

/* ------------------------------------------------------------ the workers' tasks */

/* [snippet proc-tasks] */
static int sum_item(uint64_t item, uint64_t terms, uint64_t *result)
{
    *result = cl_sum_squares_range(item * terms, (item + 1) * terms); /* about 1 ns a term */
    return 0;
}

static int sleep_square(uint64_t item, uint64_t ms, uint64_t *result)
{
    cl_sleep_ns(ms * MS);
    *result = item * item;
    return 0;
}

static _Noreturn int hang(uint64_t item, uint64_t arg, uint64_t *result)
{
    (void)item;
    (void)arg;
    (void)result;
    for (;;) /* a task stuck for good: only a kill ends it */
        pause();
}
/* [end proc-tasks] */

/* nested: one item is NESTED_STEPS steps of work split over `threads` threads that
 * meet at a barrier after each step, as an OpenMP loop or a BLAS call does. The
 * result is the process's involuntary context switches during the item; a wrong
 * sum fails it with EDOM. */
#define NESTED_STEPS      4000
#define NESTED_STEP_TERMS 20000ull

struct inner {
    pthread_barrier_t *barrier;
    uint64_t id, threads, sum;
};

static void *inner_thread(void *arg)
{
    struct inner *in = arg;
    uint64_t share = NESTED_STEP_TERMS / in->threads;
    for (uint64_t s = 0; s < NESTED_STEPS; s++) {
        uint64_t lo = s * NESTED_STEP_TERMS + in->id * share;
        uint64_t hi = in->id + 1 == in->threads ? (s + 1) * NESTED_STEP_TERMS : lo + share;
        in->sum += cl_sum_squares_range(lo, hi);
        cl_pthread_barrier_wait(in->barrier); /* everyone's part before the next step */
    }
    return NULL;
}

static int nested_item(uint64_t item, uint64_t threads, uint64_t *result)
{
    (void)item;
    struct rusage r0, r1;
    CL_SYS(getrusage(RUSAGE_SELF, &r0));
    pthread_barrier_t barrier;
    CL_PT(pthread_barrier_init(&barrier, NULL, (unsigned)threads));
    struct inner *in = cl_xcalloc(threads, sizeof *in);
    pthread_t *tids = cl_xcalloc(threads, sizeof *tids);
    for (uint64_t t = 0; t < threads; t++) {
        in[t] = (struct inner){.barrier = &barrier, .id = t, .threads = threads};
        if (t > 0)
            CL_PT(pthread_create(&tids[t], NULL, inner_thread, &in[t]));
    }
    inner_thread(&in[0]);
    uint64_t sum = in[0].sum;
    for (uint64_t t = 1; t < threads; t++) {
        CL_PT(pthread_join(tids[t], NULL));
        sum += in[t].sum;
    }
    CL_PT(pthread_barrier_destroy(&barrier));
    free(tids);
    free(in);
    CL_SYS(getrusage(RUSAGE_SELF, &r1));
    *result = (uint64_t)(r1.ru_nivcsw - r0.ru_nivcsw);
    return sum == cl_sum_squares_closed(NESTED_STEPS * NESTED_STEP_TERMS) ? 0 : EDOM;
}

cl_proc_fn *const proc_tasks[NPROC_TASKS] = {
    [PT_SUM_ITEM] = sum_item,
    [PT_SLEEP_SQUARE] = sleep_square,
    [PT_HANG] = hang,
    [PT_NESTED] = nested_item,
};

/* ------------------------------------------------------------ what the runs saw */

#define SWEEP_MAX 5

static struct {
    size_t n;
    int workers;
    uint64_t wrong; /* results not at their index, or failed */
    /* chunking: per pool (0 thread, 1 process), per chunk size */
    size_t nsizes;
    size_t sizes[SWEEP_MAX];
    bool pool_ran[2];
    double item_ns[2][SWEEP_MAX];
    size_t out_of_order[SWEEP_MAX]; /* thread pool: chunks that finished before an earlier one */
    /* process-map, process-cancel, nested */
    uint64_t elapsed_ns, ideal_ns;
    enum cl_pool_status hung_wait;
    bool cancelled, hung_untouched;
    uint64_t recovery_ns;
    struct cl_procpool_stats stats;
    uint64_t nested_ns[2], ivcsw[2]; /* [0] T inner threads, [1] one */
} seen;

static struct cl_procpool *procpool_or_die(int workers, bool completions)
{
    struct cl_procpool *pp =
        cl_procpool_new(&(struct cl_procpool_opts){.workers = workers, .completions = completions});
    if (pp == NULL && errno == ECANCELED) /* Ctrl-C: another thread ends the process */
        for (;;)
            pause();
    if (pp == NULL)
        cl_die(__FILE__, __LINE__, "cl_procpool_new", errno);
    return pp;
}

/* ------------------------------------------------------------ chunking */

struct chunk_arg {
    uint64_t *results;
    uint64_t first, count, terms;
};

/* [snippet thread-chunk] */
static int sum_chunk(void *arg, uint64_t *result)
{
    const struct chunk_arg *c = arg;
    for (uint64_t i = c->first; i < c->first + c->count; i++)
        sum_item(i, c->terms, &c->results[i]); /* placed by index, not by arrival */
    *result = c->first;
    return 0;
}
/* [end thread-chunk] */

static double thread_sweep_point(struct cl_pool *pool, uint64_t *results, size_t chunk,
                                 uint64_t terms, size_t *out_of_order)
{
    size_t nchunks = (seen.n + chunk - 1) / chunk;
    struct chunk_arg *args = cl_xcalloc(nchunks, sizeof *args);
    struct cl_pool_future **fs = cl_xcalloc(nchunks, sizeof(struct cl_pool_future *));
    uint64_t t0 = cl_now_ns();
    for (size_t c = 0; c < nchunks; c++) {
        uint64_t first = c * chunk, count = first + chunk <= seen.n ? chunk : seen.n - first;
        args[c] = (struct chunk_arg){results, first, count, terms};
        if ((fs[c] = cl_pool_submit(pool, sum_chunk, &args[c])) == NULL)
            cl_die(__FILE__, __LINE__, "cl_pool_submit", errno);
    }
    struct cl_pool_iter *it = cl_pool_as_completed(fs, nchunks, CL_FOREVER);
    size_t i, k = 0, highest = 0;
    enum cl_pool_status st;
    while ((st = cl_pool_next(it, &i, NULL, NULL)) != CL_POOL_END) {
        seen.wrong += st != CL_POOL_OK;
        *out_of_order += k++ > 0 && i < highest; /* appended as they came: out of place */
        highest = i > highest ? i : highest;
    }
    double ns = (double)(cl_now_ns() - t0) / (double)seen.n;
    cl_pool_iter_end(it);
    for (size_t c = 0; c < nchunks; c++)
        cl_pool_release(fs[c]);
    free(fs);
    free(args);
    return ns;
}

static double process_sweep_point(struct cl_procpool *pp, uint64_t *results, int *errors,
                                  size_t chunk, uint64_t terms)
{
    uint64_t t0 = cl_now_ns();
    /* [snippet process-chunks] */
    struct cl_procpool_batch *b =
        cl_procpool_map(pp, PT_SUM_ITEM, terms, seen.n, chunk, results, errors);
    /* [end process-chunks] */
    if (b == NULL)
        cl_die(__FILE__, __LINE__, "cl_procpool_map", errno);
    seen.wrong += cl_procpool_wait(b, CL_FOREVER) != CL_POOL_OK;
    double ns = (double)(cl_now_ns() - t0) / (double)seen.n;
    cl_procpool_release(b);
    return ns;
}

static void check_items(const uint64_t *results, const int *errors, uint64_t terms)
{
    for (uint64_t i = 0; i < seen.n; i++) {
        uint64_t want = cl_sum_squares_closed((i + 1) * terms) - cl_sum_squares_closed(i * terms);
        seen.wrong += results[i] != want || (errors != NULL && errors[i] != 0);
    }
}

void run_chunking(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (size_t)cl_param(run, TASKS);
    seen.workers = (int)cl_param(run, WORKERS);
    uint64_t terms = (uint64_t)cl_param(run, TERMS);
    /* multiprocessing.Pool.map's default: ceil(n / (4 x workers)) */
    size_t mp_default = (seen.n + 4 * (size_t)seen.workers - 1) / (4 * (size_t)seen.workers);
    if (cl_param_given(run, CHUNK)) {
        seen.sizes[seen.nsizes++] = (size_t)cl_param(run, CHUNK);
    } else {
        const size_t sweep[] = {1, 10, 100, 1000};
        for (size_t k = 0; k < 4; k++)
            seen.sizes[seen.nsizes++] = sweep[k];
        seen.sizes[seen.nsizes++] = mp_default;
    }
    uint64_t *results = cl_xcalloc(seen.n, sizeof *results);
    int *errors = cl_xcalloc(seen.n, sizeof *errors);
    int which = (int)cl_param(run, POOL);
    for (int p = 0; p < 2; p++) {
        if (which != POOL_BOTH && which != p)
            continue;
        seen.pool_ran[p] = true;
        struct cl_pool *pool =
            p == 0 ? cl_pool_new(&(struct cl_pool_opts){seen.workers, false}) : NULL;
        struct cl_procpool *pp = p == 1 ? procpool_or_die(seen.workers, false) : NULL;
        if (p == 0 && pool == NULL)
            cl_die(__FILE__, __LINE__, "cl_pool_new", errno);
        for (size_t k = 0; k < seen.nsizes; k++) {
            memset(results, 0, seen.n * sizeof *results);
            waiting(run, p == 0 ? "waits for the thread pool's chunks"
                                : "waits for the process pool's chunks");
            seen.item_ns[p][k] =
                p == 0
                    ? thread_sweep_point(pool, results, seen.sizes[k], terms, &seen.out_of_order[k])
                    : process_sweep_point(pp, results, errors, seen.sizes[k], terms);
            check_items(results, p == 1 ? errors : NULL, terms);
            progress(run);
        }
        if (pool != NULL)
            cl_pool_shutdown(pool, false);
        if (pp != NULL)
            cl_procpool_shutdown(pp, false);
    }
    free(results);
    free(errors);
}

/* ------------------------------------------------------------ process-map */

#define SLEEP_TASK_MS 10

void run_process_map(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (size_t)cl_param(run, TASKS);
    seen.workers = (int)cl_param(run, WORKERS);
    uint64_t *results = cl_xcalloc(seen.n, sizeof *results);
    int *errors = cl_xcalloc(seen.n, sizeof *errors);
    struct cl_procpool *pp = procpool_or_die(seen.workers, true);
    uint64_t t0 = cl_now_ns();
    /* [snippet process-map] */
    struct cl_procpool_batch *b =
        cl_procpool_map(pp, PT_SLEEP_SQUARE, SLEEP_TASK_MS, seen.n, 1, results, errors);
    struct pollfd pfd = {.fd = cl_procpool_completion_fd(pp), .events = POLLIN};
    struct cl_procpool_batch *done = NULL;
    while (done == NULL) { /* as an event loop would: sleep until the fd is readable */
        CL_SYS_RETRY(poll(&pfd, 1, -1));
        uint64_t count;
        CL_SYS_RETRY(read(pfd.fd, &count, sizeof count));
        done = cl_procpool_take_done(pp); /* the batch, settled */
    }
    /* [end process-map] */
    seen.elapsed_ns = cl_now_ns() - t0;
    seen.wrong += done == NULL || cl_procpool_wait(done, 0) != CL_POOL_OK;
    for (uint64_t i = 0; i < seen.n; i++)
        seen.wrong += results[i] != i * i || errors[i] != 0;
    progress(run);
    seen.ideal_ns = (seen.n + (size_t)seen.workers - 1) / (size_t)seen.workers * SLEEP_TASK_MS * MS;
    seen.stats = cl_procpool_stats(pp);
    cl_procpool_release(done);
    cl_procpool_release(b);
    cl_procpool_shutdown(pp, false);
    free(results);
    free(errors);
}

/* ------------------------------------------------------------ process-cancel */

void run_process_cancel(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.n = (size_t)cl_param(run, TASKS);
    seen.workers = (int)cl_param(run, WORKERS);
    struct cl_procpool *pp = procpool_or_die(seen.workers, false);
    uint64_t hung_result = 12345;
    int hung_err = -1;
    waiting(run, "waits for the hung task, with a timeout");
    /* [snippet process-cancel] */
    struct cl_procpool_batch *b = cl_procpool_map(pp, PT_HANG, 0, 1, 1, &hung_result, &hung_err);
    seen.hung_wait = cl_procpool_wait(b, (uint64_t)cl_param(run, WAIT_MS) * MS); /* TIMEOUT */
    uint64_t t0 = cl_now_ns();
    seen.cancelled = cl_procpool_cancel(b); /* SIGKILL its worker; a new one takes its place */
    /* [end process-cancel] */
    progress(run);
    waiting(run, "waits for the replacement worker");
    struct cl_procpool_stats s = cl_procpool_stats(pp);
    while (s.spawned < (uint64_t)seen.workers + 1 || s.live < seen.workers) {
        cl_sleep_ns(100 * 1000ull);
        s = cl_procpool_stats(pp);
    }
    seen.recovery_ns = cl_now_ns() - t0;
    seen.cancelled = seen.cancelled && cl_procpool_wait(b, 0) == CL_POOL_CANCELLED;
    cl_procpool_release(b);
    seen.hung_untouched = hung_result == 12345 && hung_err == -1;
    uint64_t *results = cl_xcalloc(seen.n, sizeof *results); /* then a full pool's work */
    int *errors = cl_xcalloc(seen.n, sizeof *errors);
    waiting(run, "waits for the batch after the cancel");
    b = cl_procpool_map(pp, PT_SLEEP_SQUARE, SLEEP_TASK_MS, seen.n, 1, results, errors);
    seen.wrong += cl_procpool_wait(b, CL_FOREVER) != CL_POOL_OK;
    for (uint64_t i = 0; i < seen.n; i++)
        seen.wrong += results[i] != i * i || errors[i] != 0;
    progress(run);
    cl_procpool_release(b);
    seen.stats = cl_procpool_stats(pp);
    cl_procpool_shutdown(pp, false);
    free(results);
    free(errors);
}

/* ------------------------------------------------------------ nested */

void run_nested(struct cl_run *run)
{
    memset(&seen, 0, sizeof seen);
    seen.workers = (int)cl_param(run, WORKERS);
    seen.n = (size_t)seen.workers; /* one item per worker process */
    uint64_t inner = (uint64_t)cl_param(run, INNER);
    struct cl_procpool *pp = procpool_or_die(seen.workers, false);
    uint64_t *ivcsw = cl_xcalloc(seen.n, sizeof *ivcsw);
    int *errors = cl_xcalloc(seen.n, sizeof *errors);
    const uint64_t threads[2] = {inner, 1};
    for (int c = 0; c < 2; c++) {
        waiting(run, c == 0 ? "waits for the nested threads" : "waits for the single threads");
        uint64_t t0 = cl_now_ns();
        struct cl_procpool_batch *b =
            cl_procpool_map(pp, PT_NESTED, threads[c], seen.n, 1, ivcsw, errors);
        seen.wrong += cl_procpool_wait(b, CL_FOREVER) != CL_POOL_OK;
        seen.nested_ns[c] = cl_now_ns() - t0;
        cl_procpool_release(b);
        for (size_t i = 0; i < seen.n; i++) {
            seen.wrong += errors[i] != 0;
            seen.ivcsw[c] += ivcsw[i];
            progress(run);
        }
    }
    cl_procpool_shutdown(pp, false);
    free(ivcsw);
    free(errors);
}

/* ------------------------------------------------------------ check */

static void check_chunking(struct cl_result *res)
{
    static const char *const names[2][SWEEP_MAX] = {
        {"thread_c1_ns", "thread_c10_ns", "thread_c100_ns", "thread_c1000_ns", "thread_cdef_ns"},
        {"process_c1_ns", "process_c10_ns", "process_c100_ns", "process_c1000_ns",
         "process_cdef_ns"}};
    static const char *const one_size[2] = {"thread_ns", "process_ns"}; /* --chunk, both */
    static const char *const pool_word[2] = {"thread", "process"};
    char text[256] = "";
    size_t used = 0;
    res->exact = seen.wrong == 0;
    res->ops = seen.n * seen.nsizes * (size_t)(seen.pool_ran[0] + seen.pool_ran[1]);
    for (int p = 0; p < 2; p++) {
        if (!seen.pool_ran[p])
            continue;
        size_t best = 0;
        for (size_t k = 0; k < seen.nsizes; k++) {
            const char *name = seen.nsizes > 1                        ? names[p][k]
                               : seen.pool_ran[0] != seen.pool_ran[1] ? "item_ns"
                                                                      : one_size[p];
            cl_metric_real(res, name, seen.item_ns[p][k]);
            if (seen.item_ns[p][k] < seen.item_ns[p][best])
                best = k;
        }
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s pool %.2f us/item",
                                 used ? "; " : "", pool_word[p], seen.item_ns[p][0] / 1e3);
        if (seen.nsizes > 1)
            used += (size_t)snprintf(text + used, sizeof text - used,
                                     " at chunk 1, %.2f at chunk %zu (%.1fx less)",
                                     seen.item_ns[p][best] / 1e3, seen.sizes[best],
                                     seen.item_ns[p][0] / seen.item_ns[p][best]);
        else
            used +=
                (size_t)snprintf(text + used, sizeof text - used, " at chunk %zu", seen.sizes[0]);
    }
    if (seen.pool_ran[0]) /* chunks the thread pool finished before an earlier one */
        cl_metric_int(res, "out_of_order", (long long)seen.out_of_order[0]);
    if (seen.nsizes > 1)
        cl_metric_int(res, "pool_default_chunk", (long long)seen.sizes[seen.nsizes - 1]);
    cl_verdict(res, "%s%s", text, res->exact ? "; every result at its index" : "; WRONG results");
}

void check_procs(const struct cl_run *run, struct cl_result *res)
{
    res->ops = seen.n;
    switch ((enum kind)run->variant->kind) {
    case CHUNKING:
        check_chunking(res);
        break;
    case PROCESS_MAP:
        res->exact = seen.wrong == 0 && seen.stats.spawned == (uint64_t)seen.workers;
        cl_metric_real(res, "wall_s", cl_seconds(seen.elapsed_ns));
        cl_metric_real(res, "ideal_s", cl_seconds(seen.ideal_ns));
        cl_metric_int(res, "workers_spawned", (long long)seen.stats.spawned);
        cl_verdict(res,
                   "%zu tasks of %d ms on %d worker processes in %.3f s (ideal %.3f s); "
                   "every result at its index, awaited on the completion fd",
                   seen.n, SLEEP_TASK_MS, seen.workers, cl_seconds(seen.elapsed_ns),
                   cl_seconds(seen.ideal_ns));
        break;
    case PROCESS_CANCEL:
        res->exact = seen.wrong == 0 && seen.hung_wait == CL_POOL_TIMEOUT && seen.cancelled &&
                     seen.hung_untouched && seen.stats.killed == 1 &&
                     seen.stats.spawned == (uint64_t)seen.workers + 1 &&
                     seen.stats.live == seen.workers && seen.stats.died == 0;
        cl_metric_int(res, "killed", (long long)seen.stats.killed);
        cl_metric_int(res, "spawned", (long long)seen.stats.spawned);
        cl_metric_real(res, "recovery_ms", (double)seen.recovery_ns / 1e6);
        cl_verdict(res,
                   "the hung task: %s after %lld ms; cancel killed its worker and a "
                   "replacement was running %.1f ms later; then %zu of %zu tasks done on %d "
                   "workers",
                   cl_pool_status_str(seen.hung_wait), cl_param(run, WAIT_MS),
                   (double)seen.recovery_ns / 1e6, seen.n - (size_t)seen.wrong, seen.n,
                   seen.stats.live);
        break;
    default: { /* NESTED */
        double slow = (double)seen.nested_ns[0] / (double)seen.nested_ns[1];
        long long inner = cl_param(run, INNER);
        res->exact = seen.wrong == 0;
        res->ops = 2 * seen.n; /* each item twice: nested, then flat */
        cl_metric_int(res, "threads", seen.workers * inner);
        cl_metric_real(res, "nested_s", cl_seconds(seen.nested_ns[0]));
        cl_metric_real(res, "flat_s", cl_seconds(seen.nested_ns[1]));
        cl_metric_real(res, "slowdown", slow);
        cl_metric_int(res, "ivcsw_nested", (long long)seen.ivcsw[0]);
        cl_metric_int(res, "ivcsw_flat", (long long)seen.ivcsw[1]);
        cl_verdict(res,
                   "%d processes x %lld threads (%lld on %ld CPUs): %.3f s, %llu involuntary "
                   "switches; x 1 thread: %.3f s, %llu: %.1fx the time",
                   seen.workers, inner, seen.workers * inner, ncpus(),
                   cl_seconds(seen.nested_ns[0]), (unsigned long long)seen.ivcsw[0],
                   cl_seconds(seen.nested_ns[1]), (unsigned long long)seen.ivcsw[1], slow);
    }
    }
}
