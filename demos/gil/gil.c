/* gil: CPython's Global Interpreter Lock, simulated in C, and what it does to
 * threads.
 *
 * lib/cl_gil.c is the simulator: a thread must hold the GIL to run "bytecode",
 * it checks for a drop request between slices of work, and it lets go around
 * blocking calls. Each variant below is one thread's whole job, written the way
 * CPython runs a thread: take the GIL, compute in slices with a check between
 * them, drop it around I/O or around a native kernel.
 *
 * The CPU work is cl_sum_squares(--slice-terms) per slice (the guides' sum of
 * i*i), so every slice has a known answer and the variants check their sums.
 * cpu-threads and release-in-native time their own phases in one run (one
 * thread alone, then all of them), so each reports speedups against a one-thread
 * run measured seconds before, on the same machine in the same state. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "conclab.h"

enum { SWITCH_INTERVAL_MS, SLICE_TERMS, IO_US, RESPOND_TERMS }; /* the chapter's flags */

#define IO_US_THREADS (100 * 1000) /* io-threads: each blocking call, 100 ms */
#define IO_US_CONVOY  500          /* convoy: a fast device, 0.5 ms */

/* [snippet state] */
static struct cl_gil gil;    /* the one lock every "Python" thread needs */
static uint64_t slice_terms; /* CPU work between two checks: a few µs */
static uint64_t io_ns;       /* one blocking call */

struct per_thread {
    _Alignas(64) struct cl_gil_thread g; /* its side of the GIL: takes, waits, drops */
    uint64_t sum;                        /* the CPU work's result, checked at the end */
    uint64_t slices;                     /* slices done, for the check */
};
static struct per_thread *per;
/* [end state] */

static uint64_t respond_terms;      /* convoy: the work of handling one I/O */
static pthread_barrier_t phase_end; /* phases never overlap */
static _Atomic bool hog_running;    /* convoy: the CPU-bound thread holds the GIL */
static _Atomic bool hog_stop;       /* convoy: the I/O thread is done */

static uint64_t slice(struct per_thread *me)
{
    me->slices++;
    return cl_sum_squares(slice_terms);
}

/* --- ways to run CPU work -------------------------------------------------- */

/* [snippet free] */
/* C as it is: no GIL, every thread runs on its own core. */
static void compute_free(struct cl_worker *w, uint64_t slices)
{
    struct per_thread *me = &per[w->id];
    for (uint64_t i = 0; i < slices; i++) {
        me->sum += slice(me);
        cl_tick(w);
    }
}
/* [end free] */

/* [snippet holding] */
/* A CPython thread running pure-Python code: it holds the GIL, and between two
 * slices ("bytecodes") it checks whether a waiting thread asked for it. */
static void compute_holding(struct cl_worker *w, uint64_t slices)
{
    struct per_thread *me = &per[w->id];
    cl_gil_take(&gil, &me->g);
    for (uint64_t i = 0; i < slices; i++) {
        me->sum += slice(me);
        cl_tick(w);
        cl_gil_check(&gil, &me->g); /* asked to drop? hand over, wait, take it back */
    }
    cl_gil_drop(&gil, &me->g);
}
/* [end holding] */

/* [snippet releasing] */
/* A native kernel that releases the GIL while it computes, as numpy, hashlib
 * and zlib do: Py_BEGIN_ALLOW_THREADS ... Py_END_ALLOW_THREADS. */
static void compute_releasing(struct cl_worker *w, uint64_t slices)
{
    struct per_thread *me = &per[w->id];
    cl_gil_take(&gil, &me->g);
    for (uint64_t i = 0; i < slices; i++) {
        cl_gil_drop(&gil, &me->g); /* no Python objects touched from here... */
        uint64_t part = slice(me);
        cl_gil_take(&gil, &me->g); /* ...to here */
        me->sum += part;           /* back in Python: the result becomes an object */
        cl_tick(w);
        cl_gil_check(&gil, &me->g);
    }
    cl_gil_drop(&gil, &me->g);
}
/* [end releasing] */

