#include "cl_run.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_child.h"
#include "cl_json.h"
#include "cl_thread.h"
#include "cl_watchdog.h"

/* ------------------------------------------------------------ the start gate */

/* Workers wait until every thread exists, then start together, the overlap
 * that makes a race visible. They sleep on a condition variable while the main
 * thread creates the rest, then, in a chapter that pins its threads, each spins
 * until all have woken, so they start within microseconds of each other. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t opened;
    bool open;
    bool cancelled; /* a thread was refused: the others leave without working */
    _Atomic int awake;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};

/* Returns false when the run was cancelled before it began. */
static bool gate_pass(const struct cl_run *run)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    while (!gate.open)
        CL_PT(pthread_cond_wait(&gate.opened, &gate.mu));
    bool go = !gate.cancelled;
    CL_PT(pthread_mutex_unlock(&gate.mu));
    /* A chapter that leaves its threads to the scheduler (speedup, with up to
     * 10,000 of them) does not need them in step; spinning until thousands of
     * threads have woken on two cores took seconds. */
    if (!go || !run->chapter->pin_threads)
        return go;
    atomic_fetch_add_explicit(&gate.awake, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&gate.awake, memory_order_acquire) < run->threads)
        if (!run->pinned) /* unpinned threads may share a core: let the others on */
            sched_yield();
    return true;
}

static void gate_close(void)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = false;
    gate.cancelled = false;
    atomic_store(&gate.awake, 0);
    CL_PT(pthread_mutex_unlock(&gate.mu));
}

static void gate_open(bool cancelled)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = true;
    gate.cancelled = cancelled;
    CL_PT(pthread_cond_broadcast(&gate.opened));
    CL_PT(pthread_mutex_unlock(&gate.mu));
}

/* With no more threads than CPUs, give each its own (see cl_chapter.pin_threads;
 * perfbook pins its counting benchmarks for the same reason). Returns whether it
 * pinned. */
static bool pin_workers(pthread_attr_t *attrs, int threads)
{
    cpu_set_t allowed;
    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    if (threads > CPU_COUNT(&allowed))
        return false;
    int cpu = 0;
    for (int i = 0; i < threads; i++, cpu++) {
        while (!CPU_ISSET(cpu, &allowed))
            cpu++;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        CL_PT(pthread_attr_setaffinity_np(&attrs[i], sizeof one, &one));
    }
    return true;
}

/* ------------------------------------------------------------ Ctrl-C and phases */

/* Set by the handler on whichever thread takes the signal, read by the watchdog
 * thread and at the end of each phase: a lock-free atomic is safe in both places
 * (volatile sig_atomic_t is only for a handler and the thread it interrupted). */
static atomic_bool interrupted;
static atomic_flag ending = ATOMIC_FLAG_INIT; /* one thread ends the process */

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store_explicit(&interrupted, true, memory_order_relaxed);
}

static void catch_sigint(void)
{
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    CL_SYS(sigaction(SIGINT, &sa, NULL));
}

enum phase { SETUP, RUN, CHECK, REPORT, TEARDOWN, NPHASES };
static const char *const phase_names[NPHASES] = {"setup", "run", "check", "report", "teardown"};
static _Atomic int phase;

/* CONCLAB_TEST_SIGINT_AT=PHASE (a documented test hook): raise SIGINT at the
 * start of that phase, so a test can interrupt each phase of every chapter. */
static int sigint_at = -1;

static void read_test_hook(void)
{
    const char *at = getenv("CONCLAB_TEST_SIGINT_AT");
    for (int p = 0; at != NULL && p < NPHASES; p++)
        if (strcmp(at, phase_names[p]) == 0)
            sigint_at = p;
}

static uint64_t total_progress(void *arg)
{
    const struct cl_run *run = arg;
    uint64_t sum = 0;
    for (int i = 0; i < run->threads; i++)
        sum += atomic_load_explicit(&run->workers[i].progress, memory_order_relaxed);
    return sum;
}

/* Ctrl-C: the partial result, the exit functions, then exit 130 without
 * waiting for the workers. On the watchdog thread or the main thread. */
