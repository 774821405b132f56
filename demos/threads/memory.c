/* threads: what a thread costs in memory. --count threads are created, each
 * blocks at once on one condition variable, and the process's and the
 * kernel's memory are read before and after: per thread, what is resident
 * (touched), what is only reserved (virtual), the kernel stack, the page
 * tables that map the stack, and the kernel's other objects (slab). Then they
 * are released and joined. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "threads.h"

/* Sanitizer builds keep shadow memory per thread and need bigger stacks: a
 * smaller run there, and its memory figures mean nothing. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif
#define SANITIZED_MAX_COUNT     500
#define SANITIZED_MIN_STACK_KIB 256

/* The number at the start of text, or -1. */
static long long number(const char *text)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    return end == text || errno != 0 ? -1 : v;
}

/* A number from a one-number file of /proc/sys, or -1. */
static long long proc_number(const char *path)
{
    long long v = -1;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char line[64];
        if (fgets(line, sizeof line, f) != NULL)
            v = number(line);
        fclose(f);
    }
    return v;
}

int prepare_memory(struct cl_run *run, char *err, size_t errlen)
{
    long long *p = run->param;
    if (!cl_param_given(run, COUNT))
        p[COUNT] = SANITIZED ? SANITIZED_MAX_COUNT : 1000;
    if (cl_param_given(run, STACK_KIB) && p[STACK_KIB] % 4 != 0) {
        snprintf(err, errlen, "threads: --stack-kib %lld: must be a multiple of 4 (a page)",
                 p[STACK_KIB]);
        return 1;
    }
    if (SANITIZED && p[COUNT] > SANITIZED_MAX_COUNT) {
        snprintf(err, errlen, "threads: --count %lld: at most %d in a sanitizer build", p[COUNT],
                 SANITIZED_MAX_COUNT);
        return 1;
    }
    if (SANITIZED && cl_param_given(run, STACK_KIB) && p[STACK_KIB] < SANITIZED_MIN_STACK_KIB) {
        snprintf(err, errlen, "threads: --stack-kib %lld: at least %d in a sanitizer build",
                 p[STACK_KIB], SANITIZED_MIN_STACK_KIB);
        return 1;
    }
    /* the system-wide limits a thread counts against, before any is made */
    static const struct {
        const char *name, *path, *what;
        int per_thread;
    } limits[] = {
        {"threads-max", "/proc/sys/kernel/threads-max", "threads on the system", 1},
        {"pid_max", "/proc/sys/kernel/pid_max", "ids for processes and threads", 1},
        {"max_map_count", "/proc/sys/vm/max_map_count",
         "memory maps per process; each thread's stack and guard page take 2", 2},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        long long v = proc_number(limits[i].path);
        if (v >= 0 && p[COUNT] > v / limits[i].per_thread) {
            char a[32], b[32];
            snprintf(err, errlen, "threads: --count %s: more than %s allows (%s%s: %s)",
                     cl_fmt_count((uint64_t)p[COUNT], a), limits[i].name,
                     cl_fmt_count((uint64_t)(v / limits[i].per_thread), b),
                     limits[i].per_thread == 2 ? " = half of it" : "", limits[i].what);
            return 1;
        }
    }
    run->iters = (uint64_t)p[COUNT]; /* one operation per thread created */
    return 0;
}

/* What /proc says, in KiB. */
struct mem {
    long long rss, vsize, pte; /* /proc/self/status: VmRSS, VmSize, VmPTE (page tables) */
    long long kstack, slab;    /* /proc/meminfo: KernelStack, Slab (the whole system) */
};

static long long field_kib(const char *path, const char *field)
{
    char line[256];
    long long v = -1;
    size_t len = strlen(field);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            v = number(line + len + 1);
            break;
        }
    fclose(f);
    return v;
}

static struct mem read_mem(void)
{
    return (struct mem){.rss = field_kib("/proc/self/status", "VmRSS"),
                        .vsize = field_kib("/proc/self/status", "VmSize"),
                        .pte = field_kib("/proc/self/status", "VmPTE"),
                        .kstack = field_kib("/proc/meminfo", "KernelStack"),
                        .slab = field_kib("/proc/meminfo", "Slab")};
}

/* [snippet memory] */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* the threads wait here for open */
    pthread_cond_t parked_cv; /* the creator waits here for parked == count */
    int parked;               /* threads blocked on cv */
    bool open;
} hold = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};

