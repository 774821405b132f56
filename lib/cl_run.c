#include "cl_run.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_mutex.h"
#include "cl_report.h"
#include "cl_watchdog.h"

/* The start gate: workers wait until every thread exists, then start together,
 * the overlap that makes a race visible. They sleep on a condition variable
 * while the main thread creates the rest, then, in a chapter that pins its
 * threads, each spins until all have woken, so they start within microseconds
 * of each other. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t opened;
    bool open;
    _Atomic int awake;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};

static void gate_pass(const struct cl_run *run)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    while (!gate.open)
        CL_PT(pthread_cond_wait(&gate.opened, &gate.mu));
    CL_PT(pthread_mutex_unlock(&gate.mu));
    /* A chapter that leaves its threads to the scheduler (speedup, with up to
     * 10,000 of them) does not need them in step; spinning until thousands of
     * threads have woken on two cores took seconds. */
    if (!run->chapter->pin_threads)
        return;
    atomic_fetch_add_explicit(&gate.awake, 1, memory_order_acq_rel);
    while (atomic_load_explicit(&gate.awake, memory_order_acquire) < run->threads)
        if (!run->pinned) /* unpinned threads may share a core: let the others on */
            sched_yield();
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

static void gate_close(void)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = false;
    atomic_store(&gate.awake, 0);
    CL_PT(pthread_mutex_unlock(&gate.mu));
}

static void gate_open_all(void)
{
    CL_PT(pthread_mutex_lock(&gate.mu));
    gate.open = true;
    CL_PT(pthread_cond_broadcast(&gate.opened));
    CL_PT(pthread_mutex_unlock(&gate.mu));
}
/* Set by the handler on whichever thread takes the signal, read by the watchdog
 * thread: a lock-free atomic is safe in both places (volatile sig_atomic_t is
 * only for a handler and the thread it interrupted). */
static atomic_bool interrupted;

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

void cl_metric_int(struct cl_result *r, const char *name, long long value)
{
    if (r->nmetrics < CL_MAX_METRICS)
        r->metrics[r->nmetrics++] = (struct cl_metric){name, (double)value, true};
}

void cl_metric_real(struct cl_result *r, const char *name, double value)
{
    if (r->nmetrics < CL_MAX_METRICS)
        r->metrics[r->nmetrics++] = (struct cl_metric){name, value, false};
}

void cl_verdict(struct cl_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->verdict, sizeof r->verdict, fmt, ap);
    va_end(ap);
}

static void *worker_main(void *arg)
{
    struct cl_worker *w = arg;
    cl_mutex_self(w->id); /* names this thread in cl_mutex's wait-for records */
    gate_pass(w->run);
    cl_span_open(w, CL_SPAN_RUN); /* open: a hang's trace shows it unfinished */
    w->run->variant->worker(w);
    cl_span_close(w, CL_SPAN_RUN);
    atomic_store_explicit(&w->finished, true, memory_order_release);
    return NULL;
}

static uint64_t total_progress(void *arg)
{
    const struct cl_run *run = arg;
    uint64_t sum = 0;
    for (int i = 0; i < run->threads; i++)
        sum += atomic_load_explicit(&run->workers[i].progress, memory_order_relaxed);
    return sum;
}

