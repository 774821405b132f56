/* The run shapes of contract v2 on small fake chapters, each run in a forked
 * child: a .run variant that takes over the run, a child process that stops
 * making progress, a role that starves while another goes on, a refused
 * resource, a blocked signal read from a signalfd, Ctrl-C in every phase, and
 * the capacities that stop the program instead of dropping data. */
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conclab.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h> /* RUNNING_ON_VALGRIND: a macro, no library */
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define LIMIT_S 20.0

static struct child kid;

/* ---- the variants ---- */

static _Atomic uint64_t total;

static void count_worker(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
        cl_tick(w);
    }
}

/* .run: the run's own shape, here two phases of lib's workers around its own work. */
static void run_twice(struct cl_run *run)
{
    cl_run_workers(run, count_worker);
    cl_run_workers(run, count_worker);
}

/* A forked child ticks its worker record five times, then stops for good; the
 * parent waits for it. Its pid goes to stderr, so the test can look for it. */
static void run_stalled_child(struct cl_run *run)
{
    pid_t pid = cl_child_fork();
    if (pid == 0) {
        for (int i = 0; i < 5; i++)
            cl_tick(&run->workers[0]);
        for (;;)
            pause();
    }
    dprintf(STDERR_FILENO, "child %d\n", (int)pid);
    cl_status(&run->workers[0], "waits for its child");
    cl_child_wait(pid);
}

/* A child forked and forgotten: lib kills it at the end and says so. */
static void run_forgets_child(struct cl_run *run)
{
    pid_t pid = cl_child_fork();
    if (pid == 0)
        for (;;)
            pause();
    dprintf(STDERR_FILENO, "child %d\n", (int)pid);
    cl_tick(&run->workers[0]);
}

/* A child started by vfork + exec and adopted, then forgotten: lib kills it too. */
static void run_adopts_child(struct cl_run *run)
{
    char *const argv[] = {"sleep", "60", NULL};
    pid_t pid = vfork(); /* NOLINT(clang-analyzer-security.insecureAPI.vfork) */
    if (pid == 0) {
        execv("/bin/sleep", argv);
        _exit(127);
    }
    CL_SYS(pid);
    cl_child_adopt(pid);
    dprintf(STDERR_FILENO, "child %d\n", (int)pid);
    cl_tick(&run->workers[0]);
}

/* A child started, then the system refuses the next one. */
static void run_refused(struct cl_run *run)
{
    pid_t pid = cl_child_fork();
    if (pid == 0)
        for (;;)
            pause();
    dprintf(STDERR_FILENO, "child %d\n", (int)pid);
    cl_refuse(run, "fork", EAGAIN, "forked %d of %d processes", 1, 2);
}

/* Roles: worker 0 writes once, then waits for good; the others read on. */
static const struct cl_role readers = {"readers", "reads"}, writers = {"writers", "writes"};

static void starving_worker(struct cl_worker *w)
{
    if (w->id == 0) {
        cl_tick(w);
        cl_status(w, "waits for the readers to leave");
        for (;;)
            pause();
    }
    for (;;) { /* reads on, until the watchdog ends the process */
        cl_tick(w);
        cl_sleep_ns(1000000);
    }
}

/* The writer is done at once; the readers go on for a while, then finish. A
 * finished role is not starving. */
static void finishing_worker(struct cl_worker *w)
{
    uint64_t end = cl_now_ns() + 600 * 1000000ull;
    if (w->id == 0) {
        cl_tick(w);
        return;
    }
    while (cl_now_ns() < end) {
        cl_tick(w);
        cl_sleep_ns(1000000);
    }
}

enum { PLAIN, WITH_ROLES }; /* the variants' kinds */

static const struct cl_role *role_of(const struct cl_run *run, int id)
{
    if (run->variant->kind != WITH_ROLES)
        return NULL;
    return id == 0 ? &writers : &readers;
}

/* A blocked signal: sent to the whole process, it must wait in the signalfd,
 * since no thread (the watchdog included) may take it. */
static _Atomic int got_signal;

static void signal_worker(struct cl_worker *w)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    CL_SYS(fd);
    CL_SYS(kill(getpid(), SIGUSR1));
    struct signalfd_siginfo info;
    if (CL_RETRY(read(fd, &info, sizeof info)) == (long)sizeof info)
        atomic_store(&got_signal, (int)info.ssi_signo);
    CL_SYS(close(fd));
    cl_tick(w);
}

