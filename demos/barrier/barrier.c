/* barrier: a phased computation that is only correct because of its barrier.
 *
 * The workload is a 2-D heat-diffusion (Jacobi) stencil: an n x n grid with a
 * fixed border (the top edge hot, the others cold). Each step computes every
 * cell from its four neighbours in the previous step. Rows are split into
 * bands, one per thread. A thread may start step s + 1 only once every thread
 * has finished step s: its edge rows read the neighbouring bands. That wait is
 * the barrier, and each variant is one way of doing it (or not doing it).
 *
 * Each cell is computed by the same expression in the same order whatever the
 * thread count, so every correct variant must match the sequential reference
 * bit for bit. cl_tick() counts finished phases for the watchdog. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "barrier.h"

enum { SIZE, STEPS, EPS, IMBALANCE, PHASE_WORK, VERIFY }; /* the chapter's own flags, in order */

#define BROKEN_TIMEOUT_S 2. /* broken: no survivor waits longer than this */

/* [snippet state] */
static int n;           /* interior rows and columns; the border is fixed */
static int64_t steps;   /* phases to run */
static bool phase_work; /* false: empty phases, to time the barrier alone */
static double *grid[2]; /* step s reads grid[s % 2] and writes grid[(s + 1) % 2] */
#define AT(g, i, j) CL_STENCIL_AT(g, n, i, j)

struct band {
    int lo, hi; /* this thread's rows: lo <= i < hi */
};

struct per_thread {
    _Alignas(64) uint64_t idle_ns; /* time spent waiting at barriers */
    double change;                 /* serial-action: largest change in this phase */
    bool spin_sense;               /* spin: the sense of this thread's current phase */
    int64_t stopped_at;            /* broken: the phase where this thread stopped */
    int rc;                        /* broken: what the barrier said, or FAILED */
    int64_t episodes;              /* --phase-work 0: barriers passed, */
    uint64_t first_ns, last_ns;    /* and when the first and the last were */
};
static struct per_thread *per; /* one cache line per thread */
/* [end state] */

#define FAILED 100 /* broken: the thread that failed (not a cl_barrier_rc) */

static double eps;      /* serial-action: stop when no cell changes by this much */
static bool verify;     /* compare with the sequential reference */
static uint64_t seed;   /* the starting grid's temperatures */
static int imbalance;   /* imbalanced: band 0 does this many times the work */
static int64_t fail_at; /* broken: the phase in which the last thread fails */

static struct band band_of(const struct cl_worker *w)
{
    int t = w->id, threads = w->run->threads;
    return (struct band){1 + (int)((int64_t)n * t / threads),
                         1 + (int)((int64_t)n * (t + 1) / threads)};
}

/* One step of the stencil (lib/cl_stencil.c) for rows lo..hi-1 of this run's grid. */
static void relax(const double *src, double *dst, int lo, int hi)
{
    cl_stencil_relax(src, dst, n, lo, hi);
}

/* --- the three barriers ---------------------------------------------------- */

static pthread_barrier_t pt_barrier;
static struct cl_barrier lib_barrier; /* condvar, in-place, broken, imbalanced, serial-action */

/* [snippet wait-pthread] */
static bool wait_pthread(struct cl_worker *w)
{
    (void)w;
    int rc = pthread_barrier_wait(&pt_barrier);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) /* one thread gets SERIAL */
        cl_die(__FILE__, __LINE__, "pthread_barrier_wait", rc);
    return true;
}
/* [end wait-pthread] */

/* [snippet wait-condvar] */
static bool wait_condvar(struct cl_worker *w)
{
    (void)w;
    return cl_barrier_wait(&lib_barrier, 0) >= 0; /* lib/cl_barrier.c: generation counting */
}
/* [end wait-condvar] */

/* [snippet wait-spin] */
#define SPINS_BEFORE_YIELD 2000

static struct {
    _Alignas(64) _Atomic int left;   /* threads yet to arrive in this phase */
    _Alignas(64) _Atomic bool sense; /* flips when a phase ends */
    int parties;
} spin;

