/* cl_sched: what one sample says, the labels of a series (runnable counted back
 * from the growth of the run-queue time), the spans, and real readings of
 * threads held in a known state: blocked on a mutex, in a nanosleep, on a CPU,
 * and gone. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conclab.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h> /* RUNNING_ON_VALGRIND: a macro, no library */
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define MS 1000000ull

static struct cl_sched_sample sample(uint64_t t_ms, char state, const char *wchan, long call,
                                     uint64_t queued_ms)
{
    struct cl_sched_sample s = {
        .t_ns = t_ms * MS, .state = state, .syscall = call, .queued_ns = queued_ms * MS};
    snprintf(s.wchan, sizeof s.wchan, "%s", wchan);
    return s;
}

static void test_kind_of_one_sample(void **state)
{
    (void)state;
    struct cl_sched_sample s = sample(0, 'R', "0", -1, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_RUNNING);
    s = sample(0, 'S', "futex_do_wait", 202, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_BLOCKED);
    s = sample(0, 'S', "futex_wait_queue_me", -1, 0); /* the name on kernels before 6.0 */
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_BLOCKED);
    s = sample(0, 'S', "hrtimer_nanosleep", -1, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_SLEEPING);
    s = sample(0, 'S', "pipe_read", 0, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_BLOCKED);
    s = sample(0, 'D', "io_schedule", -1, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_BLOCKED);
    /* wchan hidden: the system call decides */
    s = sample(0, 'S', "0", SYS_clock_nanosleep, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_SLEEPING);
    s = sample(0, 'S', "", SYS_futex, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_BLOCKED);
    s = sample(0, 0, "", -1, 0);
    assert_int_equal(cl_sched_kind(&s), CL_SPAN_EXITED);
}

/* Five R samples 1 ms apart, the fifth finding 2 ms more of run-queue wait: the
 * two intervals before it were runnable, the first two stay running. */
static void test_label_counts_back_the_wait(void **state)
{
    (void)state;
    struct cl_sched_sample s[] = {
        sample(0, 'R', "0", -1, 10), sample(1, 'R', "0", -1, 10), sample(2, 'R', "0", -1, 10),
        sample(3, 'R', "0", -1, 10), sample(4, 'R', "0", -1, 12), sample(5, 'S', "x", 0, 12),
        sample(6, 'R', "0", -1, 13), sample(7, 0, "", -1, 13),
    };
    enum cl_span_kind k[8];
    cl_sched_label(s, 8, k);
    enum cl_span_kind want[8] = {CL_SPAN_RUNNING,  CL_SPAN_RUNNING, CL_SPAN_RUNNABLE,
                                 CL_SPAN_RUNNABLE, CL_SPAN_RUNNING, CL_SPAN_BLOCKED,
                                 CL_SPAN_RUNNING,  CL_SPAN_EXITED};
    /* the wait of 1 ms after the S sample stops at the S interval: woken, then
     * queued, it was runnable in the interval of sample 5 only in part, and the
     * label there stays blocked */
    for (int i = 0; i < 8; i++)
        assert_int_equal(k[i], want[i]);
}

/* A wait shorter than half an interval labels nothing. */
static void test_label_ignores_short_waits(void **state)
{
    (void)state;
    struct cl_sched_sample s[] = {sample(0, 'R', "0", -1, 0), sample(2, 'R', "0", -1, 0)};
    s[1].queued_ns = MS / 2; /* 0.5 ms of a 2 ms interval */
    enum cl_span_kind k[2];
    cl_sched_label(s, 2, k);
    assert_int_equal(k[0], CL_SPAN_RUNNING);
}

static void test_spans_merge_neighbours(void **state)
{
    (void)state;
    struct cl_sched_sample s[] = {sample(1, 'R', "0", -1, 0), sample(2, 'R', "0", -1, 0),
                                  sample(3, 'S', "futex_do_wait", -1, 0),
                                  sample(4, 'S', "futex_do_wait", -1, 0), sample(5, 0, "", -1, 0)};
    enum cl_span_kind k[5];
    cl_sched_label(s, 5, k);
    struct cl_trace t;
    cl_trace_init(&t, 1, 0);
    cl_sched_add_spans(&t.bufs[0], s, k, 5, 9 * MS);
    assert_int_equal(t.bufs[0].len, 3);
    assert_int_equal(t.bufs[0].spans[0].kind, CL_SPAN_RUNNING);
    assert_int_equal(t.bufs[0].spans[0].start_ns, 1 * MS);
    assert_int_equal(t.bufs[0].spans[0].end_ns, 3 * MS);
    assert_int_equal(t.bufs[0].spans[1].kind, CL_SPAN_BLOCKED);
    assert_int_equal(t.bufs[0].spans[1].end_ns, 5 * MS);
    assert_int_equal(t.bufs[0].spans[2].kind, CL_SPAN_EXITED);
    assert_int_equal(t.bufs[0].spans[2].end_ns, 9 * MS);
    cl_trace_free(&t);
}

