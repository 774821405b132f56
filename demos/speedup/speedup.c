/* speedup: one set of tasks, five ways to run them, four kinds of work.
 *
 * The executors (the variants) are seq, threads, a pool, processes, and threads
 * behind a simulated GIL. The work (--work) is CPU (a slice of one big sum of
 * squares per task), simulated I/O (a sleep), real I/O (a blocking round trip
 * over a socketpair to a responder that answers after --latency-ms), or mixed:
 * a serial CPU part that no executor can spread out (Amdahl's), then I/O tasks.
 * Every task's result is checked in closed form, and the run reports wall
 * time, CPU time (children included), their ratio and the context switches. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conclab.h"

enum { WORK, TASKS, WORKERS, SIZE, LATENCY_MS, CPU_FRACTION, CPUS, SWITCH_INTERVAL_MS };
enum { CPU, IO_SLEEP, IO_REAL, MIXED };       /* --work */
enum kind { SEQ, THREADS, POOL, PROCS, GIL }; /* the executors */

/* default --size: about 0.1 s of CPU a task, 0.4 s for seq: a shorter run on a 2-vCPU VM
 * often gets less than both cores, and its CPU speedup is then noise */
#define CPU_TASK_SIZE  300000000ull
#define IO_TASKS       100      /* default --tasks for the I/O kinds */
#define LATENCY_MS_DEF 10       /* default --latency-ms */
#define GIL_SLICE      32768ull /* iterations between two GIL checks: tens of µs */
#define SERIAL_CHUNK   65536ull /* the serial part computes in chunks, watching the clock */
#define MAX_PROCS      1024     /* processes procs may fork */
#define BUSY_BELOW     0.9      /* seq's parallelism under this: other programs hold a core */
/* per thread, reserved; 10,000 threads touch ~10 KB each */
#define STACK_BYTES ((size_t)1024 * 1024)

/* Run-wide settings, fixed by prepare before any thread starts. */
static int work, nworkers;
static uint64_t ntasks, task_size, latency_ns, serial_ns;

/* Each task's result, and how many times it ran: the check wants exactly once. */
static uint64_t *results;
static _Atomic uint8_t *runs;

static struct cl_responder *responder; /* io-real only */
static struct cl_queue pool_tasks;     /* pool only */
static struct cl_gil gil;              /* gil only */
static struct cl_gil_thread *gil_threads;
static struct cl_barrier serial_barrier; /* mixed only: its action is the serial part */
static uint64_t serial_spent_ns;
static pid_t *children; /* procs only */
static int children_failed;

/* seq's run_s, shared with the variants that run after it in the same
 * invocation (each in its own child): their speedup over it. NaN: none yet. */
static double *seq_run_s;

/* ------------------------------------------------------------- one task */

/* [snippet task] */
static uint64_t run_task(int channel, uint64_t i)
{
    switch (work) {
    case CPU: /* task i sums the squares of its own slice of one big range */
        return cl_sum_squares_range(i * task_size, (i + 1) * task_size);
    case IO_REAL: /* a blocking round trip: the thread sleeps in read() */
        return cl_round_trip(cl_responder_fd(responder, channel), i);
    default: /* io-sleep and mixed: simulated I/O, the thread sleeps */
        cl_sleep_ns(latency_ns);
        return i;
    }
}
/* [end task] */

static uint64_t expected(uint64_t i)
{
    switch (work) {
    case CPU:
        return cl_sum_squares_closed((i + 1) * task_size) - cl_sum_squares_closed(i * task_size);
    case IO_REAL:
        return ~i; /* the responder's answer */
    default:
        return i;
    }
}

static void finish(struct cl_worker *w, uint64_t i, uint64_t value)
{
    if (i >= ntasks)
        return; /* not a task of ours: the check finds it missing */
    results[i] = value;
    atomic_fetch_add_explicit(&runs[i], 1, memory_order_relaxed);
    cl_tick(w);
}

/* [snippet serial] */
/* mixed: Amdahl's serial part. Every worker waits at the barrier; the last to
 * arrive computes for serial_ns alone, then all go on to their tasks. */
static int serial_action(void *arg)
{
    (void)arg;
    uint64_t start = cl_now_ns(), sum = 0;
    while (cl_now_ns() - start < serial_ns)
        sum += cl_sum_squares(SERIAL_CHUNK);
    serial_spent_ns = cl_now_ns() - start;
    return sum == 1; /* never: uses the sum, so the compiler keeps the loop */
}