static bool wait_spin(struct cl_worker *w)
{
    bool mine = per[w->id].spin_sense = !per[w->id].spin_sense; /* this phase's sense */
    if (atomic_fetch_sub_explicit(&spin.left, 1, memory_order_acq_rel) == 1) {
        /* Last in: re-arm for the next phase, then flip the sense to release all. */
        atomic_store_explicit(&spin.left, spin.parties, memory_order_relaxed);
        atomic_store_explicit(&spin.sense, mine, memory_order_release);
        return true;
    }
    for (unsigned k = 1; atomic_load_explicit(&spin.sense, memory_order_acquire) != mine; k++)
        if (k % SPINS_BEFORE_YIELD == 0)
            sched_yield(); /* more threads than cores: let the late one run */
        else
            cl_cpu_relax();
    return true;
}
/* [end wait-spin] */

static bool wait_none(struct cl_worker *w)
{
    (void)w;
    return true; /* nothing: a thread runs ahead into the next phase */
}

/* A barrier wait as the watchdog and the timeline see it. */
static bool timed_wait(struct cl_worker *w, bool (*wait)(struct cl_worker *w))
{
    struct per_thread *me = &per[w->id];
    if (!phase_work) { /* the microbenchmark: the clock only after the first and last */
        bool ok = wait(w);
        if (++me->episodes == 1)
            me->first_ns = cl_now_ns(); /* start-up is over: every thread has arrived */
        else if (me->episodes == steps)
            me->last_ns = cl_now_ns();
        return ok;
    }
    cl_status(w, "waits at the barrier");
    uint64_t t0 = cl_now_ns();
    bool ok = wait(w);
    uint64_t t1 = cl_now_ns();
    me->idle_ns += t1 - t0;
    if (w->trace != NULL)
        cl_trace_add(w->trace, CL_SPAN_WAIT, t0, t1);
    cl_status(w, NULL);
    return ok;
}

/* --- the variants ------------------------------------------------------------ */

/* [snippet seq] */
static void stencil_seq(struct cl_worker *w)
{
    for (int64_t s = 0; s < steps; s++) {
        if (phase_work)
            relax(grid[s % 2], grid[(s + 1) % 2], 1, n + 1);
        cl_tick(w);
    }
}
/* [end seq] */

/* [snippet phases] */
/* Every barrier variant: compute my band of the next grid, then wait for all. */
static void phases(struct cl_worker *w, bool (*wait)(struct cl_worker *w))
{
    struct band b = band_of(w);
    for (int64_t s = 0; s < steps; s++) {
        if (phase_work)
            relax(grid[s % 2], grid[(s + 1) % 2], b.lo, b.hi);
        if (!timed_wait(w, wait)) /* nobody reads grid[(s + 1) % 2] before all wrote it */
            return;
        cl_tick(w);
    }
}
/* [end phases] */

static void stencil_pthread(struct cl_worker *w)
{
    phases(w, wait_pthread);
}

static void stencil_condvar(struct cl_worker *w)
{
    phases(w, wait_condvar);
}

static void stencil_spin(struct cl_worker *w)
{
    phases(w, wait_spin);
}

/* [snippet none] */
static void stencil_none(struct cl_worker *w)
{
    phases(w, wait_none); /* a neighbour's edge row may be a step behind, or ahead */
}
/* [end none] */

/* [snippet in-place] */
static void stencil_in_place(struct cl_worker *w)
{
    struct band b = band_of(w);
    for (int64_t s = 0; s < steps; s++) {
        /* One buffer: row i reads row i - 1 already updated in this step, and
         * the rows at the band's edges are written while a neighbour reads them. */
        relax(grid[0], grid[0], b.lo, b.hi);
        if (!timed_wait(w, wait_condvar)) /* the barrier cannot help any more */
            return;
        cl_tick(w);
    }
}
/* [end in-place] */

