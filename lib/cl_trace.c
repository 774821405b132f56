#include "cl_trace.h"

#include <stdlib.h>
#include <string.h>

#include "cl_check.h"
#include "cl_json.h"
#include "cl_time.h"

void cl_trace_init(struct cl_trace *t, int threads, uint64_t origin_ns)
{
    t->threads = threads;
    t->origin_ns = origin_ns;
    t->bufs = cl_xcalloc((size_t)threads, sizeof *t->bufs);
    for (int i = 0; i < threads; i++) {
        t->bufs[i].cap = CL_TRACE_CAP;
        t->bufs[i].spans = cl_xcalloc(CL_TRACE_CAP, sizeof(struct cl_span));
    }
}

void cl_trace_free(struct cl_trace *t)
{
    for (int i = 0; i < t->threads; i++)
        free(t->bufs[i].spans);
    free(t->bufs);
    t->bufs = NULL;
}

void cl_trace_add(struct cl_trace_buf *b, enum cl_span_kind kind, uint64_t start_ns,
                  uint64_t end_ns)
{
    if (b->len == b->cap) {
        b->dropped++;
        return;
    }
    b->spans[b->len] = (struct cl_span){start_ns, end_ns, kind};
    /* release: a writer on the watchdog thread (a hang) sees whole spans */
    __atomic_store_n(&b->len, b->len + 1, __ATOMIC_RELEASE);
}

void cl_trace_open(struct cl_trace_buf *b, enum cl_span_kind kind, uint64_t start_ns)
{
    atomic_store_explicit(&b->open_ns[kind], start_ns, memory_order_relaxed);
}

void cl_trace_close(struct cl_trace_buf *b, enum cl_span_kind kind, uint64_t end_ns)
{
    uint64_t start = atomic_load_explicit(&b->open_ns[kind], memory_order_relaxed);
    atomic_store_explicit(&b->open_ns[kind], 0, memory_order_relaxed);
    if (start != 0)
        cl_trace_add(b, kind, start, end_ns);
}

static size_t spans_of(const struct cl_trace_buf *b)
{
    return __atomic_load_n(&b->len, __ATOMIC_ACQUIRE);
}

/* The open span of kind k, cut at the watchdog's time, or false. */
static bool open_span(const struct cl_trace *t, int i, int k, struct cl_span *s)
{
    uint64_t start = atomic_load_explicit(&t->bufs[i].open_ns[k], memory_order_relaxed);
    if (t->cut_ns == 0 || start == 0 || start > t->cut_ns)
        return false;
    *s = (struct cl_span){start, t->cut_ns, (enum cl_span_kind)k};
    return true;
}

/* Call fn on every span, thread by thread: the stored ones, then, when a hang
 * cut the trace, the ones still open, ended at the cut. */
typedef void span_fn(int thread, const struct cl_span *s, void *arg);

static void each_span(const struct cl_trace *t, span_fn *fn, void *arg)
{
    for (int i = 0; i < t->threads; i++) {
        size_t n = spans_of(&t->bufs[i]);
        for (size_t k = 0; k < n; k++)
            fn(i + 1, &t->bufs[i].spans[k], arg);
        for (int kind = 0; kind < CL_SPAN_KINDS; kind++) {
            struct cl_span open;
            if (open_span(t, i, kind, &open))
                fn(i + 1, &open, arg);
        }
    }
}

const char *cl_span_name(enum cl_span_kind kind)
{
    static const char *const names[CL_SPAN_KINDS] = {"run",      "wait",    "hold",     "running",
                                                     "runnable", "blocked", "sleeping", "exited"};
    return names[kind];
}

static double rel_s(const struct cl_trace *t, uint64_t ns)
{
    return cl_seconds(ns - t->origin_ns);
}

struct csv_out {
    const struct cl_trace *t;
    FILE *f;
};

static void csv_row(int thread, const struct cl_span *s, void *arg)
{
    const struct csv_out *o = arg;
    fprintf(o->f, "%d,%s,%.9f,%.9f\n", thread, cl_span_name(s->kind), rel_s(o->t, s->start_ns),
            rel_s(o->t, s->end_ns));
}

uint64_t cl_trace_dropped(const struct cl_trace *t)
{
    uint64_t n = 0;
    for (int i = 0; i < t->threads; i++)
        n += t->bufs[i].dropped;
    return n;
}

void cl_trace_write_csv(const struct cl_trace *t, FILE *f)
{
    fprintf(f, "thread,kind,start_s,end_s\n");
    each_span(t, csv_row, &(struct csv_out){t, f});
    uint64_t dropped = cl_trace_dropped(t);
    if (dropped > 0) /* a comment, which gnuplot skips */
        fprintf(f, "# dropped %llu spans past the %d kept per thread\n",
                (unsigned long long)dropped, CL_TRACE_CAP);
}

struct json_out {
    const struct cl_trace *t;
    struct cl_json *j;
    const char *label;
};

/* Chrome's trace-event format: complete ("X") events, times in microseconds. */
static void json_event(int thread, const struct cl_span *s, void *arg)
{
    const struct json_out *o = arg;
    cl_json_object(o->j, NULL);
    cl_json_str(o->j, "name", cl_span_name(s->kind));
    cl_json_str(o->j, "cat", o->label);
    cl_json_str(o->j, "ph", "X");
    cl_json_real(o->j, "ts", rel_s(o->t, s->start_ns) * 1e6);
    cl_json_real(o->j, "dur", cl_seconds(s->end_ns - s->start_ns) * 1e6);
    cl_json_int(o->j, "pid", 1);
    cl_json_int(o->j, "tid", thread);
    cl_json_close(o->j);
}

void cl_trace_write_json(const struct cl_trace *t, FILE *f, const char *label)
{
    struct cl_json j;
    cl_json_begin(&j, f);
    cl_json_array(&j, "traceEvents");
    each_span(t, json_event, &(struct json_out){t, &j, label});
    cl_json_close(&j);
    cl_json_object(&j, "otherData"); /* Chrome's place for anything else */
    cl_json_uint(&j, "dropped", cl_trace_dropped(t));
    cl_json_close(&j);
    cl_json_end(&j);
}

FILE *cl_samples_open(const char *trace)
{
    char path[4096];
    const char *dot = strrchr(trace, '.');
    int stem = dot != NULL ? (int)(dot - trace) : (int)strlen(trace);
    snprintf(path, sizeof path, "%.*s.samples.tsv", stem, trace);
    return fopen(path, "w");
}

bool cl_trace_is_csv(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".csv") == 0;
}
