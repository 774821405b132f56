/* cl_run: cl_run_variant and cl_main on small test chapters, each run in a
 * forked child with its output on pipes and its wait bounded. This process
 * starts no thread of its own, so forking stays safe under ThreadSanitizer. */
#include "unit.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conclab.h"

#define LIMIT_S 20.0 /* no child may take longer than this */

/* How a test variant behaves, in its `data`. */
struct behaviour {
    bool say_wrong; /* the check reports a wrong result */
    bool block;     /* the setup holds `stuck_lock`, which the worker then waits for */
    bool interrupt; /* the worker raises SIGINT before it blocks */
};

static const struct behaviour count_ok = {0};
static const struct behaviour count_wrong = {.say_wrong = true};
static const struct behaviour blocks = {.block = true};
static const struct behaviour interrupts = {.block = true, .interrupt = true};

static _Atomic uint64_t total;
static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct behaviour *behaviour_of(const struct cl_run *run)
{
    return run->variant->data;
}

static void count_worker(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
        cl_tick(w);
    }
}

/* Five operations, then wait for good on the lock the setup holds. */
static void stuck_worker(struct cl_worker *w)
{
    for (uint64_t i = 0; i < 5 && i < w->iters; i++)
        cl_tick(w);
    if (behaviour_of(w->run)->interrupt)
        raise(SIGINT); /* Ctrl-C, delivered to this thread */
    cl_status(w, "waits for stuck_lock");
    pthread_mutex_lock(&stuck_lock);
    pthread_mutex_unlock(&stuck_lock);
}

static void setup(const struct cl_run *run)
{
    atomic_store(&total, 0);
    if (behaviour_of(run)->block)
        pthread_mutex_lock(&stuck_lock); /* never released: the process ends first */
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    uint64_t want = (uint64_t)run->threads * run->iters, got = atomic_load(&total);
    res->exact = got == want && !behaviour_of(run)->say_wrong;
    cl_metric_int(res, "count", (long long)got);
    cl_metric_real(res, "ratio", (double)got / (double)want);
    cl_verdict(res, "%s: %llu of %llu", res->exact ? "exact" : "WRONG", (unsigned long long)got,
               (unsigned long long)want);
}

enum { COUNT, WRONG_CHECK, LOSSY, STUCK, CAPPED, NOT_STUCK, INTERRUPT_ME, QUICK_STUCK, NVARIANTS };

static const struct cl_variant variants[NVARIANTS] = {
    [COUNT] = {"count", CL_CORRECT, "counts with an atomic add", .worker = count_worker,
               .threads = 3, .iters = 1000, .data = &count_ok},
    [WRONG_CHECK] = {"wrong_check", CL_CORRECT, "correct, but the check disagrees",
                     .worker = count_worker, .threads = 2, .iters = 100, .data = &count_wrong},
    [LOSSY] = {"lossy", CL_WRONG | CL_RACY, "wrong, as declared", .worker = count_worker,
               .threads = 2, .iters = 100, .data = &count_wrong},
    [STUCK] = {"stuck", CL_HANGS, "blocks for good", .worker = stuck_worker, .threads = 2,
               .iters = 10, .data = &blocks},
    [CAPPED] = {"capped", CL_CORRECT, "at most 50 per thread", .worker = count_worker, .threads = 2,
                .iters = 1000, .max_iters = 50, .data = &count_ok},
    [NOT_STUCK] = {"not_stuck", CL_HANGS, "said to hang, but finishes", .worker = count_worker,
                   .threads = 2, .iters = 10, .data = &count_ok},
    [INTERRUPT_ME] = {"interrupt_me", CL_HANGS, "Ctrl-C while stuck", .worker = stuck_worker,
                      .threads = 1, .iters = 10, .data = &interrupts},
    [QUICK_STUCK] = {"quick_stuck", CL_HANGS, "blocks; its own timeout is 0.3 s",
                     .worker = stuck_worker, .threads = 1, .iters = 10, .timeout_s = 0.3,
                     .data = &blocks},
};

static const struct cl_param params[] = {
    {.name = "window-us", .help = "a chapter flag", .def = 5, .min = 1, .max = 1000},
};

static const struct cl_chapter unit_chapter = {
    .name = "unit",
    .summary = "a test chapter",
    .look_for = "what to look for",
    .variants = variants,
    .nvariants = NVARIANTS,
    .params = params,
    .nparams = 1,
    .timeout_s = 10,
    .setup = setup,
    .check = check,
};