static const int blocked[] = {SIGUSR1, 0};

/* A check that takes long (barrier's sequential verification does). */
static void slow_check(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    (void)res;
    cl_sleep_ns(5 * CL_NS_PER_S);
}

static void too_many_metrics(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    for (int i = 0; i <= CL_MAX_METRICS; i++)
        cl_metric_int(res, "m", i);
}

static void check_count(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    cl_verdict(res, "counted %llu", (unsigned long long)atomic_load(&total));
    if (atomic_load(&got_signal) != 0)
        cl_verdict(res, "signal %d read from the signalfd", atomic_load(&got_signal));
}

enum {
    COUNT,
    RUN_TWICE,
    STALLED_CHILD,
    FORGETS_CHILD,
    ADOPTS_CHILD,
    REFUSED,
    STARVING,
    FINISHING,
    SIGNALS,
    N
};

static const struct cl_variant variants[N] = {
    [COUNT] = {"count", CL_CORRECT, "threads count", .worker = count_worker, .threads = 2,
               .iters = 100},
    [RUN_TWICE] = {"run-twice", CL_CORRECT, "a .run variant", .run = run_twice, .threads = 2,
                   .iters = 50},
    [STALLED_CHILD] = {"stalled-child", CL_HANGS, "a child stops", .run = run_stalled_child,
                       .iters = 10},
    [FORGETS_CHILD] = {"forgets-child", CL_CORRECT, "a child left", .run = run_forgets_child,
                       .iters = 1},
    [ADOPTS_CHILD] = {"adopts-child", CL_CORRECT, "a vfork child left", .run = run_adopts_child,
                      .iters = 1},
    [REFUSED] = {"refused", CL_CORRECT, "a refused fork", .run = run_refused, .iters = 1},
    [STARVING] = {"starving", CL_HANGS, "writers starve", .kind = WITH_ROLES,
                  .worker = starving_worker, .threads = 3, .iters = 1000000},
    [FINISHING] = {"finishing", CL_CORRECT, "writers finish first", .kind = WITH_ROLES,
                   .worker = finishing_worker, .threads = 2, .iters = 1000000},
    [SIGNALS] = {"signals", CL_CORRECT, "a blocked signal", .worker = signal_worker, .threads = 1,
                 .iters = 1},
};

static const struct cl_chapter base = {
    .name = "unit",
    .summary = "a test chapter",
    .look_for = "what to look for",
    .variants = variants,
    .nvariants = N,
    .timeout_s = 10,
    .check = check_count,
    .role = role_of,
};

/* ---- running a chapter in a child ---- */

struct job {
    const struct cl_chapter *ch;
    const char *const *args;
    const char *sigint_at; /* CONCLAB_TEST_SIGINT_AT, or NULL */
    rlim_t address_space;  /* RLIMIT_AS, or 0 */
};

static int main_child(void *arg)
{
    const struct job *j = arg;
    if (j->sigint_at != NULL)
        setenv("CONCLAB_TEST_SIGINT_AT", j->sigint_at, 1);
    if (j->address_space != 0) {
        struct rlimit lim = {j->address_space, j->address_space};
        if (setrlimit(RLIMIT_AS, &lim) != 0)
            return 99;
    }
    char *argv[32] = {(char *)j->ch->name};
    int argc = 1;
    for (const char *const *a = j->args; *a != NULL && argc < 31; a++)
        argv[argc++] = (char *)*a;
    return cl_main(j->ch, argc, argv);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void run_main(const struct cl_chapter *ch, const char *const *args, struct child *c)
{
    struct job j = {.ch = ch, .args = args};
    run_child(main_child, &j, LIMIT_S, c);
}

/* The pid a variant printed as "child N", and whether it still exists. */
static pid_t child_pid(const char *err)
{
    const char *at = strstr(err, "child ");
    return at != NULL ? (pid_t)atoi(at + 6) : 0;
}

static void assert_gone(pid_t pid)
{
    assert_true(pid > 0);
    errno = 0;
    if (kill(pid, 0) == 0 || errno != ESRCH)
        fail_msg("child %d is still there", (int)pid);
}

/* ---- the tests ---- */

/* .run takes over the run; lib still times it, checks it and prints it. */
static void test_run_shape(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "run-twice", "--json"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_json_field(kid.out, "threads", "2");
    assert_json_field(kid.out, "verdict", "counted 200");
    assert_json_field(kid.out, "exit", "0");
}

/* A .run variant with no default thread count takes no --threads. */
static void test_run_shape_refuses_threads(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "refused", "--threads", "2"), &kid);
    assert_child_exit(&kid, CL_EXIT_USAGE);
    assert_string_equal(kid.err, "unit: --threads: not used by variant refused\n");
    assert_string_equal(kid.out, "");
}