static _Noreturn void stop_interrupted(const struct cl_run *run)
{
    if (atomic_flag_test_and_set(&ending))
        for (;;) /* the other thread is ending the process */
            pause();
    int at = atomic_load(&phase);
    uint64_t done = total_progress((void *)run), total = (uint64_t)run->threads * run->iters;
    /* Keep stdout to the end: the main thread may be printing the result (Ctrl-C
     * in the output phase), and its next lines and fflush would follow this one. */
    flockfile(stdout);
    if (run->opts->json) {
        struct cl_json j;
        cl_json_begin(&j, stdout);
        cl_json_str(&j, "chapter", run->chapter->name);
        cl_json_str(&j, "variant", run->variant->name);
        cl_json_bool(&j, "interrupted", true);
        cl_json_str(&j, "phase", phase_names[at]);
        cl_json_uint(&j, "ops_done", done);
        cl_json_int(&j, "exit", CL_EXIT_INTERRUPTED);
        cl_json_end(&j);
    } else {
        char a[32], b[32];
        if (total > 0)
            printf("%s: interrupted after %s of %s operations", run->variant->name,
                   cl_fmt_count(done, a), cl_fmt_count(total, b));
        else /* a run bounded by time, not by a count */
            printf("%s: interrupted after %s operations", run->variant->name,
                   cl_fmt_count(done, a));
        printf(at == RUN ? "\n" : " (in %s)\n", phase_names[at]);
    }
    fflush(stdout);
    cl_exit_cleanup();
    _exit(CL_EXIT_INTERRUPTED);
}

static bool was_interrupted(void *arg)
{
    (void)arg;
    return atomic_load_explicit(&interrupted, memory_order_relaxed);
}

static void on_interrupt(void *arg)
{
    stop_interrupted(arg);
}

static void phase_begin(enum phase p)
{
    atomic_store(&phase, (int)p);
    if (sigint_at == (int)p)
        raise(SIGINT);
}

/* At the end of each phase: a Ctrl-C the watchdog has not answered yet (a
 * phase shorter than its poll) is answered here. */
static void phase_end(const struct cl_run *run)
{
    if (was_interrupted(NULL))
        stop_interrupted(run);
}

/* ------------------------------------------------------------ hangs and refusals */

static void hang_exit(void *arg)
{
    (void)arg;
    if (atomic_flag_test_and_set(&ending))
        for (;;)
            pause();
    cl_exit_cleanup();
    _exit(CL_EXIT_HANG);
}

const char *cl_thread_limits(char *buf, size_t len)
{
    static const char *const files[][2] = {{"threads-max", "/proc/sys/kernel/threads-max"},
                                           {"pid_max", "/proc/sys/kernel/pid_max"},
                                           {"max_map_count", "/proc/sys/vm/max_map_count"}};
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        unsigned long long v = 0;
        FILE *f = fopen(files[i][1], "r");
        if (f == NULL)
            continue;
        if (fscanf(f, "%llu", &v) == 1) {
            char n[32];
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s %s", used ? ", " : "", files[i][0],
                     cl_fmt_count(v, n));
        }
        fclose(f);
    }
    struct rlimit lim;
    size_t used = strlen(buf);
    char n[32];
    if (getrlimit(RLIMIT_NPROC, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        snprintf(buf + used, len - used, ", RLIMIT_NPROC %s", cl_fmt_count(lim.rlim_cur, n));
    used = strlen(buf);
    if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        snprintf(buf + used, len - used, ", RLIMIT_AS %s MiB", cl_fmt_count(lim.rlim_cur >> 20, n));
    return buf;
}

_Noreturn void cl_refuse(const struct cl_run *run, const char *call, int err, const char *limit_fmt,
                         ...)
{
    if (atomic_flag_test_and_set(&ending))
        for (;;)
            pause();
    char limit[512] = "";
    if (limit_fmt != NULL) {
        va_list ap;
        va_start(ap, limit_fmt);
        vsnprintf(limit, sizeof limit, limit_fmt, ap);
        va_end(ap);
    }
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s%s%s\n", run->chapter->name, call, strerror(err),
            limit[0] ? "; " : "", limit);
    if (run->opts->json) {
        struct cl_json j;
        cl_json_begin(&j, stdout);
        cl_json_str(&j, "chapter", run->chapter->name);
        cl_json_str(&j, "variant", run->variant->name);
        cl_json_str(&j, "refused", call);
        cl_json_int(&j, "exit", CL_EXIT_REFUSED);
        cl_json_end(&j);
        fflush(stdout);
    }
    cl_exit_cleanup();
    _exit(CL_EXIT_REFUSED);
}