static void serial_part(void)
{
    if (work == MIXED)
        cl_barrier_wait(&serial_barrier, 0);
}
/* [end serial] */

/* ------------------------------------------------------------ executors */

/* [snippet seq] */
static void run_seq(struct cl_worker *w)
{
    serial_part();
    for (uint64_t i = 0; i < ntasks; i++)
        finish(w, i, run_task(0, i));
}
/* [end seq] */

/* [snippet threads] */
static void run_threads(struct cl_worker *w) /* W threads: each takes every W-th task */
{
    serial_part();
    for (uint64_t i = (uint64_t)w->id; i < ntasks; i += (uint64_t)nworkers)
        finish(w, i, run_task(w->id, i));
}
/* [end threads] */

/* [snippet pool] */
static void run_pool(struct cl_worker *w) /* W long-lived workers pull from one queue */
{
    serial_part();
    void *task;
    while (cl_queue_get(&pool_tasks, &task) == CL_Q_OK) /* CL_Q_CLOSED: none left */
        finish(w, (uintptr_t)task, run_task(w->id, (uintptr_t)task));
}
/* [end pool] */

/* [snippet procs] */
struct task_done {
    uint64_t task, value;
}; /* 16 bytes, under PIPE_BUF: a write is never split or interleaved */

static void child(int p, int out) /* after fork: compute, write, _exit; nothing else */
{
    signal(SIGINT, SIG_DFL); /* Ctrl-C ends the child; the parent reports */
    for (uint64_t i = (uint64_t)p; i < ntasks; i += (uint64_t)nworkers) {
        struct task_done d = {i, run_task(p, i)};
        if (write(out, &d, sizeof d) != (ssize_t)sizeof d)
            _exit(1);
    }
    _exit(0);
}