/* --- phases: one thread alone, then all of them ---------------------------- */

/* --iters is each thread's slices over all the phases: a phase gets an equal
 * share, and thread 1 does every thread's share when it runs alone. */
static uint64_t share;

struct phase {
    void (*compute)(struct cl_worker *w, uint64_t slices);
    bool alone; /* thread 1 does every thread's share; the others wait */
};

struct timing {
    uint64_t start_ns, end_ns, cpu_ns; /* this thread, this phase */
};
#define MAX_PHASES 3
static struct timing (*timings)[MAX_PHASES]; /* [thread][phase] */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts));
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void wait_phase_end(struct cl_worker *w)
{
    cl_status(w, "waits for the others to finish the phase");
    cl_pthread_barrier_wait(&phase_end);
    cl_status(w, NULL);
}

static void run_phases(struct cl_worker *w, const struct phase *phases, int n)
{
    int threads = w->run->threads;
    for (int p = 0; p < n; p++) {
        if (!phases[p].alone || w->id == 0) {
            struct timing *t = &timings[w->id][p];
            uint64_t cpu0 = thread_cpu_ns();
            t->start_ns = cl_now_ns();
            phases[p].compute(w, phases[p].alone ? share * (uint64_t)threads : share);
            t->end_ns = cl_now_ns();
            t->cpu_ns = thread_cpu_ns() - cpu0;
        }
        wait_phase_end(w);
    }
}

/* [snippet cpu-threads] */
static const struct phase cpu_phases[] = {
    {compute_holding, true},  /* the baseline: all the work on one thread */
    {compute_free, false},    /* the same work shared out, C as it is */
    {compute_holding, false}, /* the same again, as CPython runs it */
};

static void cpu_threads(struct cl_worker *w)
{
    run_phases(w, cpu_phases, 3);
}
/* [end cpu-threads] */

/* [snippet release-in-native] */
static const struct phase native_phases[] = {
    {compute_releasing, true},  /* the baseline: all the work on one thread */
    {compute_releasing, false}, /* shared out: the kernels overlap */
};

static void release_in_native(struct cl_worker *w)
{
    run_phases(w, native_phases, 2);
}
/* [end release-in-native] */

/* --- I/O ------------------------------------------------------------------- */

/* [snippet io-threads] */
/* time.sleep(), sock.recv(), f.read(): CPython lets go of the GIL around the
 * blocking call, so the other threads run (or wait for their own I/O) meanwhile. */
static void io_threads(struct cl_worker *w)
{
    struct per_thread *me = &per[w->id];
    cl_gil_take(&gil, &me->g);
    for (uint64_t i = 0; i < w->iters; i++) {
        cl_gil_drop(&gil, &me->g); /* Py_BEGIN_ALLOW_THREADS */
        cl_sleep_ns(io_ns);        /* the blocking call */
        cl_gil_take(&gil, &me->g); /* Py_END_ALLOW_THREADS: wait for the GIL again */
        cl_tick(w);
    }
    cl_gil_drop(&gil, &me->g);
}
/* [end io-threads] */

/* convoy: thread 1 serves I/O; in the second phase thread 2 computes. */
#define MAX_RESPONSES 100000
static uint64_t *latency_ns[2]; /* [phase][response]: from data ready to handled */
static uint64_t phase_ns[2];    /* how long each phase's responses took */

/* [snippet convoy] */
/* Wait for a device, then handle what it returned: a little Python code. */
static void serve_io(struct cl_worker *w, int phase)
{
    struct per_thread *me = &per[w->id];
    uint64_t t0 = cl_now_ns();
    cl_gil_take(&gil, &me->g);
    for (uint64_t i = 0; i < w->iters; i++) {
        cl_gil_drop(&gil, &me->g);
        cl_sleep_ns(io_ns);           /* the device works; the GIL is free */
        uint64_t ready = cl_now_ns(); /* the data is here, but handling it needs the GIL: */
        cl_gil_take(&gil, &me->g);    /* behind a CPU-bound holder, a switch interval */
        me->sum += cl_sum_squares(respond_terms);
        latency_ns[phase][i] = cl_now_ns() - ready;
        cl_tick(w);
    }
    cl_gil_drop(&gil, &me->g);
    phase_ns[phase] = cl_now_ns() - t0;
}