/* ------------------------------------------------------------ results */

bool cl_under_tsan(void)
{
#if defined(__SANITIZE_THREAD__)
    return true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

static void add_metric(struct cl_result *r, struct cl_metric m)
{
    if (r->nmetrics == CL_MAX_METRICS)
        cl_fatal("cl_metric: '%s' is one metric more than the %d a result holds", m.name,
                 CL_MAX_METRICS);
    r->metrics[r->nmetrics++] = m;
}

void cl_metric_int(struct cl_result *r, const char *name, long long value)
{
    add_metric(r, (struct cl_metric){name, (double)value, true});
}

void cl_metric_real(struct cl_result *r, const char *name, double value)
{
    add_metric(r, (struct cl_metric){name, value, false});
}

void cl_verdict(struct cl_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->verdict, sizeof r->verdict, fmt, ap);
    va_end(ap);
}

double cl_param_real(const struct cl_run *run, size_t i)
{
    return cl_param_value_real(&run->chapter->params[i], run->param[i]);
}

bool cl_param_given(const struct cl_run *run, size_t i)
{
    return (run->opts->param_given >> i) & 1u;
}

/* ------------------------------------------------------------ the watchdog's view */

/* What the watchdog knows about each thread. */
static void report_threads(int fd, void *arg)
{
    const struct cl_run *run = arg;
    for (int i = 0; i < run->threads; i++) {
        const struct cl_worker *w = &run->workers[i];
        char done[32], of[48] = "";
        bool finished = atomic_load_explicit(&w->finished, memory_order_acquire);
        const char *status = atomic_load_explicit(&w->status, memory_order_relaxed);
        uint64_t progress = atomic_load_explicit(&w->progress, memory_order_relaxed);
        /* "of N" where N bounds the count; a .run variant may count steps its
         * iters do not predict (a loop's callbacks) */
        if (progress <= w->iters) {
            char n[32];
            snprintf(of, sizeof of, " of %s", cl_fmt_count(w->iters, n));
        }
        dprintf(fd, "  T%d%s%s: %s%s operations done, %s\n", i + 1, w->role >= 0 ? " " : "",
                w->role >= 0 ? run->roles[w->role]->name : "", cl_fmt_count(progress, done), of,
                finished         ? "finished"
                : status != NULL ? status
                                 : "not finished");
    }
    if (run->chapter->report != NULL)
        run->chapter->report(fd, run);
    /* The stuck threads will never write their spans: write the trace now,
     * with each still-open span (a wait that never ended) cut at this time. */
    if (run->trace_file != NULL) {
        run->trace->cut_ns = cl_now_ns();
        if (cl_trace_is_csv(run->opts->trace))
            cl_trace_write_csv(run->trace, run->trace_file);
        else
            cl_trace_write_json(run->trace, run->trace_file, run->chapter->name);
        fclose(run->trace_file);
        dprintf(fd, "  trace so far written to %s (open spans end now)\n", run->opts->trace);
    }
}

static bool role_progress(void *arg, int role, uint64_t *done)
{
    const struct cl_run *run = arg;
    bool active = false;
    *done = 0;
    for (int i = 0; i < run->threads; i++) {
        const struct cl_worker *w = &run->workers[i];
        if (w->role != role)
            continue;
        *done += atomic_load_explicit(&w->progress, memory_order_relaxed);
        active |= !atomic_load_explicit(&w->finished, memory_order_acquire);
    }
    return active;
}