/* The child's ticks reach the parent's watchdog through shared memory; when
 * they stop, the watchdog reports, kills and reaps the child, and exits 3. */
static void test_child_stops_making_progress(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "stalled-child", "--timeout", "0.3"), &kid);
    print_message("%s", kid.err);
    assert_child_exit(&kid, CL_EXIT_HANG);
    assert_contains(kid.err, "watchdog: no progress for ");
    assert_contains(kid.err, "(5 operations done)\n");
    assert_contains(kid.err, "  T1: 5 of 10 operations done, waits for its child\n");
    assert_gone(child_pid(kid.err));
}

/* A child the variant forgot is killed at the end, and named on stderr. */
static void test_child_left_behind_is_killed(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "forgets-child", "--quiet"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.err, "unit: forgets-child left 1 child process running: killed\n");
    assert_gone(child_pid(kid.err));
}

/* A child started by vfork + exec and registered with cl_child_adopt: the same. */
static void test_adopted_child_is_killed(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "adopts-child", "--quiet"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.err, "unit: adopts-child left 1 child process running: killed\n");
    assert_gone(child_pid(kid.err));
}

/* A refused resource: one line naming the call and the limit, exit 4, and the
 * child already made is killed. */
static void test_refused_resource_exits_4(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "refused"), &kid);
    assert_child_status(&kid, CL_EXIT_REFUSED);
    assert_contains(kid.err, "unit: fork: Resource temporarily unavailable; forked 1 of 2 "
                             "processes\n");
    assert_gone(child_pid(kid.err));

    run_main(&base, ARGS("--variant", "refused", "--json"), &kid);
    assert_child_status(&kid, CL_EXIT_REFUSED);
    assert_string_equal(kid.out, "{\"chapter\":\"unit\",\"variant\":\"refused\","
                                 "\"refused\":\"fork\",\"exit\":4}\n");
}

/* Threads the system refuses (an address space too small for their stacks):
 * the ones started are joined, one line, exit 4. Sanitizers reserve terabytes
 * of address space, and valgrind its own, so this runs in the plain build only. */
static void test_refused_threads_exit_4(void **state)
{
    (void)state;
    const char *sanitize = getenv("CONCLAB_SANITIZE");
    if ((sanitize != NULL && strcmp(sanitize, "none") != 0) || RUNNING_ON_VALGRIND) {
        skip();
        return;
    }
    struct job j = {.ch = &base,
                    .args = ARGS("--variant", "count", "--threads", "4000", "--iters", "1"),
                    .address_space = 512ull << 20};
    run_child(main_child, &j, LIMIT_S, &kid);
    print_message("%s", kid.err);
    assert_child_status(&kid, CL_EXIT_REFUSED);
    assert_int_equal(count_lines(kid.err), 1);
    assert_contains(kid.err, "unit: pthread_create: ");
    assert_contains(kid.err, " of 4,000 threads (limits: ");
    assert_contains(kid.err, "RLIMIT_AS 512 MiB)\n");
}

/* One role stands still while another goes on: starvation, exit 3, named. */
static void test_starving_role(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "starving", "--timeout", "0.3"), &kid);
    print_message("%s", kid.err);
    assert_child_exit(&kid, CL_EXIT_HANG);
    assert_contains(kid.err, "watchdog: writers: no progress for 0.");
    assert_contains(kid.err, "; readers completed ");
    assert_contains(kid.err, " reads\n");
    assert_contains(kid.err, "  T1 writers: 1 of 1,000,000 operations done, waits for the "
                             "readers to leave\n");
    assert_contains(kid.err, "  T2 readers: ");
}