static void *blocked_main(void *arg)
{
    (void)arg;
    CL_PT(pthread_mutex_lock(&hold.mu));
    hold.parked++;
    CL_PT(pthread_cond_signal(&hold.parked_cv));
    while (!hold.open)
        CL_PT(pthread_cond_wait(&hold.cv, &hold.mu)); /* blocked: no CPU, little memory */
    CL_PT(pthread_mutex_unlock(&hold.mu));
    return NULL;
}
/* [end memory] */

static void release_all(void)
{
    CL_PT(pthread_mutex_lock(&hold.mu));
    hold.open = true;
    CL_PT(pthread_cond_broadcast(&hold.cv));
    CL_PT(pthread_mutex_unlock(&hold.mu));
}

static struct {
    int count;
    size_t stack;
    struct mem before, after;
    uint64_t create_ns, join_ns;
} m;

void run_memory(struct cl_run *run)
{
    int n = m.count = (int)cl_param(run, COUNT);
    pthread_t *tids = cl_xcalloc((size_t)n, sizeof *tids);
    pthread_attr_t attr;
    if (cl_param_given(run, STACK_KIB)) {
        CL_PT(pthread_attr_init(&attr));
        CL_PT(pthread_attr_setstacksize(&attr, (size_t)cl_param(run, STACK_KIB) * 1024));
    } else {
        CL_PT(pthread_getattr_default_np(&attr)); /* RLIMIT_STACK, as plain pthread_create */
    }
    CL_PT(pthread_attr_getstacksize(&attr, &m.stack));
    struct cl_worker *w = &run->workers[0];
    cl_status(w, "creates threads");
    m.before = read_mem();
    uint64_t t0 = cl_now_ns();
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&tids[i], &attr, blocked_main, NULL);
        if (rc != 0)
            refuse_threads(run, rc, tids, i, n, release_all);
        cl_tick(w);
    }
    m.create_ns = cl_now_ns() - t0;
    cl_status(w, "waits for every thread to block");
    CL_PT(pthread_mutex_lock(&hold.mu));
    while (hold.parked < n)
        CL_PT(pthread_cond_wait(&hold.parked_cv, &hold.mu));
    CL_PT(pthread_mutex_unlock(&hold.mu));
    m.after = read_mem();
    cl_status(w, "joins them");
    t0 = cl_now_ns();
    release_all();
    for (int i = 0; i < n; i++)
        CL_PT(pthread_join(tids[i], NULL));
    m.join_ns = cl_now_ns() - t0;
    cl_status(w, NULL);
    CL_PT(pthread_attr_destroy(&attr));
    free(tids);
}

void check_memory(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    double n = m.count;
    double rss = (double)(m.after.rss - m.before.rss) / n;
    double kstack = (double)(m.after.kstack - m.before.kstack) / n;
    double slab = (double)(m.after.slab - m.before.slab) / n;
    double pte = (double)(m.after.pte - m.before.pte) / n;
    double virt = (double)(m.after.vsize - m.before.vsize) / n / 1024;
    res->exact = hold.parked == m.count;
    res->ops = (uint64_t)m.count;
    cl_metric_int(res, "count", m.count);
    cl_metric_int(res, "stack_kib", (long long)(m.stack / 1024));
    cl_metric_real(res, "create_us", (double)m.create_ns / 1e3 / n);
    cl_metric_real(res, "join_us", (double)m.join_ns / 1e3 / n);
    cl_metric_real(res, "rss_kib", rss);
    cl_metric_real(res, "kstack_kib", kstack);
    cl_metric_real(res, "ptables_kib", pte);
    cl_metric_real(res, "slab_kib", slab);
    cl_metric_real(res, "virt_mib", virt);
    if (!res->exact) {
        cl_verdict(res, "%d of %d threads blocked", hold.parked, m.count);
    } else {
        char a[32];
        cl_verdict(res,
                   "%s threads blocked at once; each: %.1f KiB resident, %.1f KiB kernel "
                   "stack, %.1f KiB page tables, %.1f KiB slab, %.2f MiB virtual%s",
                   cl_fmt_count((uint64_t)m.count, a), rss, kstack, pte, slab, virt,
                   SANITIZED ? " (a sanitizer build: not the real figures)" : "");
    }
}