/* A chapter of two of the variants above, for --variant all. */
static struct cl_variant pair[2];

static struct cl_chapter pair_chapter(int first, int second)
{
    pair[0] = variants[first];
    pair[1] = variants[second];
    struct cl_chapter ch = unit_chapter;
    ch.variants = pair;
    ch.nvariants = 2;
    return ch;
}

/* The chapter's own watchdog report, and a prepare hook that derives the thread
 * count (as producers + consumers would) or refuses more than 4. */
static void report_state(int fd, const struct cl_run *run)
{
    dprintf(fd, "  stuck_lock: held by setup, %d waiting\n", run->threads);
}

static int prepare_double(struct cl_run *run, char *err, size_t errlen)
{
    if (run->threads > 4) {
        snprintf(err, errlen, "unit: --threads: at most 4 here (got %d)", run->threads);
        return 1;
    }
    run->threads *= 2;
    return 0;
}

/* ---- running things in a child ---- */

struct job {
    const struct cl_chapter *ch;
    struct cl_opts opts;
    const struct cl_variant *v;
    const char *const *args; /* for cl_main: the arguments after argv[0] */
};

static int run_variant_child(void *arg)
{
    const struct job *j = arg;
    return cl_run_variant(j->ch, &j->opts, j->v);
}

static int main_child(void *arg)
{
    const struct job *j = arg;
    char *argv[32] = {(char *)j->ch->name};
    int argc = 1;
    for (const char *const *a = j->args; *a != NULL && argc < 31; a++)
        argv[argc++] = (char *)*a;
    return cl_main(j->ch, argc, argv);
}

/* Options as cl_parse leaves them with no arguments, then adjusted. */
static struct cl_opts default_opts(void)
{
    return (struct cl_opts){.seed = 1, .timeout_s = 10, .param = {5}};
}