/* [snippet broken] */
static void stencil_broken(struct cl_worker *w)
{
    struct band b = band_of(w);
    struct per_thread *me = &per[w->id];
    for (int64_t s = 0; s < steps; s++) {
        if (w->id == w->run->threads - 1 && s == fail_at) {
            relax(grid[s % 2], grid[(s + 1) % 2], b.lo, (b.lo + b.hi) / 2); /* half done... */
            me->stopped_at = s;
            me->rc = FAILED;
            cl_barrier_abort(&lib_barrier); /* ...it fails, and says so instead of vanishing */
            return;
        }
        relax(grid[s % 2], grid[(s + 1) % 2], b.lo, b.hi);
        cl_status(w, "waits at the barrier");
        int rc = cl_barrier_wait(&lib_barrier, BROKEN_TIMEOUT_S);
        cl_status(w, NULL);
        if (rc < 0) { /* CL_BARRIER_BROKEN: released, not stuck; stop cleanly */
            me->stopped_at = s;
            me->rc = rc;
            return;
        }
        cl_tick(w);
    }
    me->stopped_at = steps;
}
/* [end broken] */

static void stencil_naive(struct cl_worker *w)
{
    phases(w, naive_wait); /* naive.c: a turnstile reused across phases */
}

/* [snippet imbalanced] */
static void stencil_imbalanced(struct cl_worker *w)
{
    struct band b = band_of(w);
    int repeat = w->id == 0 ? imbalance : 1; /* band 0 costs `imbalance` times more */
    for (int64_t s = 0; s < steps; s++) {
        for (int r = 0; r < repeat; r++) /* the same values each time: still exact */
            relax(grid[s % 2], grid[(s + 1) % 2], b.lo, b.hi);
        if (!timed_wait(w, wait_condvar)) /* the other threads idle here */
            return;
        cl_tick(w);
    }
}
/* [end imbalanced] */

/* [snippet serial-action] */
static struct {
    int64_t done; /* phases completed */
    bool stop;    /* converged: every thread leaves after this phase */
} conv;

/* The barrier's action: run by one thread, while every other one waits. */
static int converged(void *arg)
{
    int threads = *(const int *)arg;
    double worst = 0;
    for (int t = 0; t < threads; t++)
        worst = fmax(worst, per[t].change);
    conv.done++;
    conv.stop = worst < eps;
    return 0;
}

static void stencil_serial_action(struct cl_worker *w)
{
    struct band b = band_of(w);
    for (int64_t s = 0; s < steps; s++) {
        per[w->id].change = cl_stencil_relax_change(grid[s % 2], grid[(s + 1) % 2], n, b.lo, b.hi);
        if (!timed_wait(w, wait_condvar)) /* the action runs inside this wait */
            return;
        cl_tick(w);
        if (conv.stop) /* written by the action, read after the barrier: no race */
            return;
    }
}
/* [end serial-action] */

/* Which variant this is, for prepare and check; the first four can also time
 * empty phases (--phase-work 0). */
enum kind { SEQ, PTHREAD, CONDVAR, SPIN, NONE, IN_PLACE, BROKEN, IMBALANCED, SERIAL_ACTION, NAIVE };

/* Default steps: the timed variants run about 0.5 s sequentially; the others
 * show their lesson in fewer, so a plain `barrier` stays within a few seconds. */
#define STEPS_TIMED 500
#define STEPS_SHORT 100