static void run_procs(struct cl_worker *w) /* W forked workers; results come back in a pipe */
{
    serial_part();
    int pipe_fd[2];
    CL_SYS(pipe(pipe_fd));
    for (int p = 0; p < nworkers; p++)
        if ((children[p] = cl_child_fork()) == 0)
            child(p, pipe_fd[1]);
        else if (children[p] == -1) /* kills and reaps the ones forked, then exit 4 */
            cl_refuse(w->run, "fork", errno, "forked %d of %d processes", p, nworkers);
    CL_SYS(close(pipe_fd[1])); /* end of file once the last child has exited */
    struct task_done d;
    while (CL_RETRY(read(pipe_fd[0], &d, sizeof d)) == (long)sizeof d)
        finish(w, d.task, d.value);
    CL_SYS(close(pipe_fd[0]));
    for (int p = 0; p < nworkers; p++) {
        int status = cl_child_wait(children[p]);
        children_failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
}
/* [end procs] */

/* [snippet gil] */
static uint64_t gil_task(struct cl_gil_thread *me, int channel, uint64_t i)
{
    if (work == CPU) { /* "bytecode": short slices, offering the GIL between them */
        uint64_t sum = 0, lo = i * task_size, hi = lo + task_size;
        for (; lo < hi; lo += GIL_SLICE) {
            sum += cl_sum_squares_range(lo, hi - lo < GIL_SLICE ? hi : lo + GIL_SLICE);
            cl_gil_check(&gil, me); /* hands over if another thread asked */
        }
        return sum;
    }
    cl_gil_drop(&gil, me); /* a blocking call runs without the GIL ... */
    uint64_t value = run_task(channel, i);
    cl_gil_take(&gil, me); /* ... and takes it back to go on */
    return value;
}

static void run_gil(struct cl_worker *w) /* threads, but only the GIL's holder runs */
{
    struct cl_gil_thread *me = &gil_threads[w->id];
    serial_part();
    cl_gil_take(&gil, me);
    for (uint64_t i = (uint64_t)w->id; i < ntasks; i += (uint64_t)nworkers)
        finish(w, i, gil_task(me, w->id, i));
    cl_gil_drop(&gil, me);
}
/* [end gil] */

/* ------------------------------------------------------------ the chapter */

static const struct cl_variant variants[] = {
    {"seq", CL_CORRECT, "one thread runs every task in turn: the baseline", .kind = SEQ,
     .worker = run_seq, .threads = 1},
    {"threads", CL_CORRECT, "W threads (default: one per task), each with every W-th task",
     .kind = THREADS, .worker = run_threads},
    {"pool", CL_CORRECT,
     "W long-lived workers (default: min(32, CPUs + 4)) take tasks from one queue", .kind = POOL,
     .worker = run_pool},
    {"procs", CL_CORRECT, "W forked processes, results back through a pipe", .kind = PROCS,
     .worker = run_procs, .threads = 1},
    {"gil", CL_CORRECT, "W threads that must hold a simulated GIL to compute (CPython's rule)",
     .kind = GIL, .worker = run_gil},
};

static const char *const work_names[] = {"cpu", "io-sleep", "io-real", "mixed", NULL};

static const struct cl_param params[] = {
    [WORK] = {"work", "what each task does", .def = CPU, .choices = work_names},
    [TASKS] = {"tasks", "tasks in all", .min = 1, .max = 1000000,
               .unset = "2 per CPU for cpu, 100 for the others"},
    [WORKERS] = {"workers", "threads or processes that share the tasks", .min = 1, .max = 100000,
                 .unset = "one per task; pool: min(32, CPUs + 4); seq: 1"},
    [SIZE] = {"size", "cpu: numbers summed per task", .def = CPU_TASK_SIZE, .min = 1,
              .max = 1000000000},
    [LATENCY_MS] = {"latency-ms", "io-sleep, io-real, mixed: each task's I/O time",
                    .def = LATENCY_MS_DEF, .max = 5000},
    [CPU_FRACTION] = {"cpu-fraction", "mixed: the serial CPU part's share of seq's time", .def = 25,
                      .max = 95, .decimals = 2},
    [CPUS] = {"cpus", "run on this many CPUs only (sched_setaffinity)", .min = 1,
              .max = CPU_SETSIZE, .unset = "all"},
    [SWITCH_INTERVAL_MS] = {"switch-interval-ms",
                            "gil: the GIL's switch interval (sys.setswitchinterval; CPython: 5)",
                            .def = 5, .min = 1, .max = 100},
};

/* CPU time and context switches are counted from setup to check, so the wall
 * time they are set against (run_s) includes starting and joining the workers,
 * unlike wall_s, which starts when the last worker has started. */
static struct rusage self_at_start, children_at_start;
static uint64_t setup_ns;

/* --cpus N: the whole process on the first N allowed CPUs, before any thread
 * starts (threads inherit the mask). */
static int restrict_cpus(long long n, char *err, size_t errlen)
{
    cpu_set_t allowed, chosen;
    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    if (n > CPU_COUNT(&allowed)) {
        snprintf(err, errlen, "speedup: --cpus: %lld is more than the %d CPUs this process may use",
                 n, CPU_COUNT(&allowed));
        return 1;
    }
    CPU_ZERO(&chosen);
    for (int cpu = 0, left = (int)n; left > 0; cpu++)
        if (CPU_ISSET(cpu, &allowed)) {
            CPU_SET(cpu, &chosen);
            left--;
        }
    CL_SYS(sched_setaffinity(0, sizeof chosen, &chosen));
    return 0;
}

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct cl_opts *o = run->opts;
    if (o->threads != 0 || o->iters != 0) {
        snprintf(err, errlen, "speedup: --%s: not used here (allowed: --workers and --tasks)",
                 o->threads != 0 ? "threads" : "iters");
        return 1;
    }
    long long *p = run->param;
    enum kind kind = run->variant->kind;
    if (!cl_param_given(run, TASKS))
        p[TASKS] = p[WORK] == CPU ? 2 * sysconf(_SC_NPROCESSORS_ONLN) : IO_TASKS;
    if (kind == SEQ)
        p[WORKERS] = 1;
    else if (!cl_param_given(run, WORKERS) && kind == POOL) /* Python's ThreadPoolExecutor */
        p[WORKERS] = MIN(32, sysconf(_SC_NPROCESSORS_ONLN) + 4);
    else if (!cl_param_given(run, WORKERS))
        p[WORKERS] = p[TASKS]; /* one per task */
    if (kind == PROCS && p[WORKERS] > MAX_PROCS) {
        snprintf(err, errlen, "speedup: --workers: procs forks at most %d processes (got %lld)",
                 MAX_PROCS, p[WORKERS]);
        return 1;
    }
    if (cl_param_given(run, CPUS) && restrict_cpus(p[CPUS], err, errlen) != 0)
        return 1;
    work = (int)p[WORK];
    ntasks = (uint64_t)p[TASKS];
    nworkers = (int)p[WORKERS];
    task_size = (uint64_t)p[SIZE];
    latency_ns = (uint64_t)p[LATENCY_MS] * 1000000;
    /* seq's time is serial + tasks x latency; the serial part is F of it */
    double f = cl_param_real(run, CPU_FRACTION);
    serial_ns = (uint64_t)(f / (1 - f) * (double)ntasks * (double)latency_ns);
    /* one thread per task means thousands of threads: 1 MiB stacks instead of
     * 8 (the tasks need little). Smaller defaults made TSan's pthread_create
     * fail with EINVAL. */
    pthread_attr_t attr;
    CL_PT(pthread_attr_init(&attr));
    CL_PT(pthread_attr_setstacksize(&attr, STACK_BYTES));
    CL_PT(pthread_setattr_default_np(&attr));
    CL_PT(pthread_attr_destroy(&attr));
    if (work == IO_REAL) {
        char why[256];
        if ((responder = cl_responder_start(nworkers, latency_ns, why, sizeof why)) == NULL) {
            snprintf(err, errlen, "speedup: --workers: io-real: %s", why);
            return 1;
        }
    }
    /* seq and procs run in one thread of this process; the others in W */
    run->threads = kind == SEQ || kind == PROCS ? 1 : nworkers;
    run->iters = (ntasks + (uint64_t)run->threads - 1) / (uint64_t)run->threads; /* per thread */
    return 0;
}

