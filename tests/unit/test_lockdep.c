/* cl_lockdep: consistent orders stay quiet; an inversion, direct or through a
 * chain, is reported once, in one thread and with no deadlock; a class taken
 * twice is a self-deadlock; release forgets a class. */
#include "unit.h"

#include <fcntl.h>
#include <unistd.h>

#include "conclab.h"

static int fds[2];
static int a, b, c;

static int setup(void **state)
{
    (void)state;
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    cl_lockdep_reset(fds[1]);
    a = cl_lockdep_class("A");
    b = cl_lockdep_class("B");
    c = cl_lockdep_class("C");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(fds[0]);
    close(fds[1]);
    return 0;
}

static const char *reported(void)
{
    static char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void nest(int outer, int inner)
{
    cl_lockdep_acquire(outer);
    cl_lockdep_acquire(inner);
    cl_lockdep_release(inner);
    cl_lockdep_release(outer);
}

static void test_classes_numbered(void **state)
{
    (void)state;
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(c, 2);
}

static void test_consistent_order_is_quiet(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        nest(a, b);
    assert_true(cl_lockdep_edge(a, b));
    assert_false(cl_lockdep_edge(b, a));
    assert_int_equal(cl_lockdep_reports(), 0);
    assert_string_equal(reported(), "");
}

static void test_inversion_reported_once(void **state)
{
    (void)state;
    cl_thread_set_id(0);
    nest(a, b); /* T1: A then B */
    cl_thread_set_id(1);
    nest(b, a); /* T2, later: B then A. Nothing overlaps, no deadlock */
    assert_int_equal(cl_lockdep_reports(), 1);
    const char *text = reported();
    assert_contains(text, "lockdep: possible deadlock: T2 takes A while holding B");
    assert_contains(text, "but B was taken while holding A before, by T1");
    assert_contains(text, "lock order A -> B inverted");
    assert_contains(cl_lockdep_first_report(), "lock order A -> B inverted");
    nest(b, a); /* known now: not reported again */
    assert_int_equal(cl_lockdep_reports(), 1);
    cl_thread_set_id(-1);
}

static void test_chain_inversion(void **state)
{
    (void)state;
    nest(a, b);
    nest(b, c);
    assert_int_equal(cl_lockdep_reports(), 0);
    nest(c, a); /* A -> B -> C, then C -> A: a cycle of three */
    assert_int_equal(cl_lockdep_reports(), 1);
    const char *text = reported();
    assert_contains(text, "takes A while holding C, but C was taken after A before");
    assert_contains(text, "lock order A -> ... -> C inverted");
}

static void test_self_deadlock(void **state)
{
    (void)state;
    cl_lockdep_acquire(a);
    cl_lockdep_acquire(a);
    assert_int_equal(cl_lockdep_reports(), 1);
    assert_contains(reported(), "takes A while already holding it");
    cl_lockdep_release(a);
    cl_lockdep_release(a);
}

static void test_release_forgets(void **state)
{
    (void)state;
    cl_lockdep_acquire(a);
    cl_lockdep_release(a);
    cl_lockdep_acquire(b); /* A is no longer held: no edge A -> B */
    cl_lockdep_release(b);
    assert_false(cl_lockdep_edge(a, b));
}

static void test_with_cl_mutex(void **state)
{
    (void)state;
    struct cl_mutex ma, mb, mc;
    cl_mutex_init(&ma, "A", PTHREAD_MUTEX_DEFAULT);
    cl_mutex_init(&mb, "B", PTHREAD_MUTEX_DEFAULT);
    cl_mutex_init(&mc, "C", PTHREAD_MUTEX_DEFAULT);
    cl_mutex_set_lockdep(&ma, a);
    cl_mutex_set_lockdep(&mb, b);
    cl_mutex_set_lockdep(&mc, c);
    assert_int_equal(cl_mutex_lock(&ma), 0);
    assert_int_equal(cl_mutex_lock(&mb), 0);
    cl_mutex_unlock(&mb);
    cl_mutex_unlock(&ma);
    assert_true(cl_lockdep_edge(a, b));
    assert_int_equal(cl_mutex_lock(&mb), 0);
    assert_int_equal(cl_mutex_trylock(&ma), 0); /* a try cannot deadlock: no edge B -> A */
    assert_false(cl_lockdep_edge(b, a));
    assert_int_equal(cl_mutex_lock(&mc), 0); /* but A is held: A -> C and B -> C */
    assert_true(cl_lockdep_edge(a, c));
    assert_true(cl_lockdep_edge(b, c));
    cl_mutex_unlock(&mc);
    cl_mutex_unlock(&ma);
    cl_mutex_unlock(&mb);
    assert_int_equal(cl_lockdep_reports(), 0);
    nest(b, a); /* a blocking B -> A is reported (the classes alone: TSan would report
                   real mutexes taken this way, rightly) */
    assert_int_equal(cl_lockdep_reports(), 1);
    cl_mutex_destroy(&ma);
    cl_mutex_destroy(&mb);
    cl_mutex_destroy(&mc);
}

static void test_too_many_classes(void **state)
{
    (void)state;
    for (int i = 3; i < CL_LOCKDEP_MAX_CLASSES; i++)
        assert_int_equal(cl_lockdep_class("x"), i);
    assert_int_equal(cl_lockdep_class("one too many"), -1);
}

/* Holding more classes than the checker tracks: the first one past the limit is
 * reported, and each is counted, never silently ignored. */
static void test_too_many_held(void **state)
{
    (void)state;
    enum { N = CL_LOCKDEP_MAX_HELD + 3 };
    static const char *const names[N] = {"L0",  "L1",  "L2",  "L3",  "L4",  "L5",  "L6",
                                         "L7",  "L8",  "L9",  "L10", "L11", "L12", "L13",
                                         "L14", "L15", "L16", "L17", "L18"};
    int cls[N];
    for (int i = 0; i < N; i++)
        cls[i] = cl_lockdep_class(names[i]);
    for (int i = 0; i < N; i++)
        cl_lockdep_acquire(cls[i]);
    for (int i = N - 1; i >= 0; i--)
        cl_lockdep_release(cls[i]);
    assert_int_equal(cl_lockdep_untracked(), 3);
    assert_int_equal(cl_lockdep_reports(), 0); /* not an inversion */
    assert_string_equal(reported(), "lockdep: T0 holds more than 16 classes at once: L16 and "
                                    "deeper locks are not checked\n");
    /* the thread's held list is sound again: a consistent nest stays quiet */
    nest(a, b);
    assert_int_equal(cl_lockdep_reports(), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classes_numbered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consistent_order_is_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inversion_reported_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_inversion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_deadlock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_forgets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_with_cl_mutex, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_held, setup, teardown),
    };
    return UNIT_MAIN("lockdep", tests);
}