/* Pure-Python number crunching, until the I/O thread is done. */
static void hog_cpu(struct cl_worker *w)
{
    struct per_thread *me = &per[w->id];
    cl_gil_take(&gil, &me->g);
    atomic_store_explicit(&hog_running, true, memory_order_relaxed);
    while (!atomic_load_explicit(&hog_stop, memory_order_relaxed)) {
        me->sum += slice(me);
        cl_gil_check(&gil, &me->g);
    }
    cl_gil_drop(&gil, &me->g);
}

static void convoy(struct cl_worker *w)
{
    if (w->id == 0) /* phase 1: the I/O thread alone, the baseline */
        serve_io(w, 0);
    wait_phase_end(w);
    if (w->id == 0) { /* phase 2: the same I/O, against a CPU-bound thread */
        while (!atomic_load_explicit(&hog_running, memory_order_relaxed))
            cl_sleep_ns(100000); /* from the moment it runs */
        serve_io(w, 1);
        atomic_store_explicit(&hog_stop, true, memory_order_relaxed);
    } else {
        hog_cpu(w);
    }
}
/* [end convoy] */

/* How check() judges each variant. */
enum kind { CPU_THREADS, RELEASE_IN_NATIVE, IO_THREADS, CONVOY };

/* Slices per thread per phase: 20,000 x 10,000 terms, about 0.2 s of CPU. */
#define CPU_SHARE 20000

static const struct cl_variant variants[] = {
    {"cpu-threads", CL_CORRECT,
     "CPU work on N threads, without and with the GIL, against one thread doing it all",
     .kind = CPU_THREADS, .worker = cpu_threads, .threads = 2, .iters = 3ull * CPU_SHARE,
     .max_iters = 3000000},
    {"io-threads", CL_CORRECT, "N threads blocking in I/O under the GIL: they overlap",
     .kind = IO_THREADS, .worker = io_threads, .threads = 100, .iters = 1, .max_iters = 100},
    {"convoy", CL_CORRECT,
     "an I/O thread's response time, alone and against a CPU-bound thread (--iters: responses)",
     .kind = CONVOY, .worker = convoy, .threads = 2, .iters = 100, .max_iters = MAX_RESPONSES},
    {"release-in-native", CL_CORRECT,
     "CPU work in a native kernel that releases the GIL, like numpy: parallel again",
     .kind = RELEASE_IN_NATIVE, .worker = release_in_native, .threads = 2,
     .iters = 2ull * CPU_SHARE, .max_iters = 2000000},
};