static void setup(const struct cl_run *run)
{
    results = cl_xcalloc(ntasks, sizeof *results);
    runs = cl_xcalloc(ntasks, sizeof *runs);
    enum kind kind = run->variant->kind;
    if (kind == POOL) { /* submit every task, then close: no more */
        CL_PT(cl_queue_init(&pool_tasks, ntasks));
        for (uint64_t i = 0; i < ntasks; i++)
            cl_queue_put(&pool_tasks, (void *)(uintptr_t)i); /* NOLINT(performance-no-int-to-ptr) */
        cl_queue_close(&pool_tasks);
    }
    if (kind == GIL) {
        CL_PT(cl_gil_init(&gil, (uint64_t)cl_param(run, SWITCH_INTERVAL_MS) * 1000000));
        gil_threads = cl_xcalloc((size_t)nworkers, sizeof *gil_threads);
        for (int i = 0; i < nworkers; i++)
            gil_threads[i].id = i;
    }
    if (kind == PROCS) {
        children = cl_xcalloc((size_t)nworkers, sizeof *children);
        children_failed = 0;
    }
    if (work == MIXED)
        CL_PT(cl_barrier_init(&serial_barrier, (unsigned)run->threads, serial_action, NULL));
    CL_SYS(getrusage(RUSAGE_SELF, &self_at_start));
    CL_SYS(getrusage(RUSAGE_CHILDREN, &children_at_start));
    setup_ns = cl_now_ns();
}

