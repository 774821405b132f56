/* Running a chapter: the phases of a run (prepare, setup, the run, check, the
 * output, teardown), the workers behind a start gate, the watchdog, Ctrl-C,
 * timing and the exit status. A demo's main() is one call to cl_main(). */
#ifndef CL_RUN_H
#define CL_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cl_chapter.h"
#include "cl_cli.h"
#include "cl_exit.h"
#include "cl_time.h"
#include "cl_trace.h"
#include "cl_work.h"

/* One worker's record. The records live in shared memory (a forked child may
 * tick its own) and are aligned to a cache line, so that neighbouring workers'
 * progress counters never share one. */
struct cl_worker {
    _Alignas(64) _Atomic uint64_t progress; /* completed operations: the watchdog reads it */
    _Atomic bool finished;
    _Atomic(const char *) status; /* what it waits for, for the watchdog; NULL: running */
    int id;                       /* 0 .. threads-1 */
    int role;                     /* index into run->roles, -1 for none */
    uint64_t rng;                 /* cl_rand()'s state, seeded from --seed and id */
    uint64_t iters;
    const struct cl_run *run;
    struct cl_trace_buf *trace; /* NULL unless --trace */
};

#define CL_MAX_ROLES 8

struct cl_run {
    const struct cl_chapter *chapter;
    const struct cl_variant *variant;
    const struct cl_opts *opts;     /* as parsed; a chapter flag's value: cl_param() */
    int threads;                    /* workers (threads, or records of a .run variant) */
    uint64_t iters;                 /* per worker, after defaults and caps */
    long long param[CL_MAX_PARAMS]; /* the chapter's flags after defaults and prepare */
    struct cl_worker *workers;
    const struct cl_role *roles[CL_MAX_ROLES]; /* distinct roles of the workers */
    int nroles;
    double timeout_s; /* the watchdog's: --timeout, else the variant's, else the chapter's */
    bool pinned;      /* one CPU per thread (when threads <= CPUs) */
    double wall_s;    /* from the open gate to the last join (.run: its whole call) */
    /* --trace, for the watchdog: a hang writes what is traced so far. */
    struct cl_trace *trace;
    FILE *trace_file;
};

/* The value of the chapter's flag i, as resolved for this run (a choice flag:
 * the index of the name given). Workers, hooks and --json read it here. */
static inline long long cl_param(const struct cl_run *run, size_t i)
{
    return run->param[i];
}

/* A fixed-point flag as a double (0.25 for --cpu-fraction 0.25). */
double cl_param_real(const struct cl_run *run, size_t i);

/* Whether flag i was given on the command line (prepare fills the others). */
bool cl_param_given(const struct cl_run *run, size_t i);

#define CL_MAX_METRICS 16 /* more in one result is a cl_fatal */

struct cl_metric {
    const char *name;
    double value;
    bool integer;
};

/* What a chapter's check hook fills in. */
struct cl_result {
    bool exact;   /* the result equals the reference; a correct variant must be */
    uint64_t ops; /* operations in total, threads x iters unless the check says */
    char verdict[256];
    struct cl_metric metrics[CL_MAX_METRICS];
    size_t nmetrics;
};

void cl_metric_int(struct cl_result *r, const char *name, long long value);
void cl_metric_real(struct cl_result *r, const char *name, double value);
__attribute__((format(printf, 2, 3))) void cl_verdict(struct cl_result *r, const char *fmt, ...);

/* Count n completed operations. Only the owner writes its counter, so a
 * relaxed load and store suffice: no locked instruction on the hot path. */
static inline void cl_tick_n(struct cl_worker *w, uint64_t n)
{
    uint64_t done = atomic_load_explicit(&w->progress, memory_order_relaxed);
    atomic_store_explicit(&w->progress, done + n, memory_order_relaxed);
}

/* Count one completed operation. */
static inline void cl_tick(struct cl_worker *w)
{
    cl_tick_n(w, 1);
}

/* Say what this thread is about to wait for ("waits for fork 2"), or NULL once
 * it runs again; the watchdog prints it. The string must outlive the run. */
static inline void cl_status(struct cl_worker *w, const char *what)
{
    atomic_store_explicit(&w->status, what, memory_order_relaxed);
}

/* A per-thread pseudo-random number (splitmix64): the same --seed gives every
 * thread the same sequence on every run, with no shared state. */
static inline uint64_t cl_rand(struct cl_worker *w)
{
    return cl_splitmix64(&w->rng);
}

/* Mark an interval for --trace; with tracing off, neither reads the clock. */
static inline uint64_t cl_span_begin(const struct cl_worker *w)
{
    return w->trace != NULL ? cl_now_ns() : 0;
}

static inline void cl_span_end(struct cl_worker *w, enum cl_span_kind kind, uint64_t start_ns)
{
    if (w->trace != NULL)
        cl_trace_add(w->trace, kind, start_ns, cl_now_ns());
}

/* A span that may never end (a wait that deadlocks): open it before blocking,
 * close it after. If the watchdog ends the run, the trace shows it still open,
 * ending at the watchdog's time. One open span per kind per thread. */
static inline void cl_span_open(struct cl_worker *w, enum cl_span_kind kind)
{
    if (w->trace != NULL)
        cl_trace_open(w->trace, kind, cl_now_ns());
}

static inline void cl_span_close(struct cl_worker *w, enum cl_span_kind kind)
{
    if (w->trace != NULL)
        cl_trace_close(w->trace, kind, cl_now_ns());
}

/* For a .run variant: run fn on every worker record in a thread of its own,
 * behind the start gate, and join them all. If the system refuses a thread, the
 * ones started are joined without running fn, and the run ends with
 * cl_refuse (exit 4). */
void cl_run_workers(struct cl_run *run, void (*fn)(struct cl_worker *w));

/* The system refused a resource (err from `call`): one line on stderr naming
 * the call, the error and, after it, the limit (printf-style, may be NULL);
 * then the exit functions (children killed, files removed) and exit 4. Call it
 * from any thread, in any phase. A limit that can be checked beforehand is a
 * usage error in prepare instead. */
_Noreturn __attribute__((format(printf, 4, 5))) void
cl_refuse(const struct cl_run *run, const char *call, int err, const char *limit_fmt, ...);

/* This process's limits on threads, for a refusal's line: "threads-max 63,707,
 * pid_max 4,194,304, max_map_count 65,530, RLIMIT_NPROC unlimited". */
const char *cl_thread_limits(char *buf, size_t len);

/* True in a build with ThreadSanitizer, which changes exit codes after a report. */
bool cl_under_tsan(void);

/* Parse, then list, help, version, or run one variant or all of them (each in a
 * forked child). Returns the exit status; the only place a demo's exit code is
 * made. */
int cl_main(const struct cl_chapter *ch, int argc, char **argv);

/* Run one variant in this process and return its exit status. */
int cl_run_variant(const struct cl_chapter *ch, const struct cl_opts *opts,
                   const struct cl_variant *v);

#endif