/* A role that has finished is not starving, however long the others go on. */
static void test_finished_role_is_not_starving(void **state)
{
    (void)state;
    run_main(&base, ARGS("--variant", "finishing", "--timeout", "0.2", "--quiet"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
}

/* lib blocks the chapter's signals in every thread before it starts any: a
 * process-directed SIGUSR1 waits in the signalfd instead of killing. */
static void test_blocked_signal_reaches_signalfd(void **state)
{
    (void)state;
    struct cl_chapter ch = base;
    ch.blocked_signals = blocked;
    run_main(&ch, ARGS("--variant", "signals", "--quiet"), &kid);
    assert_child_exit(&kid, CL_EXIT_OK);
    assert_contains(kid.out, "signal 10 read from the signalfd");
}

/* Ctrl-C at the start of each phase (the documented test hook): the partial
 * result, exit 130, and the phase named. */
static void test_sigint_in_every_phase(void **state)
{
    (void)state;
    static const char *const phases[] = {"setup", "run", "check", "report", "teardown"};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        struct job j = {.ch = &base, .args = ARGS("--variant", "count"), .sigint_at = phases[i]};
        run_child(main_child, &j, LIMIT_S, &kid);
        print_message("%s: %s", phases[i], kid.out);
        assert_child_status(&kid, CL_EXIT_INTERRUPTED);
        assert_contains(kid.out, "count: interrupted after ");
        char want[64];
        snprintf(want, sizeof want, strcmp(phases[i], "run") == 0 ? "operations\n" : "(in %s)\n",
                 phases[i]);
        assert_contains(kid.out, want);

        j.args = ARGS("--variant", "count", "--json");
        run_child(main_child, &j, LIMIT_S, &kid);
        assert_child_status(&kid, CL_EXIT_INTERRUPTED);
        snprintf(want, sizeof want, "\"phase\":\"%s\"", phases[i]);
        assert_contains(kid.out, want);
    }
    /* the .run shape too */
    struct job j = {.ch = &base, .args = ARGS("--variant", "run-twice"), .sigint_at = "run"};
    run_child(main_child, &j, LIMIT_S, &kid);
    assert_child_status(&kid, CL_EXIT_INTERRUPTED);
}

/* A check that takes seconds is interrupted within a watchdog poll, not at its end. */
static void test_sigint_during_long_check(void **state)
{
    (void)state;
    struct cl_chapter ch = base;
    ch.check = slow_check;
    struct job j = {.ch = &ch, .args = ARGS("--variant", "count"), .sigint_at = "check"};
    run_child(main_child, &j, LIMIT_S, &kid);
    print_message("interrupted after %.2f s\n", kid.elapsed_s);
    assert_child_status(&kid, CL_EXIT_INTERRUPTED);
    assert_true(kid.elapsed_s < 3.0); /* the check alone takes 5 s */
}

/* More metrics than a result holds stops the program with a message. */
static void test_too_many_metrics_stops(void **state)
{
    (void)state;
    struct cl_chapter ch = base;
    ch.check = too_many_metrics;
    run_main(&ch, ARGS("--variant", "count"), &kid);
    assert_false(kid.timed_out);
    assert_true(WIFSIGNALED(kid.status) && WTERMSIG(kid.status) == SIGABRT);
    assert_contains(kid.err, "cl_metric: 'm' is one metric more than the 16 a result holds\n");
}

/* A variant must have exactly one shape. */
static void test_declaration_checked(void **state)
{
    (void)state;
    static const struct cl_variant both[] = {
        {"both", CL_CORRECT, "worker and run", .worker = count_worker, .run = run_twice},
    };
    struct cl_chapter ch = base;
    ch.variants = both;
    ch.nvariants = 1;
    run_main(&ch, ARGS("--list"), &kid);
    assert_true(WIFSIGNALED(kid.status) && WTERMSIG(kid.status) == SIGABRT);
    assert_contains(kid.err, "unit: variant both needs exactly one of .worker and .run\n");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_shape),
        cmocka_unit_test(test_run_shape_refuses_threads),
        cmocka_unit_test(test_child_stops_making_progress),
        cmocka_unit_test(test_child_left_behind_is_killed),
        cmocka_unit_test(test_adopted_child_is_killed),
        cmocka_unit_test(test_refused_resource_exits_4),
        cmocka_unit_test(test_refused_threads_exit_4),
        cmocka_unit_test(test_starving_role),
        cmocka_unit_test(test_finished_role_is_not_starving),
        cmocka_unit_test(test_blocked_signal_reaches_signalfd),
        cmocka_unit_test(test_sigint_in_every_phase),
        cmocka_unit_test(test_sigint_during_long_check),
        cmocka_unit_test(test_too_many_metrics_stops),
        cmocka_unit_test(test_declaration_checked),
    };
    return UNIT_MAIN("shapes", tests);
}