static void run_variant(int v, const struct cl_opts *opts, struct child *c)
{
    struct job j = {.ch = &unit_chapter, .opts = *opts, .v = &variants[v]};
    run_child(run_variant_child, &j, LIMIT_S, c);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void run_main(const struct cl_chapter *ch, const char *const *args, struct child *c)
{
    struct job j = {.ch = ch, .args = args};
    run_child(main_child, &j, LIMIT_S, c);
}

/* The children's output is large; share one buffer instead of the stack. */
static struct child kid;

/* ---- cl_run_variant ---- */

static void test_prepare_adjusts_or_refuses(void **state)
{
    (void)state;
    struct cl_chapter ch = unit_chapter;
    ch.prepare = prepare_double;
    struct cl_opts o = default_opts();
    o.json = true;
    o.threads = 3;
    struct job j = {.ch = &ch, .opts = o, .v = &variants[COUNT]};
    run_child(run_variant_child, &j, LIMIT_S, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_json_field(kid.out, "threads", "6");
    assert_json_field(kid.out, "count", "6000");

    j.opts.threads = 5;
    run_child(run_variant_child, &j, LIMIT_S, &kid);
    assert_child_exit(&kid, CL_EXIT_USAGE);
    assert_string_equal(kid.err, "unit: --threads: at most 4 here (got 5)\n");
    assert_string_equal(kid.out, "");

    /* through cl_main too: the header waits for prepare, so stdout stays empty */
    run_main(&ch, ARGS("--variant", "count", "--threads", "5"), &kid);
    assert_child_exit(&kid, CL_EXIT_USAGE);
    assert_string_equal(kid.out, "");
    run_main(&ch, ARGS("--variant", "count", "--threads", "2"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_true(strncmp(kid.out, "unit: what to look for\n", 23) == 0);
}

/* The watchdog prints what each thread said it waits for, then the chapter's report. */
static void test_watchdog_prints_status_and_chapter_report(void **state)
{
    (void)state;
    struct cl_chapter ch = unit_chapter;
    ch.report = report_state;
    struct cl_opts o = default_opts();
    o.timeout_s = 0.3;
    struct job j = {.ch = &ch, .opts = o, .v = &variants[STUCK]};
    run_child(run_variant_child, &j, LIMIT_S, &kid);
    assert_child_exit(&kid, CL_EXIT_HANG);
    assert_contains(kid.err, "  T1: 5 of 10 operations done, waits for stuck_lock\n");
    assert_contains(kid.err, "  T2: 5 of 10 operations done, waits for stuck_lock\n");
    assert_contains(kid.err, "T2: 5 of 10 operations done, waits for stuck_lock\n"
                             "  stuck_lock: held by setup, 2 waiting\n");
}

/* cl_rand: the same seed gives the same sequence, another seed another one. */
static void test_rand_is_seeded(void **state)
{
    (void)state;
    struct cl_worker a = {.rng = 1}, b = {.rng = 1}, c = {.rng = 2};
    uint64_t first = cl_rand(&a);
    assert_true(first == cl_rand(&b));
    assert_true(first != cl_rand(&c));
    assert_true(cl_rand(&a) != first); /* it moves on */
    int below = 0;
    for (int i = 0; i < 1000; i++)
        below += cl_rand(&a) % 2 == 0;
    assert_in_range(below, 400, 600); /* even and odd about equally often */
}

static void test_correct_variant_human(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.out, "\ncount [correct]: counts with an atomic add\n");
    assert_contains(kid.out, "  3 threads x 1,000 operations in ");
    assert_contains(kid.out, "  count        3,000\n");
    assert_contains(kid.out, "  ratio        1.00\n");
    assert_contains(kid.out, "  => exact: 3000 of 3000\n");
    assert_not_contains(kid.out, "capped");
    assert_string_equal(kid.err, "");
}

static void test_correct_variant_json(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    o.json = true;
    o.threads = 4;
    o.iters = 250;
    o.seed = 99;
    o.param[0] = 17;
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    print_message("%s", kid.out);
    assert_int_equal(count_lines(kid.out), 1);
    assert_true(json_valid(kid.out));
    assert_json_field(kid.out, "chapter", "unit");
    assert_json_field(kid.out, "variant", "count");
    assert_contains(kid.out, "\"tags\":[\"correct\"]");
    assert_json_field(kid.out, "threads", "4");
    assert_json_field(kid.out, "iters", "250");
    assert_json_field(kid.out, "seed", "99");
    assert_json_field(kid.out, "timeout_s", "10");
    assert_json_field(kid.out, "window_us", "17"); /* the chapter's flag, dash to underscore */
    assert_json_field(kid.out, "ops", "1000");
    assert_contains(kid.out, "\"metrics\":{\"count\":1000,\"ratio\":1}");
    assert_json_field(kid.out, "exact", "true");
    assert_json_field(kid.out, "verdict", "exact: 1000 of 1000");
    assert_json_field(kid.out, "exit", "0");
    char wall[64];
    assert_true(json_get(kid.out, "wall_s", wall, sizeof wall));
    assert_true(strtod(wall, NULL) > 0);
    assert_string_equal(kid.err, "");
}

/* A correct variant whose check finds the result wrong: exit 1. */
static void test_correct_variant_wrong_result_exits_1(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    run_variant(WRONG_CHECK, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_WRONG);
    assert_contains(kid.out, "  => WRONG: 200 of 200\n");

    o.json = true;
    run_variant(WRONG_CHECK, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_WRONG);
    assert_true(json_valid(kid.out));
    assert_json_field(kid.out, "exact", "false");
    assert_json_field(kid.out, "exit", "1");
}

/* A variant declared wrong that is wrong has done its job: exit 0. */
static void test_wrong_variant_exits_0(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    o.json = true;
    run_variant(LOSSY, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.out, "\"tags\":[\"wrong\",\"racy\"]");
    assert_json_field(kid.out, "exact", "false");
    assert_json_field(kid.out, "exit", "0");
}

/* Every worker blocked: the watchdog reports each thread and exits 3, no sooner
 * than the timeout. */
static void test_blocked_variant_exits_3(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    o.timeout_s = 0.3;
    run_variant(STUCK, &o, &kid);
    print_message("exit after %.2f s, stderr:\n%s", kid.elapsed_s, kid.err);
    assert_child_exit(&kid, CL_EXIT_HANG);
    assert_true(kid.elapsed_s >= 0.3);
    assert_contains(kid.err, "watchdog: no progress for ");
    assert_contains(kid.err, "(10 operations done)\n");
    assert_contains(kid.err, "  T1: 5 of 10 operations done, ");
    assert_contains(kid.err, "  T2: 5 of 10 operations done, ");
    assert_not_contains(kid.err, ", finished\n"); /* neither worker returned */
    assert_not_contains(kid.err, "T3:");
    assert_string_equal(kid.out, ""); /* no verdict: the run never ended */
}

/* 0 threads and 0 iters take the variant's defaults; max_iters caps --iters. */
static void test_defaults_and_cap(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    o.json = true;
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_json_field(kid.out, "threads", "3");
    assert_json_field(kid.out, "iters", "1000");
    assert_json_field(kid.out, "ops", "3000");

    o.iters = 1000000;
    run_variant(CAPPED, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_json_field(kid.out, "iters", "50");
    assert_json_field(kid.out, "ops", "100");

    o.json = false;
    run_variant(CAPPED, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.out, "2 threads x 50 operations (capped for this variant) in ");

    o.iters = 20; /* under the cap: as given */
    run_variant(CAPPED, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.out, "2 threads x 20 operations in ");
}

static void test_quiet(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    o.quiet = true;
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    char want[128];
    snprintf(want, sizeof want, "%-22s %s\n", "count", "exact: 3000 of 3000");
    assert_string_equal(kid.out, want);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* --trace writes the file its extension names: CSV or Chrome trace JSON. */
static void test_trace_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/conclab-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char csv[64], json[64];
    snprintf(csv, sizeof csv, "%s/t.csv", dir);
    snprintf(json, sizeof json, "%s/t.json", dir);

    struct cl_opts o = default_opts();
    o.threads = 2;
    o.iters = 10;
    o.trace = csv;
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    char *text = slurp(csv);
    assert_non_null(text);
    print_message("%s", text ? text : "(none)");
    assert_true(strncmp(text, "thread,kind,start_s,end_s\n1,run,", 32) == 0);
    assert_contains(text, "\n2,run,");
    assert_int_equal(count_lines(text), 3); /* the header, one run span per thread */

    o.trace = json;
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    text = slurp(json);
    assert_non_null(text);
    assert_true(json_valid(text));
    assert_contains(text, "{\"traceEvents\":[{\"name\":\"run\",\"cat\":\"unit\",\"ph\":\"X\"");
    assert_contains(text, "\"tid\":1}");
    assert_contains(text, "\"tid\":2}");

    unlink(csv);
    unlink(json);
    assert_int_equal(rmdir(dir), 0);

    o.trace = "/nonexistent/conclab-unit/t.csv";
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_USAGE);
    assert_contains(kid.err, "unit: --trace: cannot write '/nonexistent/conclab-unit/t.csv'");
}

/* Ctrl-C during a run: the partial count, then exit 130 without waiting for the
 * blocked worker. The worker raises SIGINT itself, after the handler is set.
 * test_interrupt_flag_race_free below checks that TSan stays silent. */
static void run_interrupted(bool json)
{
    struct cl_opts o = default_opts();
    o.timeout_s = 60; /* the interrupt, not the watchdog's timeout, ends it */
    o.json = json;
    run_variant(INTERRUPT_ME, &o, &kid);
    assert_child_status(&kid, CL_EXIT_INTERRUPTED);
}

static void test_interrupt_exits_130(void **state)
{
    (void)state;
    run_interrupted(false);
    assert_string_equal(kid.out, "interrupt_me: interrupted after 5 of 10 operations\n");

    run_interrupted(true);
    assert_true(json_valid(kid.out));
    assert_string_equal(kid.out, "{\"chapter\":\"unit\",\"variant\":\"interrupt_me\","
                                 "\"interrupted\":true,\"phase\":\"run\",\"ops_done\":5,"
                                 "\"exit\":130}\n");
}

/* ---- cl_main ---- */

static void test_main_list(void **state)
{
    (void)state;
    run_main(&unit_chapter, ARGS("--list"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    char want[2048] = "", tags[64];
    for (size_t i = 0; i < NVARIANTS; i++) {
        size_t used = strlen(want);
        snprintf(want + used, sizeof want - used, "%s\t%s\t%s\n", variants[i].name,
                 cl_tags_str(variants[i].tags, tags, sizeof tags), variants[i].desc);
    }
    assert_string_equal(kid.out, want);
    assert_contains(kid.out, "count\tcorrect\tcounts with an atomic add\n");
    assert_contains(kid.out, "lossy\twrong,racy\twrong, as declared\n");
    assert_string_equal(kid.err, "");
}

static void test_main_help(void **state)
{
    (void)state;
    run_main(&unit_chapter, ARGS("--help"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.out, "Usage: conclab-unit [OPTION]...\n");
    assert_contains(kid.out, "--window-us");
}

static void test_main_version(void **state)
{
    (void)state;
    run_main(&unit_chapter, ARGS("--version"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_string_equal(kid.out, "unit (conclab) " CL_VERSION "\n");
    assert_string_equal(kid.err, "");
}

/* A usage error: exit 2, one line on stderr, nothing on stdout. */
static void test_main_usage_error(void **state)
{
    (void)state;
    run_main(&unit_chapter, ARGS("--variant", "count", "--threads", "0"), &kid);
    assert_child_exit(&kid, CL_EXIT_USAGE);
    assert_string_equal(kid.out, "");
    assert_int_equal(count_lines(kid.err), 1);
    assert_contains(kid.err, "--threads");
    assert_contains(kid.err, "1 to 4096");
}

static void test_main_one_variant(void **state)
{
    (void)state;
    run_main(&unit_chapter, ARGS("--variant", "count", "--threads", "2", "--iters", "5"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_true(strncmp(kid.out, "unit: what to look for\n", 23) == 0);
    assert_contains(kid.out, "  => exact: 10 of 10\n");
    assert_not_contains(kid.out, "behaved as declared"); /* that is for all */

    run_main(&unit_chapter, ARGS("--variant=wrong_check"), &kid);
    assert_child_exit(&kid, CL_EXIT_WRONG);
}

/* Every variant did what its tags say, including the one that hangs. */
static void test_main_all_behaving(void **state)
{
    (void)state;
    struct cl_chapter ch = pair_chapter(COUNT, STUCK);
    run_main(&ch, ARGS("--variant", "all", "--timeout", "0.5"), &kid);
    print_message("%s%s", kid.out, kid.err);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_true(strncmp(kid.out, "unit: what to look for\n", 23) == 0);
    assert_contains(kid.out, "  => exact: 3000 of 3000\n");
    assert_contains(kid.out, "\nall 2 variants behaved as declared\n");
    assert_contains(kid.err, "  T1: 5 of 10 operations done, ");

    /* --json: one line per variant that finished, and no summary */
    run_main(&ch, ARGS("--timeout", "0.5", "--json"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_int_equal(count_lines(kid.out), 1);
    assert_true(json_valid(kid.out));
    assert_json_field(kid.out, "variant", "count");
    assert_not_contains(kid.out, "behaved");
}

/* A correct variant that gives a wrong result makes the whole run exit 1. */
static void test_main_all_misbehaving(void **state)
{
    (void)state;
    struct cl_chapter ch = pair_chapter(COUNT, WRONG_CHECK);
    run_main(&ch, ARGS("--variant", "all"), &kid);
    assert_child_exit(&kid, CL_EXIT_WRONG);
    assert_contains(kid.out,
                    "\n1 of 2 variants did not behave as declared: wrong_check (exit 1)\n");
}

/* So does a variant declared to hang that finishes instead. */
static void test_main_all_hang_that_does_not(void **state)
{
    (void)state;
    struct cl_chapter ch = pair_chapter(COUNT, NOT_STUCK);
    run_main(&ch, ARGS("--variant", "all"), &kid);
    assert_child_exit(&kid, CL_EXIT_WRONG);
    assert_contains(kid.out, "did not behave as declared: not_stuck (exit 0)\n");
}

/* A variant's own timeout is its default; --timeout still wins; --help and
 * --json say which one a run used. */
static void test_variant_timeout(void **state)
{
    (void)state;
    run_main(&unit_chapter, ARGS("--variant", "quick_stuck"), &kid);
    assert_child_exit(&kid, CL_EXIT_HANG);
    assert_contains(kid.err, "watchdog: no progress for 0.3");
    assert_true(kid.elapsed_s < 5); /* the chapter's 10 s did not apply */

    run_main(&unit_chapter, ARGS("--variant", "quick_stuck", "--timeout", "0.8"), &kid);
    assert_child_exit(&kid, CL_EXIT_HANG);
    assert_true(kid.elapsed_s >= 0.8);
    assert_not_contains(kid.err, "no progress for 0.3");

    run_main(&unit_chapter, ARGS("--help"), &kid);
    assert_contains(kid.out, "with no progress (default: 10; quick_stuck: 0.3)\n");

    run_main(&unit_chapter, ARGS("--variant", "count", "--json"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_json_field(kid.out, "timeout_s", "10");
}

/* ---- the small helpers ---- */

static void test_metrics_and_verdict(void **state)
{
    (void)state;
    struct cl_result r = {0};
    cl_metric_int(&r, "n", -7);
    cl_metric_real(&r, "x", 2.5);
    assert_int_equal(r.nmetrics, 2);
    assert_string_equal(r.metrics[0].name, "n");
    assert_true(r.metrics[0].value == -7.0);
    assert_true(r.metrics[0].integer);
    assert_true(r.metrics[1].value == 2.5);
    assert_false(r.metrics[1].integer);
    for (int i = 2; i < CL_MAX_METRICS; i++)
        cl_metric_int(&r, "more", i);
    assert_int_equal(r.nmetrics, CL_MAX_METRICS); /* one more stops the program: test_shapes */

    cl_verdict(&r, "%d of %s", 3, "four");
    assert_string_equal(r.verdict, "3 of four");
    char longer[1000];
    memset(longer, 'v', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cl_verdict(&r, "%s", longer);
    assert_int_equal(strlen(r.verdict), sizeof r.verdict - 1); /* truncated, terminated */
}

static void test_under_tsan(void **state)
{
    (void)state;
    const char *sanitize = getenv("CONCLAB_SANITIZE");
    if (sanitize == NULL) {
        skip(); /* run outside meson test: nothing to compare with */
        return;
    }
    assert_int_equal(cl_under_tsan(), strstr(sanitize, "thread") != NULL);
}

/* Regression (lib/cl_run.c, print_json), now fixed: the seed goes out through cl_json_int
 * as a long long, so any --seed above INT64_MAX (which cl_parse accepts, up to
 * 18446744073709551615) is printed negative: "seed":-1. */
static void test_json_seed_above_int64_max(void **state)
{
    (void)state;
    struct cl_opts o = default_opts();
    o.json = true;
    o.seed = UINT64_MAX;
    run_variant(COUNT, &o, &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_json_field(kid.out, "seed", "18446744073709551615");
}

/* Regression (lib/cl_run.c, `interrupted`, seen by ThreadSanitizer), now fixed: the
 * SIGINT handler writes a volatile sig_atomic_t on whichever thread takes the
 * signal, and the watchdog thread reads it: a data race (volatile sig_atomic_t
 * is only safe within one thread). TSan reports it on every Ctrl-C. */
static void test_interrupt_flag_race_free(void **state)
{
    (void)state;
    run_interrupted(false);
    if (sanitizer_report(kid.err)) {
        fprintf(stderr, "%s", kid.err);
        fail_msg("the interrupted run reported a race");
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_correct_variant_human),
        cmocka_unit_test(test_correct_variant_json),
        cmocka_unit_test(test_correct_variant_wrong_result_exits_1),
        cmocka_unit_test(test_wrong_variant_exits_0),
        cmocka_unit_test(test_blocked_variant_exits_3),
        cmocka_unit_test(test_defaults_and_cap),
        cmocka_unit_test(test_quiet),
        cmocka_unit_test(test_trace_files),
        cmocka_unit_test(test_interrupt_exits_130),
        cmocka_unit_test(test_main_list),
        cmocka_unit_test(test_main_help),
        cmocka_unit_test(test_main_version),
        cmocka_unit_test(test_main_usage_error),
        cmocka_unit_test(test_main_one_variant),
        cmocka_unit_test(test_main_all_behaving),
        cmocka_unit_test(test_main_all_misbehaving),
        cmocka_unit_test(test_main_all_hang_that_does_not),
        cmocka_unit_test(test_variant_timeout),
        cmocka_unit_test(test_metrics_and_verdict),
        cmocka_unit_test(test_prepare_adjusts_or_refuses),
        cmocka_unit_test(test_watchdog_prints_status_and_chapter_report),
        cmocka_unit_test(test_rand_is_seeded),
        cmocka_unit_test(test_under_tsan),
        cmocka_unit_test(test_json_seed_above_int64_max),
        cmocka_unit_test(test_interrupt_flag_race_free),
    };
    return UNIT_MAIN("run", tests);
}