/* "watchdog: writers: no progress for 2.00 s; readers completed 1,234 reads" */
static void report_starved(int fd, void *arg, int role, double idle_s)
{
    const struct cl_run *run = arg;
    dprintf(fd, "watchdog: %s: no progress for %.2f s", run->roles[role]->name, idle_s);
    for (int r = 0; r < run->nroles; r++) {
        uint64_t done;
        char n[32];
        if (r == role)
            continue;
        role_progress(arg, r, &done);
        dprintf(fd, "; %s completed %s %s", run->roles[r]->name, cl_fmt_count(done, n),
                run->roles[r]->ops);
    }
    dprintf(fd, "\n");
    report_threads(fd, arg);
}

/* ------------------------------------------------------------ the stages of a run */

/* Defaults, caps, the flags' values, then the chapter's prepare. */
static int resolve(struct cl_run *run, bool *capped, char *err, size_t errlen)
{
    const struct cl_variant *v = run->variant;
    const struct cl_opts *opts = run->opts;
    const char *name = run->chapter->name;
    if (v->run != NULL && v->threads == 0 && opts->threads != 0) {
        snprintf(err, errlen, "%s: --threads: not used by variant %s", name, v->name);
        return CL_EXIT_USAGE;
    }
    run->threads = opts->threads ? opts->threads : v->threads > 0 ? v->threads : 1;
    run->iters = opts->iters ? opts->iters : v->iters;
    run->timeout_s = v->timeout_s > 0 && !opts->timeout_given ? v->timeout_s : opts->timeout_s;
    *capped = v->max_iters != 0 && run->iters > v->max_iters;
    if (*capped)
        run->iters = v->max_iters;
    memcpy(run->param, opts->param, sizeof run->param);
    if (run->chapter->prepare != NULL && run->chapter->prepare(run, err, errlen) != 0)
        return CL_EXIT_USAGE;
    if (run->threads < 1 || run->threads > cl_max_threads(run->chapter)) {
        snprintf(err, errlen, "%s: %d workers: allowed 1 to %d", name, run->threads,
                 cl_max_threads(run->chapter));
        return CL_EXIT_USAGE;
    }
    return 0;
}

/* The worker records, in shared memory: a forked child's ticks reach the
 * watchdog. */
static void make_workers(struct cl_run *run)
{
    size_t bytes = (size_t)run->threads * sizeof(struct cl_worker);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "%zu bytes of worker records", bytes);
    run->workers = p;
    for (int i = 0; i < run->threads; i++) {
        const struct cl_role *role = run->chapter->role != NULL ? run->chapter->role(run, i) : NULL;
        int r = -1;
        for (int k = 0; role != NULL && k < run->nroles && r < 0; k++)
            if (run->roles[k] == role)
                r = k;
        if (role != NULL && r < 0) {
            if (run->nroles == CL_MAX_ROLES)
                cl_fatal("%s: more than %d roles", run->chapter->name, CL_MAX_ROLES);
            r = run->nroles;
            run->roles[run->nroles++] = role;
        }
        run->workers[i] =
            (struct cl_worker){.id = i,
                               .role = r,
                               .rng = run->opts->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)),
                               .iters = run->iters,
                               .run = run,
                               .trace = run->trace != NULL ? &run->trace->bufs[i] : NULL};
    }
}

struct worker_arg {
    struct cl_worker *w;
    void (*fn)(struct cl_worker *w);
};

static void *worker_main(void *arg)
{
    const struct worker_arg *a = arg;
    struct cl_worker *w = a->w;
    cl_thread_set_id(w->id); /* names this thread in cl_mutex's and cl_lockdep's records */
    if (gate_pass(w->run)) {
        cl_span_open(w, CL_SPAN_RUN); /* open: a hang's trace shows it unfinished */
        a->fn(w);
        cl_span_close(w, CL_SPAN_RUN);
    }
    atomic_store_explicit(&w->finished, true, memory_order_release);
    return NULL;
}

/* Start a thread per worker behind the gate, open it, join them all. Returns
 * 0, or the error of the pthread_create that failed (with *started set), after
 * joining those that did start without running fn. */