static const struct cl_param params[] = {
    [SWITCH_INTERVAL_MS] = {"switch-interval-ms",
                            "the GIL's switch interval (sys.setswitchinterval), in ms", .def = 5,
                            .min = 1, .max = 100},
    [SLICE_TERMS] = {"slice-terms",
                     "CPU work between two GIL checks: sum-of-squares terms (~1 ns each)",
                     .def = 10000, .min = 100, .max = 10000000},
    [IO_US] = {"io-us", "one blocking call, in µs", .min = 1, .max = 1000000,
               .unset = "per variant: 100,000 for io-threads, 500 for convoy"},
    [RESPOND_TERMS] = {"respond-terms",
                       "convoy: the work of handling one I/O, in sum-of-squares "
                       "terms",
                       .def = 10000, .min = 1, .max = 10000000},
};

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct cl_opts *o = run->opts;
    enum kind kind = run->variant->kind;
    if (!cl_param_given(run, IO_US))
        run->param[IO_US] = kind == IO_THREADS ? IO_US_THREADS : IO_US_CONVOY;
    slice_terms = (uint64_t)cl_param(run, SLICE_TERMS);
    respond_terms = (uint64_t)cl_param(run, RESPOND_TERMS);
    io_ns = (uint64_t)cl_param(run, IO_US) * 1000;
    int nphases = kind == CPU_THREADS ? 3 : kind == RELEASE_IN_NATIVE ? 2 : 1;
    if (run->iters < (uint64_t)nphases) {
        snprintf(err, errlen, "gil: --iters: %s needs at least %d, a slice per phase",
                 run->variant->name, nphases);
        return 1;
    }
    share = run->iters / (uint64_t)nphases;
    run->iters = share * (uint64_t)nphases; /* what the threads do, on average */
    if (kind == CONVOY && o->threads != 0 && o->threads != 2) {
        snprintf(err, errlen,
                 "gil: --threads: convoy runs exactly 2 (one I/O thread, one CPU-bound thread)");
        return 1;
    }
    return 0;
}

static void setup(const struct cl_run *run)
{
    CL_PT(cl_gil_init(&gil, (uint64_t)cl_param(run, SWITCH_INTERVAL_MS) * 1000000));
    per = cl_xaligned_calloc(_Alignof(struct per_thread), (size_t)run->threads, sizeof *per);
    for (int i = 0; i < run->threads; i++)
        per[i].g = (struct cl_gil_thread){.id = i, .trace = run->workers[i].trace};
    timings = cl_xcalloc((size_t)run->threads, sizeof *timings);
    CL_PT(pthread_barrier_init(&phase_end, NULL, (unsigned)run->threads));
    atomic_store(&hog_running, false);
    atomic_store(&hog_stop, false);
    for (int p = 0; p < 2; p++) {
        latency_ns[p] =
            run->variant->kind == CONVOY ? cl_xcalloc(run->iters, sizeof *latency_ns[p]) : NULL;
        phase_ns[p] = 0;
    }
}

/* The watchdog's view: who holds the GIL. Atomics only. */
static void report(int fd, const struct cl_run *run)
{
    (void)run;
    int owner = atomic_load_explicit(&gil.owner, memory_order_relaxed);
    bool asked = atomic_load_explicit(&gil.drop_request, memory_order_relaxed);
    if (owner >= 0)
        dprintf(fd, "  the GIL: held by T%d%s\n", owner + 1, asked ? ", asked to drop it" : "");
    else
        dprintf(fd, "  the GIL: free\n");
}

struct phase_result {
    double wall_s;      /* first start to last end */
    double parallelism; /* the threads' CPU time over that wall time */
};

/* Parallelism = CPU time / wall time: how many threads ran at once, on average.
 * A thread parked on the GIL sleeps and adds no CPU time, so under the GIL it
 * stays near 1 however many cores there are. */
static struct phase_result phase_result(const struct cl_run *run, int p, bool alone)
{
    uint64_t first = UINT64_MAX, last = 0, cpu = 0;
    for (int i = 0; i < (alone ? 1 : run->threads); i++) {
        const struct timing *t = &timings[i][p];
        first = t->start_ns < first ? t->start_ns : first;
        last = t->end_ns > last ? t->end_ns : last;
        cpu += t->cpu_ns;
    }
    return (struct phase_result){cl_seconds(last - first), (double)cpu / (double)(last - first)};
}

/* The GIL's own counts that cpu-threads reports, over every thread. */
static struct cl_gil_thread gil_totals(const struct cl_run *run)
{
    struct cl_gil_thread sum = {.id = -1};
    for (int i = 0; i < run->threads; i++) {
        sum.switched_in += per[i].g.switched_in;
        sum.forced_drops += per[i].g.forced_drops;
        sum.wait_ns += per[i].g.wait_ns;
    }
    return sum;
}