static const struct cl_variant variants[] = {
    {"seq", CL_CORRECT, "one thread, the reference (--threads is ignored)", .kind = SEQ,
     .worker = stencil_seq, .threads = 1, .iters = STEPS_TIMED},
    {"pthread", CL_CORRECT, "pthread_barrier_t between phases, two buffers", .kind = PTHREAD,
     .worker = stencil_pthread, .threads = 2, .iters = STEPS_TIMED},
    {"condvar", CL_CORRECT, "lib's barrier (mutex, condvar, generation count), two buffers",
     .kind = CONDVAR, .worker = stencil_condvar, .threads = 2, .iters = STEPS_TIMED},
    {"spin", CL_CORRECT, "a sense-reversing spin barrier on C11 atomics, two buffers", .kind = SPIN,
     .worker = stencil_spin, .threads = 2, .iters = STEPS_TIMED},
    {"none", CL_RACY | CL_WRONG, "no barrier: threads read neighbours from the wrong step",
     .kind = NONE, .worker = stencil_none, .threads = 2, .iters = STEPS_SHORT},
    {"in-place", CL_RACY | CL_WRONG, "a barrier, but one buffer updated in place (the guides' bug)",
     .kind = IN_PLACE, .worker = stencil_in_place, .threads = 2, .iters = STEPS_SHORT},
    {"broken", CL_CORRECT, "the last thread fails mid-phase and aborts the barrier", .kind = BROKEN,
     .worker = stencil_broken, .threads = 2, .iters = STEPS_SHORT},
    {"imbalanced", CL_CORRECT, "band 0 does --imbalance times the work; the others idle",
     .kind = IMBALANCED, .worker = stencil_imbalanced, .threads = 2, .iters = STEPS_SHORT},
    {"serial-action", CL_CORRECT, "the barrier's action checks convergence and stops at --eps",
     .kind = SERIAL_ACTION, .worker = stencil_serial_action, .threads = 2, .iters = STEPS_TIMED},
    {"naive-reuse", CL_HANGS, "one turnstile reused across phases: a thread laps, others stranded",
     .kind = NAIVE, .worker = stencil_naive, .threads = 2, .iters = NAIVE_STEPS, .timeout_s = 2},
};

static const struct cl_param params[] = {
    [SIZE] = {"size", "grid rows and columns (the border excluded)", .def = 800, .min = 1,
              .max = 4096},
    [STEPS] = {"steps", "phases (time steps)", .min = 1, .max = 10000000,
               .unset = "per variant: 500, or 100 for none, in-place, broken, imbalanced; "
                        "naive-reuse always 3"},
    [EPS] = {"eps",
             "serial-action: stop once no cell changes by this many thousandths of a "
             "degree",
             .def = 8000, .min = 1, .max = 100000000},
    [IMBALANCE] = {"imbalance", "imbalanced: band 0's work, as a multiple of the others'", .def = 4,
                   .min = 1, .max = 100},
    [PHASE_WORK] = {"phase-work", "1: the stencil; 0: empty phases, to time the barrier alone",
                    .def = 1, .max = 1},
    [VERIFY] = {"verify", "1: compare with a sequential run; 0: skip it, for timing only", .def = 1,
                .max = 1},
};

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    enum kind kind = run->variant->kind;
    if (!cl_param_given(run, STEPS) || kind == NAIVE) /* naive-reuse: 3, where it surely hangs */
        run->param[STEPS] = (long long)run->variant->iters;
    n = (int)cl_param(run, SIZE);
    steps = cl_param(run, STEPS);
    eps = (double)cl_param(run, EPS) * 1e-3;
    verify = cl_param(run, VERIFY) != 0;
    imbalance = (int)cl_param(run, IMBALANCE);
    phase_work = cl_param(run, PHASE_WORK) != 0;
    fail_at = steps / 2;
    seed = run->opts->seed;
    if (run->opts->iters != 0) {
        snprintf(err, errlen, "barrier: --iters: not used here; the sizes are --size and --steps");
        return 1;
    }
    if (!phase_work && (run->opts->variant == NULL || kind > SPIN)) {
        snprintf(err, errlen,
                 "barrier: --phase-work 0: needs --variant seq, pthread, condvar or spin");
        return 1;
    }
    if (run->threads > n) { /* checked for seq too, so `all` stops before it starts */
        snprintf(err, errlen,
                 "barrier: --threads: %d is more than the %d rows of --size %d (allowed: 1 to %d)",
                 run->threads, n, n, n);
        return 1;
    }
    if (kind == NAIVE && run->threads < 2) {
        snprintf(err, errlen, "barrier: --threads: naive-reuse needs at least 2 threads to lap");
        return 1;
    }
    if (kind == SEQ)
        run->threads = 1;
    run->iters = (uint64_t)steps; /* progress, for the watchdog: phases done */
    return 0;
}
static int threads_for_action; /* converged()'s argument */