static int start_and_join(struct cl_run *run, void (*fn)(struct cl_worker *w), int *started)
{
    int n = run->threads, rc = 0;
    pthread_t *tids = cl_xcalloc((size_t)n, sizeof *tids);
    pthread_attr_t *attrs = cl_xcalloc((size_t)n, sizeof *attrs);
    struct worker_arg *args = cl_xcalloc((size_t)n, sizeof *args);
    for (int i = 0; i < n; i++)
        CL_PT(pthread_attr_init(&attrs[i]));
    run->pinned = run->chapter->pin_threads && pin_workers(attrs, n);
    gate_close();
    for (*started = 0; *started < n; ++*started) {
        int i = *started;
        args[i] = (struct worker_arg){&run->workers[i], fn};
        if ((rc = pthread_create(&tids[i], &attrs[i], worker_main, &args[i])) != 0)
            break;
    }
    uint64_t t0 = cl_now_ns();
    gate_open(rc != 0);
    for (int i = 0; i < *started; i++)
        CL_PT(pthread_join(tids[i], NULL));
    run->wall_s = cl_seconds(cl_now_ns() - t0);
    for (int i = 0; i < n; i++)
        CL_PT(pthread_attr_destroy(&attrs[i]));
    free(args);
    free(attrs);
    free(tids);
    return rc;
}

static void refuse_threads(const struct cl_run *run, int err, int started)
{
    char a[32], b[32], limits[256];
    cl_refuse(run, "pthread_create", err, "started %s of %s threads (limits: %s)",
              cl_fmt_count((uint64_t)started, a), cl_fmt_count((uint64_t)run->threads, b),
              cl_thread_limits(limits, sizeof limits));
}

void cl_run_workers(struct cl_run *run, void (*fn)(struct cl_worker *w))
{
    int started, rc = start_and_join(run, fn, &started);
    if (rc != 0)
        refuse_threads(run, rc, started);
}

/* The run phase: the workers, or the variant's own run. */
static void run_phase(struct cl_run *run)
{
    const struct cl_variant *v = run->variant;
    if (v->run != NULL) {
        uint64_t t0 = cl_now_ns();
        v->run(run);
        run->wall_s = cl_seconds(cl_now_ns() - t0);
        return;
    }
    /* The trace's time zero falls a few microseconds before the gate opens. */
    if (run->trace != NULL)
        run->trace->origin_ns = cl_now_ns();
    cl_run_workers(run, v->worker);
}

static int exit_code(const struct cl_variant *v, const struct cl_result *res)
{
    return (v->tags & (CL_CORRECT | CL_SLOW)) && !res->exact ? CL_EXIT_WRONG : CL_EXIT_OK;
}

static void print_json(const struct cl_run *run, const struct cl_result *res, int code)
{
    char tags[64], key[64];
    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "chapter", run->chapter->name);
    cl_json_str(&j, "variant", run->variant->name);
    cl_json_array(&j, "tags");
    cl_tags_str(run->variant->tags, tags, sizeof tags);
    for (char *save = NULL, *t = strtok_r(tags, ",", &save); t; t = strtok_r(NULL, ",", &save))
        cl_json_str(&j, NULL, t);
    cl_json_close(&j);
    cl_json_int(&j, "threads", run->threads);
    cl_json_bool(&j, "pinned", run->pinned);
    cl_json_object(&j, "params");
    cl_json_int(&j, "iters", (long long)run->iters);
    cl_json_uint(&j, "seed", run->opts->seed);
    cl_json_real(&j, "timeout_s", run->timeout_s);
    for (size_t i = 0; i < run->chapter->nparams; i++) {
        const struct cl_param *p = &run->chapter->params[i];
        /* JSON keys with underscores, so jq can say .params.window_us */
        snprintf(key, sizeof key, "%s", p->name);
        for (char *c = key; *c; c++)
            if (*c == '-')
                *c = '_';
        char buf[32];
        if (p->choices != NULL)
            cl_json_str(&j, key, cl_param_text(p, run->param[i], buf, sizeof buf));
        else if (p->decimals > 0)
            cl_json_real(&j, key, cl_param_real(run, i));
        else
            cl_json_int(&j, key, run->param[i]);
    }
    cl_json_close(&j);
    cl_json_real(&j, "wall_s", run->wall_s);
    cl_json_int(&j, "ops", (long long)res->ops);
    cl_json_real(&j, "ops_per_s", (double)res->ops / run->wall_s);
    cl_json_real(&j, "ns_per_op", run->wall_s * 1e9 / (double)res->ops);
    cl_json_object(&j, "metrics");
    for (size_t i = 0; i < res->nmetrics; i++) {
        if (res->metrics[i].integer)
            cl_json_int(&j, res->metrics[i].name, (long long)res->metrics[i].value);
        else
            cl_json_real(&j, res->metrics[i].name, res->metrics[i].value);
    }
    cl_json_close(&j);
    cl_json_bool(&j, "exact", res->exact);
    cl_json_str(&j, "verdict", res->verdict);
    cl_json_int(&j, "exit", code);
    cl_json_end(&j);
}

