/* pool-peer: a stream of tiny tasks through GLib's GThreadPool and through lib's
 * thread pool, the same way.
 *
 * Both pools get the same number of threads and the same task, which adds one to
 * one atomic counter: the completions. The submitter pushes every task, then
 * waits for them all at the end the way each library offers
 * (g_thread_pool_free(pool, FALSE, TRUE); cl_pool_shutdown(pool, false)), and
 * checks the counter. The clock runs from the first push to the end of that
 * wait; making the pool is outside it. lib's pool also makes a future per task
 * (released at once: fire and forget), which GLib's has no notion of.
 *
 * Prints the rate, or with --json one line in the demos' shape: ops (tasks),
 * wall_s, ns_per_op, metrics {tasks_per_s}.
 *
 *   pool-peer --impl glib|conclab [--workers N] [--tasks N] [--json] */
#include <glib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclab.h"

static _Atomic uint64_t completions;

/* The task, the same for both. */
static void tiny(void)
{
    atomic_fetch_add_explicit(&completions, 1, memory_order_relaxed);
}

static void glib_task(gpointer data, gpointer user_data)
{
    (void)data;
    (void)user_data;
    tiny();
}

static int conclab_task(void *arg, uint64_t *result)
{
    (void)arg;
    (void)result;
    tiny();
    return 0;
}

static double run_glib(int workers, uint64_t tasks)
{
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(glib_task, NULL, workers, FALSE, &err);
    if (pool == NULL)
        cl_fatal("pool-peer: g_thread_pool_new: %s", err->message);
    static int token; /* GLib refuses NULL data */
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < tasks; i++)
        if (!g_thread_pool_push(pool, &token, &err))
            cl_fatal("pool-peer: g_thread_pool_push: %s", err->message);
    g_thread_pool_free(pool, FALSE, TRUE); /* waits for every task */
    return cl_seconds(cl_now_ns() - t0);
}

static double run_conclab(int workers, uint64_t tasks)
{
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = workers});
    if (pool == NULL)
        cl_fatal("pool-peer: cl_pool_new failed");
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < tasks; i++) {
        struct cl_pool_future *f = cl_pool_submit(pool, conclab_task, NULL);
        if (f == NULL)
            cl_fatal("pool-peer: cl_pool_submit failed");
        cl_pool_release(f);
    }
    cl_pool_shutdown(pool, false); /* waits for every task */
    return cl_seconds(cl_now_ns() - t0);
}

static long long number(const char *flag, const char *arg, long long max)
{
    char *end;
    long long v = strtoll(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v < 1 || v > max) {
        fprintf(stderr, "pool-peer: %s: expected 1 to %lld, got '%s'\n", flag, max, arg);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *impl = NULL;
    int workers = 2;
    uint64_t tasks = 200000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (i + 1 < argc && strcmp(argv[i], "--impl") == 0)
            impl = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--workers") == 0) {
            workers = (int)number(argv[i], argv[i + 1], CL_POOL_MAX_WORKERS);
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--tasks") == 0) {
            tasks = (uint64_t)number(argv[i], argv[i + 1], 100000000);
            i++;
        } else
            impl = "?";
    }
    bool glib = impl != NULL && strcmp(impl, "glib") == 0;
    if (!glib && (impl == NULL || strcmp(impl, "conclab") != 0)) {
        fprintf(stderr,
                "usage: pool-peer --impl glib|conclab [--workers N] [--tasks N] [--json]\n");
        return 2;
    }
    double wall = glib ? run_glib(workers, tasks) : run_conclab(workers, tasks);
    uint64_t done = atomic_load(&completions);
    if (done != tasks) {
        fprintf(stderr, "pool-peer: %llu of %llu tasks completed\n", (unsigned long long)done,
                (unsigned long long)tasks);
        return 1;
    }
    if (!json) {
        printf("%s: %llu tiny tasks on %d threads in %.4f s: %.0f ns each\n", impl,
               (unsigned long long)tasks, workers, wall, wall * 1e9 / (double)tasks);
        return 0;
    }
    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "chapter", "pools");
    cl_json_str(&j, "variant", glib ? "glib" : "conclab");
    cl_json_int(&j, "threads", workers);
    cl_json_uint(&j, "ops", tasks);
    cl_json_real(&j, "wall_s", wall);
    cl_json_real(&j, "ns_per_op", wall * 1e9 / (double)tasks);
    cl_json_object(&j, "metrics");
    cl_json_real(&j, "tasks_per_s", (double)tasks / wall);
    cl_json_close(&j);
    cl_json_end(&j);
    return 0;
}