static uint64_t max_wait_ns(const struct cl_run *run)
{
    uint64_t most = 0;
    for (int i = 0; i < run->threads; i++)
        most = per[i].g.wait_ns > most ? per[i].g.wait_ns : most;
    return most;
}

/* Every slice's sum is the closed form: the total must be that times the slices. */
static bool sums_exact(const struct cl_run *run, uint64_t want_slices)
{
    uint64_t sum = 0, slices = 0;
    for (int i = 0; i < run->threads; i++) {
        sum += per[i].sum;
        slices += per[i].slices;
    }
    return slices == want_slices && sum == slices * cl_sum_squares_closed(slice_terms);
}

/* The one-thread baseline should get a whole core; under this, other programs hold
 * one, and every speedup measured against it is noise. */
#define BUSY_BELOW 0.9

static void check_cpu(const struct cl_run *run, struct cl_result *res, bool native)
{
    uint64_t slices = (uint64_t)run->threads * run->iters;
    res->exact = sums_exact(run, slices);
    res->ops = slices;
    int threads = run->threads;
    struct phase_result one = phase_result(run, 0, true);
    struct phase_result par = phase_result(run, 1, false);
    char busy[96] = "";
    if (one.parallelism < BUSY_BELOW)
        snprintf(busy, sizeof busy, "; one thread got %.2f of a core: the machine is busy",
                 one.parallelism);
    cl_metric_real(res, "one_s", one.wall_s);
    cl_metric_real(res, "parallelism_one", one.parallelism);
    if (native) {
        cl_metric_real(res, "native_s", par.wall_s);
        cl_metric_real(res, "speedup_native", one.wall_s / par.wall_s);
        cl_metric_real(res, "parallelism_native", par.parallelism);
        cl_verdict(res,
                   "the kernel releases the GIL: %d threads %.2fx as fast as one "
                   "(parallelism %.2f)%s%s",
                   threads, one.wall_s / par.wall_s, par.parallelism,
                   res->exact ? "" : "; WRONG sums", busy);
    } else {
        struct phase_result held = phase_result(run, 2, false);
        cl_metric_real(res, "nogil_s", par.wall_s);
        cl_metric_real(res, "gil_s", held.wall_s);
        cl_metric_real(res, "speedup_nogil", one.wall_s / par.wall_s);
        cl_metric_real(res, "speedup_gil", one.wall_s / held.wall_s);
        cl_metric_real(res, "parallelism_nogil", par.parallelism);
        cl_metric_real(res, "parallelism_gil", held.parallelism);
        struct cl_gil_thread all = gil_totals(run);
        cl_metric_int(res, "switches", (long long)all.switched_in);
        cl_metric_int(res, "forced_drops", (long long)all.forced_drops);
        cl_metric_real(res, "gil_wait_s", cl_seconds(all.wait_ns));
        cl_metric_real(res, "max_honour_ms", cl_seconds(atomic_load(&gil.max_honour_ns)) * 1e3);
        cl_verdict(res,
                   "%d threads vs one: without the GIL %.2fx as fast (parallelism %.2f), "
                   "with it %.2fx (parallelism %.2f)%s%s",
                   threads, one.wall_s / par.wall_s, par.parallelism, one.wall_s / held.wall_s,
                   held.parallelism, res->exact ? "" : "; WRONG sums", busy);
    }
}

/* The q-quantile of n sorted latencies, in µs. */
static double percentile_us(const uint64_t *sorted, uint64_t n, double q)
{
    if (n == 0)
        return 0;
    uint64_t k = (uint64_t)(q * (double)(n - 1) + 0.5);
    return (double)sorted[k] / 1e3;
}