static void print_human(const struct cl_run *run, const struct cl_result *res, bool capped)
{
    const struct cl_variant *v = run->variant;
    if (run->opts->quiet) {
        printf("%-22s %s\n", v->name, res->verdict);
        return;
    }
    char tags[64], a[32], b[32];
    printf("\n%s [%s]: %s\n", v->name, cl_tags_str(v->tags, tags, sizeof tags), v->desc);
    if (run->iters > 0)
        printf("  %d thread%s x %s operations%s in %.4f s (%.1f ns/op)\n", run->threads,
               run->threads == 1 ? "" : "s", cl_fmt_count(run->iters, a),
               capped ? " (capped for this variant)" : "", run->wall_s,
               run->wall_s * 1e9 / (double)res->ops);
    else /* a run bounded by time: the operations are what it did */
        printf("  %d thread%s, %s operations in %.4f s\n", run->threads,
               run->threads == 1 ? "" : "s", cl_fmt_count(res->ops, a), run->wall_s);
    for (size_t i = 0; i < res->nmetrics; i++) {
        const struct cl_metric *m = &res->metrics[i];
        if (m->integer && m->value >= 0)
            printf("  %-12s %s\n", m->name, cl_fmt_count((uint64_t)m->value, b));
        else if (m->integer)
            printf("  %-12s -%s\n", m->name, cl_fmt_count((uint64_t)-m->value, b));
        else
            printf("  %-12s %.2f\n", m->name, m->value);
    }
    printf("  => %s\n", res->verdict);
}

/* Writes --trace once the run is over, and says what did not fit. */
static void write_trace(const struct cl_run *run)
{
    if (cl_trace_is_csv(run->opts->trace))
        cl_trace_write_csv(run->trace, run->trace_file);
    else
        cl_trace_write_json(run->trace, run->trace_file, run->chapter->name);
    fclose(run->trace_file);
    uint64_t dropped = cl_trace_dropped(run->trace);
    if (dropped > 0) {
        char n[32];
        fprintf(stderr, "%s: --trace: %s spans dropped (%d kept per thread)\n", run->chapter->name,
                cl_fmt_count(dropped, n), CL_TRACE_CAP);
    }
}