/* What the watchdog knows about each thread. */
static void report_threads(int fd, void *arg)
{
    const struct cl_run *run = arg;
    for (int i = 0; i < run->threads; i++) {
        const struct cl_worker *w = &run->workers[i];
        char done[32], of[32];
        bool finished = atomic_load_explicit(&w->finished, memory_order_acquire);
        const char *status = atomic_load_explicit(&w->status, memory_order_relaxed);
        dprintf(fd, "  T%d: %s of %s operations done, %s\n", i + 1,
                cl_fmt_count(atomic_load_explicit(&w->progress, memory_order_relaxed), done),
                cl_fmt_count(w->iters, of),
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

static bool was_interrupted(void *arg)
{
    (void)arg;
    return atomic_load_explicit(&interrupted, memory_order_relaxed);
}

/* Ctrl-C: the partial result, then exit 130 without waiting for the workers.
 * Runs on the watchdog thread; workers never print, so stdout is free. */
static void stop_interrupted(void *arg)
{
    const struct cl_run *run = arg;
    uint64_t done = total_progress(arg), total = (uint64_t)run->threads * run->iters;
    if (run->opts->json) {
        struct cl_json j;
        cl_json_begin(&j, stdout);
        cl_json_str(&j, "chapter", run->chapter->name);
        cl_json_str(&j, "variant", run->variant->name);
        cl_json_bool(&j, "interrupted", true);
        cl_json_uint(&j, "ops_done", done);
        cl_json_int(&j, "exit", CL_EXIT_INTERRUPTED);
        cl_json_end(&j);
    } else {
        char a[32], b[32];
        printf("%s: interrupted after %s of %s operations\n", run->variant->name,
               cl_fmt_count(done, a), cl_fmt_count(total, b));
    }
    fflush(stdout);
    _exit(CL_EXIT_INTERRUPTED);
}

static int exit_code(const struct cl_variant *v, const struct cl_result *res)
{
    return (v->tags & CL_CORRECT) && !res->exact ? CL_EXIT_WRONG : CL_EXIT_OK;
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
    cl_json_real(&j, "timeout_s", run->opts->timeout_s);
    for (size_t i = 0; i < run->chapter->nparams; i++) {
        /* JSON keys with underscores, so jq can say .params.window_us */
        snprintf(key, sizeof key, "%s", run->chapter->params[i].name);
        for (char *p = key; *p; p++)
            if (*p == '-')
                *p = '_';
        if (run->chapter->param_choices != NULL && run->chapter->param_choices[i] != NULL) {
            char buf[32];
            cl_json_str(&j, key,
                        cl_param_str(run->chapter, i, run->opts->param[i], buf, sizeof buf));
        } else if (run->chapter->param_decimals != NULL && run->chapter->param_decimals[i] > 0)
            cl_json_real(&j, key, cl_param_real(run->chapter, i, run->opts->param[i]));
        else
            cl_json_int(&j, key, run->opts->param[i]);
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
    printf("  %d thread%s x %s operations%s in %.4f s (%.1f ns/op)\n", run->threads,
           run->threads == 1 ? "" : "s", cl_fmt_count(run->iters, a),
           capped ? " (capped for this variant)" : "", run->wall_s,
           run->wall_s * 1e9 / (double)res->ops);
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

static bool header_pending; /* cl_main's header line is still to be printed */

static void print_header(const struct cl_chapter *ch)
{
    if (header_pending)
        printf("%s: %s\n", ch->name, ch->look_for);
    header_pending = false;
}

int cl_run_variant(const struct cl_chapter *ch, const struct cl_opts *opts,
                   const struct cl_variant *v)
{
    struct cl_run run = {.chapter = ch, .variant = v, .opts = opts};
    run.threads = opts->threads ? opts->threads : v->threads;
    run.iters = opts->iters ? opts->iters : v->iters;
    bool capped = v->max_iters != 0 && run.iters > v->max_iters;
    if (capped)
        run.iters = v->max_iters;
    char err[512];
    if (ch->prepare != NULL && ch->prepare(&run, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return CL_EXIT_USAGE;
    }
    print_header(ch);

    FILE *trace_file = NULL;
    if (opts->trace != NULL && (trace_file = fopen(opts->trace, "w")) == NULL) {
        fprintf(stderr, "%s: --trace: cannot write '%s': %s\n", ch->name, opts->trace,
                strerror(errno));
        return CL_EXIT_USAGE;
    }

    struct cl_worker *workers =
        cl_xaligned_calloc(_Alignof(struct cl_worker), (size_t)run.threads, sizeof *workers);
    run.workers = workers;

    struct cl_trace trace = {0};
    if (trace_file != NULL) {
        cl_trace_init(&trace, run.threads, cl_now_ns());
        run.trace = &trace;
        run.trace_file = trace_file;
    }
    for (int i = 0; i < run.threads; i++)
        workers[i] =
            (struct cl_worker){.id = i,
                               .rng = opts->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)),
                               .iters = run.iters,
                               .run = &run,
                               .trace = trace_file ? &trace.bufs[i] : NULL};
    if (ch->setup != NULL)
        ch->setup(&run);

    catch_sigint();
    /* The watchdog and Ctrl-C end the process with _exit(): flush what is printed
     * so far now, since a stuck thread might hold stdout's lock later. */
    fflush(stdout);
    gate_close();
    pthread_t *tids = cl_xcalloc((size_t)run.threads, sizeof *tids);
    pthread_attr_t *attrs = cl_xcalloc((size_t)run.threads, sizeof *attrs);
    for (int i = 0; i < run.threads; i++)
        CL_PT(pthread_attr_init(&attrs[i]));
    run.pinned = ch->pin_threads && pin_workers(attrs, run.threads);
    for (int i = 0; i < run.threads; i++) {
        int rc = pthread_create(&tids[i], &attrs[i], worker_main, &workers[i]);
        if (rc != 0) {
            /* Not "--threads:": a chapter may set the count from another flag. */
            fprintf(stderr, "%s: could start only %d of %d threads (%s): ask for fewer\n", ch->name,
                    i, run.threads, strerror(rc));
            _exit(CL_EXIT_USAGE); /* the started ones wait at the closed gate */
        }
    }

    /* The trace's time zero is set before the watchdog thread starts, which may
     * write the trace of a hang; it falls a few microseconds before the gate opens. */
    if (trace_file != NULL)
        trace.origin_ns = cl_now_ns();
    struct cl_watchdog wd;
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = opts->timeout_s,
                                                     .progress = total_progress,
                                                     .report = report_threads,
                                                     .interrupted = was_interrupted,
                                                     .on_interrupt = stop_interrupted,
                                                     .arg = &run,
                                                     .fd = STDERR_FILENO});
    uint64_t t0 = cl_now_ns();
    gate_open_all();
    for (int i = 0; i < run.threads; i++)
        CL_PT(pthread_join(tids[i], NULL));
    run.wall_s = cl_seconds(cl_now_ns() - t0);
    cl_watchdog_stop(&wd);

    struct cl_result res = {.exact = true, .ops = (uint64_t)run.threads * run.iters};
    if (ch->check != NULL)
        ch->check(&run, &res);
    int code = exit_code(v, &res);
    if (opts->json)
        print_json(&run, &res, code);
    else
        print_human(&run, &res, capped);

    if (trace_file != NULL) {
        if (cl_trace_is_csv(opts->trace))
            cl_trace_write_csv(&trace, trace_file);
        else
            cl_trace_write_json(&trace, trace_file, ch->name);
        fclose(trace_file);
        cl_trace_free(&trace);
    }
    for (int i = 0; i < run.threads; i++)
        CL_PT(pthread_attr_destroy(&attrs[i]));
    free(attrs);
    free(tids);
    free(workers);
    return code;
}

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
        return code == CL_EXIT_OK || code == 66;
    return code == CL_EXIT_OK;
}

static int run_all(const struct cl_chapter *ch, const struct cl_opts *opts)
{
    catch_sigint();
    int failed = 0;
    char names[512] = "";
    for (size_t i = 0; i < ch->nvariants; i++) {
        const struct cl_variant *v = &ch->variants[i];
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        CL_SYS(pid);
        if (pid == 0) {
            int code = cl_run_variant(ch, opts, v);
            fflush(stdout);
            _exit(code);
        }
        int status;
        while (waitpid(pid, &status, 0) == -1) {
            if (errno != EINTR)
                cl_die(__FILE__, __LINE__, "waitpid", errno);
            /* A terminal's Ctrl-C reaches the child too; a kill -INT of ours alone
             * must still stop the child, which prints its partial result. */
            if (atomic_load_explicit(&interrupted, memory_order_relaxed))
                kill(pid, SIGINT);
        }
        bool child_interrupted = WIFEXITED(status) && WEXITSTATUS(status) == CL_EXIT_INTERRUPTED;
        if (atomic_load_explicit(&interrupted, memory_order_relaxed) || child_interrupted) {
            /* Ctrl-C that came as the child ended by itself: it printed its whole
             * result, so say where the run stopped */
            if (!child_interrupted && !opts->json)
                printf("%s: interrupted %s variant %s; the rest were not run\n", ch->name,
                       WIFEXITED(status) ? "after" : "during", v->name);
            return CL_EXIT_INTERRUPTED;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == CL_EXIT_USAGE)
            return CL_EXIT_USAGE;
        header_pending = false; /* the child printed it, once its flags were accepted */
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

int cl_main(const struct cl_chapter *ch, int argc, char **argv)
{
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
    /* The header: once the first variant's prepare hook has accepted the flags,
     * so that a refused combination prints only its error line. */
    header_pending = !opts.json && !opts.quiet;
    if (opts.variant != NULL)
        return cl_run_variant(ch, &opts, opts.variant);
    return run_all(ch, &opts);
}
