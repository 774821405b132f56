/* cl_watchdog: fires on a stall and not on steady progress, ends a process whose
 * threads are all blocked, answers the interrupt hook, and stops promptly.
 * Every wait is bounded; the timing assertions are lower bounds, or upper
 * bounds with a wide margin. The forked test comes first, before this process
 * has started any thread (ThreadSanitizer and fork do not mix). */
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

/* What the watchdog's callbacks saw. */
struct probe {
    _Atomic uint64_t progress;
    _Atomic int fired, reports, asked, interrupts;
    _Atomic bool interrupt_now;
    _Atomic uint64_t fired_at_ns;
};

static struct probe *as_probe(void *arg)
{
    return arg;
}

static uint64_t probe_progress(void *arg)
{
    return atomic_load(&as_probe(arg)->progress);
}

static void probe_report(int fd, void *arg)
{
    atomic_fetch_add(&as_probe(arg)->reports, 1);
    dprintf(fd, "probe report\n");
}

static void probe_fire(void *arg)
{
    struct probe *p = arg;
    atomic_store(&p->fired_at_ns, cl_now_ns());
    atomic_fetch_add(&p->fired, 1);
}

static bool probe_interrupted(void *arg)
{
    struct probe *p = arg;
    atomic_fetch_add(&p->asked, 1);
    return atomic_load(&p->interrupt_now);
}

static void probe_on_interrupt(void *arg)
{
    atomic_fetch_add(&as_probe(arg)->interrupts, 1);
}

/* Poll until *counter reaches at least `want`, for at most limit_s. */
static bool wait_for(_Atomic int *counter, int want, double limit_s)
{
    double end = now_s() + limit_s;
    while (atomic_load(counter) < want) {
        if (now_s() > end)
            return false;
        cl_sleep_ns(5 * MS);
    }
    return true;
}

/* A pipe for the watchdog's report: read it after the watchdog is stopped. */
static void report_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

static void read_pipe(int fds[2], char *buf, size_t len)
{
    ssize_t n = read(fds[0], buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    close(fds[1]);
}

/* (c) Every thread is blocked for good on a mutex the main thread holds, and the
 * main thread itself waits in pthread_join: the default action (fire == NULL)
 * reports and ends the process with status 3. In a child, because the blocked
 * threads can never be joined. */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;

static void *block_forever(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held); /* never returns: the main thread holds it */
    pthread_mutex_unlock(&held);
    return NULL;
}

static uint64_t no_progress(void *arg)
{
    (void)arg;
    return 0;
}

static void report_blocked(int fd, void *arg)
{
    dprintf(fd, "  %s\n", (const char *)arg);
}

static int all_blocked_child(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, block_forever, NULL) != 0)
            return 100;
    struct cl_watchdog wd;
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = 0.2,
                                                     .progress = no_progress,
                                                     .report = report_blocked,
                                                     .arg = (void *)"every worker blocked",
                                                     .fd = STDERR_FILENO});
    pthread_join(t[0], NULL); /* blocks until the watchdog ends the process */
    return 101;
}

static void test_default_action_exits_3(void **state)
{
    (void)state;
    struct child c;
    run_child(all_blocked_child, NULL, 10.0, &c);
    assert_child_exit(&c, CL_EXIT_HANG);
    assert_contains(c.err, "watchdog: no progress for");
    assert_contains(c.err, "(0 operations done)");
    assert_contains(c.err, "every worker blocked");
    assert_true(c.elapsed_s >= 0.2);
}

/* (a) Progress that never changes fires once, after at least the timeout,
 * having written the message and called report. */
static void test_fires_on_no_progress(void **state)
{
    (void)state;
    int fds[2];
    report_pipe(fds);
    struct probe p = {0};
    struct cl_watchdog wd;
    uint64_t t0 = cl_now_ns();
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = 0.2,
                                                     .progress = probe_progress,
                                                     .report = probe_report,
                                                     .fire = probe_fire,
                                                     .arg = &p,
                                                     .fd = fds[1]});
    bool fired = wait_for(&p.fired, 1, 5.0);
    assert_true(cl_watchdog_stop(&wd)); /* joined either way, so no thread is left */
    assert_true(fired);
    assert_int_equal(atomic_load(&p.fired), 1);
    assert_int_equal(atomic_load(&p.reports), 1);
    assert_true(atomic_load(&p.fired_at_ns) - t0 >= 200 * MS);
    char out[512];
    read_pipe(fds, out, sizeof out);
    assert_contains(out, "watchdog: no progress for 0.");
    assert_contains(out, "(0 operations done)\nprobe report\n");
}

/* Progress that moves for a while, then stops: the clock restarts at the last
 * change, and the message gives the count reached. report may be NULL. */