/* ---- real threads ---- */

enum { HOLD_MUTEX, SLEEP, SPIN };

static struct {
    pthread_mutex_t mu;
    _Atomic bool stop;
    _Atomic pid_t tid;
} live = {PTHREAD_MUTEX_INITIALIZER, false, 0};

static void *subject(void *arg)
{
    int what = *(const int *)arg;
    atomic_store(&live.tid, gettid());
    if (what == HOLD_MUTEX) {
        CL_PT(pthread_mutex_lock(&live.mu));
        CL_PT(pthread_mutex_unlock(&live.mu));
    }
    while (what != HOLD_MUTEX && !atomic_load(&live.stop))
        if (what == SLEEP)
            cl_sleep_ns(50 * MS);
    return NULL;
}

/* Read the subject until one sample has the kind wanted (a few seconds at
 * most: it reaches that state at once, unless the machine is busy). */
static bool seen(const struct cl_sched_probe *p, enum cl_span_kind want)
{
    for (int i = 0; i < 5000; i++) {
        struct cl_sched_sample s;
        cl_sched_read(p, &s);
        if (cl_sched_kind(&s) == want)
            return true;
        cl_sleep_ns(MS);
    }
    return false;
}

static void observe(int what, enum cl_span_kind want)
{
    static int kind; /* the subject's argument; one subject at a time */
    pthread_t t;
    kind = what;
    atomic_store(&live.stop, false);
    atomic_store(&live.tid, 0);
    if (what == HOLD_MUTEX)
        CL_PT(pthread_mutex_lock(&live.mu));
    CL_PT(pthread_create(&t, NULL, subject, &kind));
    while (atomic_load(&live.tid) == 0)
        cl_sleep_ns(MS);
    struct cl_sched_probe p;
    assert_int_equal(cl_sched_open(&p, atomic_load(&live.tid)), 0);
    assert_true(seen(&p, want));
    if (what == HOLD_MUTEX)
        CL_PT(pthread_mutex_unlock(&live.mu));
    atomic_store(&live.stop, true);
    CL_PT(pthread_join(t, NULL));
    /* joined, the thread is gone (or going: the kernel finishes its exit after
     * it wakes the joiner), and its open files say so */
    assert_true(seen(&p, CL_SPAN_EXITED));
    struct cl_sched_sample s;
    assert_false(cl_sched_read(&p, &s));
    assert_int_equal(s.state, 0);
    cl_sched_close(&p);
}

static void test_live_blocked_on_a_mutex(void **state)
{
    (void)state;
    observe(HOLD_MUTEX, CL_SPAN_BLOCKED);
}

static void test_live_sleeping(void **state)
{
    (void)state;
    observe(SLEEP, CL_SPAN_SLEEPING);
}

/* Under valgrind one thread runs at a time, and a reader never finds the
 * spinning thread on a CPU. */
static void test_live_running(void **state)
{
    (void)state;
    if (RUNNING_ON_VALGRIND)
        skip();
    observe(SPIN, CL_SPAN_RUNNING);
}

static void test_open_missing_thread(void **state)
{
    (void)state;
    struct cl_sched_probe p;
    assert_int_equal(cl_sched_open(&p, 0x7ffffff0), ENOENT);
    for (int i = 0; i < CL_SCHED_FILES; i++)
        assert_int_equal(p.fd[i], -1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_of_one_sample),
        cmocka_unit_test(test_label_counts_back_the_wait),
        cmocka_unit_test(test_label_ignores_short_waits),
        cmocka_unit_test(test_spans_merge_neighbours),
        cmocka_unit_test(test_live_blocked_on_a_mutex),
        cmocka_unit_test(test_live_sleeping),
        cmocka_unit_test(test_live_running),
        cmocka_unit_test(test_open_missing_thread),
    };
    return UNIT_MAIN("sched", tests);
}