static int run_variant(const struct cl_chapter *ch, const struct cl_opts *opts,
                       const struct cl_variant *v, bool header)
{
    struct cl_run run = {.chapter = ch, .variant = v, .opts = opts};
    bool capped;
    char err[512];
    int rc = resolve(&run, &capped, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return rc;
    }
    struct cl_trace trace = {0};
    if (opts->trace != NULL) {
        if ((run.trace_file = fopen(opts->trace, "w")) == NULL) {
            fprintf(stderr, "%s: --trace: cannot write '%s': %s\n", ch->name, opts->trace,
                    strerror(errno));
            return CL_EXIT_USAGE; /* before the header: a usage error prints one line */
        }
        cl_trace_init(&trace, run.threads, cl_now_ns());
        run.trace = &trace;
    }
    if (header)
        printf("%s: %s\n", ch->name, ch->look_for);
    make_workers(&run);

    /* The watchdog and Ctrl-C end the process with _exit(): flush what is printed
     * so far now, since a stuck thread might hold stdout's lock later. */
    catch_sigint();
    fflush(stdout);
    struct cl_watchdog wd;
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = run.timeout_s,
                                                     .progress = total_progress,
                                                     .report = report_threads,
                                                     .nroles = run.nroles,
                                                     .role_progress = role_progress,
                                                     .starved = report_starved,
                                                     .fire = hang_exit,
                                                     .interrupted = was_interrupted,
                                                     .on_interrupt = on_interrupt,
                                                     .arg = &run,
                                                     .fd = STDERR_FILENO,
                                                     .disarmed = true});
    phase_begin(SETUP);
    if (ch->setup != NULL)
        ch->setup(&run);
    fflush(stdout);
    phase_end(&run);

    phase_begin(RUN);
    cl_watchdog_arm(&wd, true);
    run_phase(&run);
    cl_watchdog_arm(&wd, false);
    phase_end(&run);

    phase_begin(CHECK);
    struct cl_result res = {.exact = true, .ops = (uint64_t)run.threads * run.iters};
    if (ch->check != NULL)
        ch->check(&run, &res);
    int code = exit_code(v, &res);
    phase_end(&run);

    phase_begin(REPORT);
    /* The result is many printf calls: holding stdout's lock across them keeps a
     * Ctrl-C answered meanwhile by the watchdog from printing its partial result
     * in the middle; it comes after, as the last line. */
    flockfile(stdout);
    if (opts->json)
        print_json(&run, &res, code);
    else
        print_human(&run, &res, capped);
    if (run.trace_file != NULL)
        write_trace(&run);
    fflush(stdout);
    funlockfile(stdout);
    phase_end(&run);

    phase_begin(TEARDOWN);
    if (ch->teardown != NULL)
        ch->teardown(&run);
    size_t left = cl_child_count();
    if (left > 0) {
        cl_child_kill_all();
        fprintf(stderr, "%s: %s left %zu child process%s running: killed\n", ch->name, v->name,
                left, left == 1 ? "" : "es");
    }
    phase_end(&run);
    cl_watchdog_stop(&wd);
    cl_exit_cleanup();

    if (run.trace != NULL)
        cl_trace_free(&trace);
    munmap(run.workers, (size_t)run.threads * sizeof(struct cl_worker));
    return code;
}

int cl_run_variant(const struct cl_chapter *ch, const struct cl_opts *opts,
                   const struct cl_variant *v)
{
    return run_variant(ch, opts, v, false);
}

/* ------------------------------------------------------------ every variant */

/* The status a variant's child should end with, given its tags and the build. */
static bool as_declared(const struct cl_variant *v, int status)
{
    if (!WIFEXITED(status))
        return false;
    int code = WEXITSTATUS(status);
    if (v->tags & CL_HANGS)
        return code == CL_EXIT_HANG;
    /* TSan turns exit 0 into 66 after a report: expected exactly where declared. */
    if (cl_under_tsan() && (v->tags & (CL_RACY | CL_LOCK_ORDER)))
        return code == CL_EXIT_OK || code == CL_EXIT_TSAN;
    return code == CL_EXIT_OK;
}

/* Wait for a variant's child; a Ctrl-C of ours alone (kill -INT) must still
 * stop it, and it prints its partial result. */
static int wait_variant(pid_t pid)
{
    int status;
    for (;;) {
        if (cl_child_reaped(pid, &status))
            return status;
        if (atomic_load_explicit(&interrupted, memory_order_relaxed))
            kill(pid, SIGINT);
        cl_sleep_ns(10 * 1000 * 1000);
    }
}