static void *tick_ten_times(void *arg)
{
    struct probe *p = arg;
    for (int i = 0; i < 10; i++) {
        cl_sleep_ns(10 * MS);
        atomic_fetch_add(&p->progress, 1);
    }
    return (void *)(uintptr_t)cl_now_ns(); /* NOLINT(performance-no-int-to-ptr) */
}

static void test_fires_after_progress_stops(void **state)
{
    (void)state;
    int fds[2];
    report_pipe(fds);
    struct probe p = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, tick_ten_times, &p), 0);
    struct cl_watchdog wd;
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = 0.2,
                                                     .progress = probe_progress,
                                                     .fire = probe_fire,
                                                     .arg = &p,
                                                     .fd = fds[1]});
    void *last_tick;
    pthread_join(t, &last_tick);
    bool fired = wait_for(&p.fired, 1, 5.0);
    assert_true(cl_watchdog_stop(&wd));
    assert_true(fired);
    assert_true(atomic_load(&p.fired_at_ns) - (uint64_t)(uintptr_t)last_tick >= 200 * MS);
    char out[512];
    read_pipe(fds, out, sizeof out);
    assert_contains(out, "(10 operations done)\n");
}

/* (b) Progress every 10 ms for a second never looks like a 0.3 s stall. */
struct ticker {
    struct probe *p;
    _Atomic bool stop;
};

static void *tick_until_stopped(void *arg)
{
    struct ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        atomic_fetch_add(&t->p->progress, 1);
        cl_sleep_ns(10 * MS);
    }
    return NULL;
}

static void test_steady_progress_does_not_fire(void **state)
{
    (void)state;
    int fds[2];
    report_pipe(fds);
    struct probe p = {0};
    struct ticker tk = {.p = &p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, tick_until_stopped, &tk), 0);
    struct cl_watchdog wd;
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = 0.3,
                                                     .progress = probe_progress,
                                                     .report = probe_report,
                                                     .fire = probe_fire,
                                                     .arg = &p,
                                                     .fd = fds[1]});
    cl_sleep_ns(1000 * MS);
    bool fired = cl_watchdog_stop(&wd); /* before the ticker stops */
    atomic_store(&tk.stop, true);
    pthread_join(t, NULL);
    assert_false(fired);
    assert_int_equal(atomic_load(&p.fired), 0);
    assert_int_equal(atomic_load(&p.reports), 0);
    assert_true(atomic_load(&p.progress) > 10);
    char out[512];
    read_pipe(fds, out, sizeof out);
    assert_string_equal(out, "");
}

/* (d) interrupted() is polled with the cfg's arg; on_interrupt is called once it
 * says yes. A long timeout keeps the hang detection out of it. */
static void test_interrupt_hooks(void **state)
{
    (void)state;
    struct probe p = {0};
    struct cl_watchdog wd;
    cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = 60,
                                                     .progress = probe_progress,
                                                     .report = probe_report,
                                                     .fire = probe_fire,
                                                     .interrupted = probe_interrupted,
                                                     .on_interrupt = probe_on_interrupt,
                                                     .arg = &p,
                                                     .fd = STDERR_FILENO});
    bool polled = wait_for(&p.asked, 2, 5.0);
    int early = atomic_load(&p.interrupts);
    atomic_store(&p.interrupt_now, true);
    bool answered = wait_for(&p.interrupts, 1, 5.0);
    bool fired = cl_watchdog_stop(&wd);
    assert_true(polled);
    assert_int_equal(early, 0); /* not while interrupted() said no */
    assert_true(answered);
    assert_false(fired);
    assert_int_equal(atomic_load(&p.fired), 0);
}

/* (e) stop wakes the watchdog instead of waiting out its poll period, and
 * reports that it did not fire; again and again. */
static void test_stop_is_prompt(void **state)
{
    (void)state;
    struct probe p = {0};
    for (int round = 0; round < 20; round++) {
        struct cl_watchdog wd;
        cl_watchdog_start(&wd, &(struct cl_watchdog_cfg){.timeout_s = 60,
                                                         .progress = probe_progress,
                                                         .fire = probe_fire,
                                                         .arg = &p,
                                                         .fd = STDERR_FILENO});
        if (round % 2 == 1)
            cl_sleep_ns(2 * MS); /* and sometimes once it is waiting */
        uint64_t t0 = cl_now_ns();
        bool fired = cl_watchdog_stop(&wd);
        uint64_t took = cl_now_ns() - t0;
        assert_false(fired);
        assert_true(took < 1000 * MS);
    }
    assert_int_equal(atomic_load(&p.fired), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_action_exits_3), /* forks: first */
        cmocka_unit_test(test_fires_on_no_progress),
        cmocka_unit_test(test_fires_after_progress_stops),
        cmocka_unit_test(test_steady_progress_does_not_fire),
        cmocka_unit_test(test_interrupt_hooks),
        cmocka_unit_test(test_stop_is_prompt),
    };
    return UNIT_MAIN("watchdog", tests);
}
