/* Per-thread intervals for the timeline: what each thread was doing, when.
 * Each thread appends to its own buffer, so tracing takes no lock; with tracing
 * off a span costs one predictable branch. */
#ifndef CL_TRACE_H
#define CL_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What a span says a thread was doing. The first three are the program's own
 * view, marked around its code (cl_span_begin/end); the rest are the
 * scheduler's view of a thread, read from the kernel (cl_sched) or inferred by a
 * thread that watches its own clock. Each kind's name is its CSV and JSON name. */
enum cl_span_kind {
    CL_SPAN_RUN,      /* "run": the thread's whole job */
    CL_SPAN_WAIT,     /* "wait": sleeping or blocked, as the program sees it */
    CL_SPAN_HOLD,     /* "hold": holding a lock */
    CL_SPAN_RUNNING,  /* "running": on a CPU */
    CL_SPAN_RUNNABLE, /* "runnable": ready, waiting in a run queue for a CPU */
    CL_SPAN_BLOCKED,  /* "blocked": asleep until another thread or a device wakes
                         it (a futex: a lock or a condition variable; a pipe) */
    CL_SPAN_SLEEPING, /* "sleeping": asleep until a time (nanosleep) */
    CL_SPAN_EXITED,   /* "exited": the thread is gone; not yet joined, perhaps */
    CL_SPAN_KINDS
};

struct cl_span {
    uint64_t start_ns, end_ns;
    enum cl_span_kind kind;
};

struct cl_trace_buf {
    struct cl_span *spans;
    size_t len, cap;
    uint64_t dropped; /* spans past cap are counted, not stored */
    /* Start of a span still open, per kind (0: none): a thread blocked for good
     * in a deadlock never closes its wait. Read by the watchdog's writer. */
    _Atomic uint64_t open_ns[CL_SPAN_KINDS];
};

struct cl_trace {
    struct cl_trace_buf *bufs; /* one per thread */
    int threads;
    uint64_t origin_ns; /* time zero of the file */
    uint64_t cut_ns;    /* nonzero: the writers end open spans here (a hang) */
};

#define CL_TRACE_CAP 65536 /* spans kept per thread */

void cl_trace_init(struct cl_trace *t, int threads, uint64_t origin_ns);
void cl_trace_free(struct cl_trace *t);
void cl_trace_add(struct cl_trace_buf *b, enum cl_span_kind kind, uint64_t start_ns,
                  uint64_t end_ns);
const char *cl_span_name(enum cl_span_kind kind);

/* Open a span of this kind now, or close it (adding it as a complete span). */
void cl_trace_open(struct cl_trace_buf *b, enum cl_span_kind kind, uint64_t start_ns);
void cl_trace_close(struct cl_trace_buf *b, enum cl_span_kind kind, uint64_t end_ns);

/* Spans that did not fit (past CL_TRACE_CAP in a thread), over all threads. */
uint64_t cl_trace_dropped(const struct cl_trace *t);

/* CSV (thread,kind,start_s,end_s) for gnuplot's timeline, or Chrome trace-event
 * JSON for Perfetto; --trace picks by the file's extension. Dropped spans are
 * counted in both: a final "# dropped N ..." line in the CSV when there are
 * any, and otherData.dropped in the JSON. */
bool cl_trace_is_csv(const char *path);
void cl_trace_write_csv(const struct cl_trace *t, FILE *f);
void cl_trace_write_json(const struct cl_trace *t, FILE *f, const char *label);

/* FILE.samples.tsv beside --trace FILE.csv (FILE.ext: the extension replaced),
 * opened for writing: a demo's samples over time for plots/series.gp, a header
 * line of column names, then one row a line. NULL when it cannot be created. */
FILE *cl_samples_open(const char *trace);

#endif