static void setup(const struct cl_run *run)
{
    grid[0] = cl_stencil_new(n, seed);
    grid[1] = cl_stencil_new(n, seed);
    per = cl_xaligned_calloc(64, (size_t)run->threads, sizeof *per);
    CL_PT(pthread_barrier_init(&pt_barrier, NULL, (unsigned)run->threads));
    threads_for_action = run->threads;
    CL_PT(cl_barrier_init(&lib_barrier, (unsigned)run->threads,
                          run->variant->kind == SERIAL_ACTION ? converged : NULL,
                          &threads_for_action));
    atomic_store(&spin.left, run->threads);
    atomic_store(&spin.sense, false);
    spin.parties = run->threads;
    conv.done = 0;
    conv.stop = false;
    if (run->variant->kind == NAIVE)
        naive_init(run->threads);
}

/* The sequential reference: `steps` steps, or (until) the convergence check. */
static double *reference(bool until_converged, int64_t *done)
{
    double *g[2] = {cl_stencil_new(n, seed), cl_stencil_new(n, seed)};
    int64_t s = 0;
    bool settled = false;
    for (; s < steps && !settled; s++) {
        if (until_converged)
            settled = cl_stencil_relax_change(g[s % 2], g[(s + 1) % 2], n, 1, n + 1) < eps;
        else
            relax(g[s % 2], g[(s + 1) % 2], 1, n + 1); /* the same values, vectorised */
    }
    *done = s;
    free(g[(s + 1) % 2]);
    return g[s % 2];
}

/* Bit for bit: the same 64 bits, not merely equal values. */
static bool same_bits(double x, double y)
{
    uint64_t a, b;
    memcpy(&a, &x, sizeof a);
    memcpy(&b, &y, sizeof b);
    return a == b;
}

static void compare(const double *got, const double *want, struct cl_result *res)
{
    uint64_t differ = 0;
    double worst = 0;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= n; j++)
            if (!same_bits(AT(got, i, j), AT(want, i, j))) {
                differ++;
                worst = fmax(worst, fabs(AT(got, i, j) - AT(want, i, j)));
            }
    char a[32];
    uint64_t cells = (uint64_t)n * (uint64_t)n;
    res->exact = differ == 0;
    cl_metric_int(res, "cells", (long long)cells);
    cl_metric_int(res, "differ", (long long)differ);
    cl_metric_real(res, "max_error", worst);
    if (res->exact)
        cl_verdict(res, "identical to the sequential reference, bit for bit (%s cells)",
                   cl_fmt_count(cells, a));
    else {
        char b[32];
        cl_verdict(res, "differs from the sequential reference in %s of %s cells (max error %.3g)",
                   cl_fmt_count(differ, a), cl_fmt_count(cells, b), worst);
    }
}