static void check_convoy(const struct cl_run *run, struct cl_result *res)
{
    uint64_t n = run->iters;
    double p50[2], p99[2], per_s[2];
    for (int p = 0; p < 2; p++) {
        cl_sort_ns(latency_ns[p], n);
        p50[p] = percentile_us(latency_ns[p], n, 0.50);
        p99[p] = percentile_us(latency_ns[p], n, 0.99);
        per_s[p] = (double)n / cl_seconds(phase_ns[p]);
    }
    res->exact = per[0].sum == 2 * n * cl_sum_squares_closed(respond_terms) &&
                 per[1].sum == per[1].slices * cl_sum_squares_closed(slice_terms);
    res->ops = 2 * n;
    cl_metric_real(res, "alone_p50_us", p50[0]);
    cl_metric_real(res, "alone_p99_us", p99[0]);
    cl_metric_real(res, "alone_per_s", per_s[0]);
    cl_metric_real(res, "p50_us", p50[1]);
    cl_metric_real(res, "p99_us", p99[1]);
    cl_metric_real(res, "per_s", per_s[1]);
    cl_metric_real(res, "slowdown", per_s[0] / per_s[1]);
    cl_metric_int(res, "forced_drops", (long long)per[1].g.forced_drops);
    char a[32], b[32];
    snprintf(a, sizeof a, "%.0f", per_s[0]);
    snprintf(b, sizeof b, "%.0f", per_s[1]);
    cl_verdict(res,
               "switch interval %lld ms: with a CPU-bound thread each I/O waits %.2f ms for "
               "the GIL (p50; p99 %.2f), alone %.2f ms; %s -> %s responses/s (%.1fx fewer)%s",
               cl_param(run, SWITCH_INTERVAL_MS), p50[1] / 1e3, p99[1] / 1e3, p50[0] / 1e3, a, b,
               per_s[0] / per_s[1], res->exact ? "" : "; WRONG sums");
}

static void check_io(const struct cl_run *run, struct cl_result *res)
{
    uint64_t done = 0;
    for (int i = 0; i < run->threads; i++)
        done += atomic_load(&run->workers[i].progress);
    res->exact = done == (uint64_t)run->threads * run->iters;
    double blocked_s = cl_seconds(io_ns) * (double)done;
    cl_metric_real(res, "blocked_s", blocked_s);
    cl_metric_real(res, "overlap", blocked_s / run->wall_s);
    cl_metric_real(res, "gil_wait_max_s", cl_seconds(max_wait_ns(run)));
    cl_verdict(res,
               "%d threads x %llu blocking call%s of %.0f ms: %.2f s of waiting done in %.3f s "
               "(%.0fx overlap): the GIL is free during I/O",
               run->threads, (unsigned long long)run->iters, run->iters == 1 ? "" : "s",
               cl_seconds(io_ns) * 1e3, blocked_s, run->wall_s, blocked_s / run->wall_s);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    switch ((enum kind)run->variant->kind) {
    case CPU_THREADS:
        check_cpu(run, res, false);
        break;
    case RELEASE_IN_NATIVE:
        check_cpu(run, res, true);
        break;
    case IO_THREADS:
        check_io(run, res);
        break;
    case CONVOY:
        check_convoy(run, res);
        break;
    }
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    free(per);
    free(timings);
    for (int p = 0; p < 2; p++)
        free(latency_ns[p]);
    CL_PT(pthread_barrier_destroy(&phase_end));
    cl_gil_destroy(&gil);
}

static const struct cl_chapter gil_chapter = {
    .name = "gil",
    .summary = "the GIL: one thread at a time, simulated beside CPython",
    .look_for = "CPU-bound threads under the GIL run one at a time (parallelism about 1) "
                "while plain C threads share the cores; I/O and native kernels let it go (an "
                "operation is a slice of CPU work, a blocking call or a response)",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 10,
    /* A core per thread when they fit: the no-GIL phase then measures the cores,
     * not the scheduler's placement, and the convoy's latency is the GIL's own.
     * Pinning costs nothing under the GIL: a thread waiting for it sleeps in the
     * kernel, so its core is idle and it wakes there at once. */
    .pin_threads = true,
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    return cl_main(&gil_chapter, argc, argv);
}