static double seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double cpu_s(const struct rusage *a, const struct rusage *b) /* user + sys, b - a */
{
    return seconds(b->ru_utime) - seconds(a->ru_utime) + seconds(b->ru_stime) -
           seconds(a->ru_stime);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    double run_s = cl_seconds(cl_now_ns() - setup_ns);
    struct rusage self, kids;
    CL_SYS(getrusage(RUSAGE_SELF, &self));
    CL_SYS(getrusage(RUSAGE_CHILDREN, &kids)); /* procs: its reaped children */
    double children_cpu = cpu_s(&children_at_start, &kids);
    double cpu = cpu_s(&self_at_start, &self) + children_cpu;
    long vcsw =
        (self.ru_nvcsw - self_at_start.ru_nvcsw) + (kids.ru_nvcsw - children_at_start.ru_nvcsw);
    long ivcsw =
        (self.ru_nivcsw - self_at_start.ru_nivcsw) + (kids.ru_nivcsw - children_at_start.ru_nivcsw);
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < ntasks; i++)
        wrong +=
            atomic_load_explicit(&runs[i], memory_order_relaxed) != 1 || results[i] != expected(i);
    res->exact = wrong == 0 && children_failed == 0;
    res->ops = ntasks;
    double parallelism = cpu / run_s;
    cl_metric_int(res, "tasks", (long long)ntasks);
    cl_metric_int(res, "workers", nworkers);
    cl_metric_int(res, "wrong", (long long)wrong);
    cl_metric_real(res, "run_s", run_s);
    cl_metric_real(res, "cpu_s", cpu);
    cl_metric_real(res, "children_cpu_s", children_cpu); /* procs: its reaped children's */
    cl_metric_real(res, "parallelism", parallelism);
    cl_metric_int(res, "voluntary_cs", vcsw);
    cl_metric_int(res, "involuntary_cs", ivcsw);
    if (run->variant->kind == GIL) {
        uint64_t forced = 0;
        for (int i = 0; i < nworkers; i++)
            forced += gil_threads[i].forced_drops;
        cl_metric_int(res, "gil_switches", (long long)atomic_load(&gil.switches));
        cl_metric_int(res, "gil_forced_drops", (long long)forced);
    }
    if (work == MIXED) /* the serial part's measured share of what seq would take */
        cl_metric_real(res, "serial_fraction",
                       (double)serial_spent_ns /
                           ((double)serial_spent_ns + (double)ntasks * (double)latency_ns));
    char speedup_text[96] = "";
    if (run->variant->kind == SEQ) {
        *seq_run_s = run_s;
        if (work == CPU && parallelism < BUSY_BELOW) /* seq alone should get a whole core */
            snprintf(
                speedup_text, sizeof speedup_text,
                "; seq got under %.1f of a core: the machine is busy, CPU speedups are unreliable",
                BUSY_BELOW);
    } else if (!isnan(*seq_run_s)) { /* seq ran before us in this invocation, same flags */
        cl_metric_real(res, "speedup", *seq_run_s / run_s);
        cl_metric_real(res, "efficiency", *seq_run_s / run_s / nworkers);
        snprintf(speedup_text, sizeof speedup_text, ", %.2fx seq", *seq_run_s / run_s);
    }

    char a[32], sum_text[64] = "";
    if (work == CPU) { /* the whole range's sum, the same whichever executor ran it */
        uint64_t sum = 0;
        for (uint64_t i = 0; i < ntasks; i++)
            sum += results[i];
        snprintf(sum_text, sizeof sum_text, " (sum %" PRIu64 ")", sum);
    }
    if (res->exact)
        cl_verdict(res, "all %s tasks right%s in %.3f s: CPU %.3f s, parallelism %.2f%s",
                   cl_fmt_count(ntasks, a), sum_text, run_s, cpu, parallelism, speedup_text);
    else
        cl_verdict(res, "WRONG: %s of %s tasks missing, repeated or wrong%s",
                   cl_fmt_count(wrong, a), cl_fmt_count(ntasks, (char[32]){0}),
                   children_failed ? " (a child failed)" : "");
}

static void teardown(const struct cl_run *run)
{
    if (run->variant->kind == POOL)
        cl_queue_destroy(&pool_tasks);
    if (run->variant->kind == GIL) {
        cl_gil_destroy(&gil);
        free(gil_threads);
    }
    if (work == MIXED)
        cl_barrier_destroy(&serial_barrier);
    if (responder != NULL)
        cl_responder_stop(responder);
    responder = NULL;
    free(children);
    free(results);
    free(runs);
}

static const struct cl_chapter speedup_chapter = {
    .name = "speedup",
    .summary = "speedup: CPU-bound against I/O-bound work on every executor",
    .look_for = "the same checked tasks on each executor (an operation is one task): "
                "compare wall time, CPU time and their ratio (parallelism) for CPU-bound and "
                "I/O-bound work",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 10,
    .max_threads = 100000, /* one thread per task, up to --workers' maximum */
    /* no pin_threads: the scheduler places the threads */
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    /* shared with the children that `all` forks, so later variants see seq's time */
    seq_run_s =
        mmap(NULL, sizeof *seq_run_s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (seq_run_s == MAP_FAILED)
        cl_die(__FILE__, __LINE__, "mmap", errno);
    *seq_run_s = (double)NAN;
    return cl_main(&speedup_chapter, argc, argv);
}