/* broken: every survivor was released at the failing phase, none went past it. */
static void check_broken(const struct cl_run *run, struct cl_result *res)
{
    int released = 0, failed = 0, timed_out = 0, other = 0;
    for (int t = 0; t < run->threads; t++) {
        if (per[t].rc == FAILED)
            failed++;
        else if (per[t].rc == CL_BARRIER_BROKEN && per[t].stopped_at == fail_at)
            released++;
        else if (per[t].rc == CL_BARRIER_TIMEDOUT)
            timed_out++;
        else
            other++;
    }
    res->exact = failed == 1 && released == run->threads - 1;
    res->ops = (uint64_t)fail_at * (uint64_t)n * (uint64_t)n;
    cl_metric_int(res, "broken_phase", fail_at + 1);
    cl_metric_int(res, "released", released);
    cl_metric_int(res, "timed_out", timed_out);
    cl_metric_int(res, "joined", run->threads);
    if (res->exact)
        cl_verdict(res,
                   "phase %lld of %lld broke: T%d failed and aborted the barrier, %d other "
                   "thread%s released with \"barrier broken\", all %d joined, cleanup done",
                   (long long)fail_at + 1, (long long)steps, run->threads, released,
                   released == 1 ? " was" : "s were", run->threads);
    else
        cl_verdict(res,
                   "the broken-barrier protocol failed: of %d threads, %d released with "
                   "\"barrier broken\" in phase %lld, %d timed out, %d otherwise",
                   run->threads, released, (long long)fail_at + 1, timed_out, other);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    enum kind kind = run->variant->kind;
    uint64_t cells = (uint64_t)n * (uint64_t)n;
    res->ops = phase_work ? cells * (uint64_t)steps : (uint64_t)steps;
    if (!phase_work) {
        /* empty phases: nothing to compare; every thread passed every barrier */
        char a[32];
        res->exact = true;
        for (int t = 0; t < run->threads; t++)
            res->exact = res->exact && run->workers[t].progress == (uint64_t)steps;
        /* from the first barrier to the last, as thread 1 saw them: no start-up */
        double ns = steps > 1 && kind != SEQ
                        ? (double)(per[0].last_ns - per[0].first_ns) / (double)(steps - 1)
                        : run->wall_s * 1e9 / (double)steps;
        cl_metric_real(res, "episode_ns", ns);
        cl_verdict(res, "%s barrier episodes, %.0f ns each", cl_fmt_count((uint64_t)steps, a), ns);
    } else if (kind == BROKEN) {
        check_broken(run, res);
    } else if (!verify && kind != SEQ) {
        cl_metric_int(res, "cells", (long long)cells);
        if (kind == SERIAL_ACTION) {
            res->ops = cells * (uint64_t)conv.done;
            cl_metric_int(res, "stopped_at", conv.done);
        }
        cl_verdict(res, "not compared with the reference (--verify 0)");
    } else if (kind == SEQ) {
        /* the reference itself: the same code, so nothing to compare with */
        cl_metric_int(res, "cells", (long long)cells);
        cl_verdict(res, "the reference grid: %lld steps of %d x %d", (long long)steps, n, n);
    } else {
        int64_t done = 0;
        double *want = reference(kind == SERIAL_ACTION, &done);
        const double *got = kind == IN_PLACE        ? grid[0]
                            : kind == SERIAL_ACTION ? grid[conv.done % 2]
                                                    : grid[steps % 2];
        compare(got, want, res);
        if (kind == SERIAL_ACTION) {
            res->ops = cells * (uint64_t)conv.done;
            cl_metric_int(res, "stopped_at", conv.done);
            cl_metric_int(res, "seq_stopped_at", done);
            res->exact = res->exact && conv.done == done;
            char verdict[256];
            snprintf(verdict, sizeof verdict, "%s", res->verdict);
            cl_verdict(res, "stopped after %lld of %lld steps (sequential check: %lld); %s",
                       (long long)conv.done, (long long)steps, (long long)done, verdict);
        }
        free(want);
        uint64_t idle = 0;
        for (int t = 0; t < run->threads; t++)
            idle += per[t].idle_ns;
        if (kind != NONE) {
            double pct = 100.0 * (double)idle / 1e9 / (run->wall_s * run->threads);
            cl_metric_real(res, "idle_pct", pct);
            if (kind == IMBALANCED) {
                char verdict[256];
                snprintf(verdict, sizeof verdict, "%s", res->verdict);
                cl_verdict(res, "threads idle %.0f%% of the time at the barrier; %s", pct, verdict);
            }
        }
    }
}

static void teardown(const struct cl_run *run)
{
    free(grid[0]);
    free(grid[1]);
    free(per);
    CL_PT(pthread_barrier_destroy(&pt_barrier));
    cl_barrier_destroy(&lib_barrier);
    if (run->variant->kind == NAIVE)
        naive_fini();
}

/* The watchdog's view of a hang: only naive-reuse has one to explain. */
static void report(int fd, const struct cl_run *run)
{
    if (run->variant->kind == NAIVE)
        naive_report(fd, run);
}

static const struct cl_chapter barrier = {
    .name = "barrier",
    .summary = "barriers: a stencil computed in phases",
    .look_for = "every correct variant must equal the sequential grid bit for bit (an "
                "operation is one cell update; with --phase-work 0, one barrier episode); "
                "watch none and in-place differ, broken end cleanly, and the idle time at "
                "the barrier",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 10,
    .pin_threads = true, /* the spin barrier needs a core per thread */
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    return cl_main(&barrier, argc, argv);
}