static int run_all(const struct cl_chapter *ch, const struct cl_opts *opts, bool header)
{
    catch_sigint();
    int failed = 0;
    char names[512] = "";
    for (size_t i = 0; i < ch->nvariants; i++) {
        const struct cl_variant *v = &ch->variants[i];
        fflush(stdout);
        fflush(stderr);
        pid_t pid = cl_child_fork();
        CL_SYS(pid);
        if (pid == 0) {
            /* the first child prints the header, once its flags are accepted */
            int code = run_variant(ch, opts, v, header && i == 0);
            fflush(stdout);
            _exit(code);
        }
        int status = wait_variant(pid);
        bool child_interrupted = WIFEXITED(status) && WEXITSTATUS(status) == CL_EXIT_INTERRUPTED;
        if (atomic_load_explicit(&interrupted, memory_order_relaxed) || child_interrupted) {
            /* Ctrl-C that came as the child ended by itself: it printed its whole
             * result, so say where the run stopped */
            if (!child_interrupted && !opts->json)
                printf("%s: interrupted %s variant %s; the rest were not run\n", ch->name,
                       WIFEXITED(status) ? "after" : "during", v->name);
            return CL_EXIT_INTERRUPTED;
        }
        if (WIFEXITED(status) &&
            (WEXITSTATUS(status) == CL_EXIT_USAGE || WEXITSTATUS(status) == CL_EXIT_REFUSED))
            return WEXITSTATUS(status);
        if (!as_declared(v, status)) {
            failed++;
            size_t used = strlen(names);
            if (WIFEXITED(status))
                snprintf(names + used, sizeof names - used, " %s (exit %d)", v->name,
                         WEXITSTATUS(status));
            else
                snprintf(names + used, sizeof names - used, " %s (signal %d)", v->name,
                         WTERMSIG(status));
        }
    }
    if (!opts->json) {
        if (failed == 0)
            printf("\nall %zu variants behaved as declared\n", ch->nvariants);
        else
            printf("\n%d of %zu variants did not behave as declared:%s\n", failed, ch->nvariants,
                   names);
    }
    return failed == 0 ? CL_EXIT_OK : CL_EXIT_WRONG;
}

/* Programming errors in a chapter's declaration, caught before anything runs. */
static void check_declaration(const struct cl_chapter *ch)
{
    if (ch->summary == NULL || ch->look_for == NULL)
        cl_fatal("%s: a chapter needs its summary and look_for lines", ch->name);
    if (ch->nparams > CL_MAX_PARAMS)
        cl_fatal("%s: %zu flags of its own, more than lib's %d", ch->name, ch->nparams,
                 CL_MAX_PARAMS);
    for (size_t i = 0; i < ch->nvariants; i++) {
        const struct cl_variant *v = &ch->variants[i];
        if ((v->worker == NULL) == (v->run == NULL))
            cl_fatal("%s: variant %s needs exactly one of .worker and .run", ch->name, v->name);
    }
}

/* Block the chapter's signals in this thread before any other exists: every
 * thread started later inherits the mask. */
static void block_signals(const struct cl_chapter *ch)
{
    if (ch->blocked_signals == NULL)
        return;
    sigset_t set;
    sigemptyset(&set);
    for (const int *s = ch->blocked_signals; *s != 0; s++) {
        if (*s == SIGINT)
            cl_fatal("%s: SIGINT cannot be blocked: lib answers Ctrl-C", ch->name);
        sigaddset(&set, *s);
    }
    CL_PT(pthread_sigmask(SIG_BLOCK, &set, NULL));
}

int cl_main(const struct cl_chapter *ch, int argc, char **argv)
{
    check_declaration(ch);
    struct cl_opts opts;
    char err[512];
    if (cl_parse(ch, argc, argv, &opts, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return CL_EXIT_USAGE;
    }
    if (opts.version) {
        printf("%s (conclab) %s\n", ch->name, CL_VERSION);
        return CL_EXIT_OK;
    }
    if (opts.help) {
        cl_usage(ch, stdout);
        return CL_EXIT_OK;
    }
    if (opts.list) {
        char tags[64];
        for (size_t i = 0; i < ch->nvariants; i++)
            printf("%s\t%s\t%s\n", ch->variants[i].name,
                   cl_tags_str(ch->variants[i].tags, tags, sizeof tags), ch->variants[i].desc);
        return CL_EXIT_OK;
    }
    read_test_hook();
    block_signals(ch);
    /* The header: once the first variant's prepare hook has accepted the flags,
     * so that a refused combination prints only its error line. */
    bool header = !opts.json && !opts.quiet;
    if (opts.variant != NULL)
        return run_variant(ch, &opts, opts.variant, header);
    return run_all(ch, &opts, header);
}
