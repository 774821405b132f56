/* cl_procpool: workers spawned from this test program in its worker mode, results
 * placed by index whatever the chunking, per-item errors, a hung task cancelled
 * for real (killed, reaped, replaced), a worker that dies on its own, the
 * completion fd, both shutdowns, and no child left behind. */
#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "conclab.h"

#define MS (1000 * 1000ull)

/* The task table both sides compile in: tasks are named by index. */
enum { SQUARE_PLUS, FAIL_ODD, HANG, DIE, NTASKS };

static int square_plus(uint64_t item, uint64_t arg, uint64_t *result)
{
    *result = item * item + arg;
    return 0;
}

static int fail_odd(uint64_t item, uint64_t arg, uint64_t *result)
{
    (void)arg;
    *result = item;
    return item % 2 ? EDOM : 0;
}

static _Noreturn int hang(uint64_t item, uint64_t arg, uint64_t *result)
{
    (void)item;
    (void)arg;
    (void)result;
    for (;;)
        pause();
}

static int die(uint64_t item, uint64_t arg, uint64_t *result)
{
    (void)arg;
    (void)result;
    if (item == 3)
        _exit(9); /* a crash in the middle of a chunk */
    return 0;
}

static cl_proc_fn *const tasks[NTASKS] = {square_plus, fail_odd, hang, die};

static struct cl_procpool *pool_of(int workers, bool completions)
{
    struct cl_procpool *pp = cl_procpool_new(&(struct cl_procpool_opts){workers, completions});
    assert_non_null(pp);
    return pp;
}

/* Wait until the pool has spawned `spawned` workers in all and has `live` of
 * them (a replacement is spawned once its predecessor is reaped). */
static void wait_workers(struct cl_procpool *pp, uint64_t spawned, int live)
{
    struct cl_procpool_stats s = cl_procpool_stats(pp);
    for (int i = 0; i < 5000 && (s.spawned != spawned || s.live != live); i++) {
        cl_sleep_ns(1 * MS);
        s = cl_procpool_stats(pp);
    }
    assert_int_equal(s.spawned, spawned);
    assert_int_equal(s.live, live);
}

static void test_new_refuses_bad_sizes(void **state)
{
    (void)state;
    assert_null(cl_procpool_new(&(struct cl_procpool_opts){.workers = 0}));
    assert_int_equal(errno, EINVAL);
    assert_null(
        cl_procpool_new(&(struct cl_procpool_opts){.workers = CL_PROCPOOL_MAX_WORKERS + 1}));
    assert_int_equal(errno, EINVAL);
}

static void test_results_by_index_at_every_chunk_size(void **state)
{
    (void)state;
    enum { N = 1000 };
    static uint64_t results[N];
    static int errors[N];
    struct cl_procpool *pp = pool_of(3, false);
    assert_int_equal(cl_procpool_stats(pp).live, 3);
    const size_t chunks[] = {1, 7, 100, N, (size_t)N * 5};
    uint64_t requests = 0;
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        for (int i = 0; i < N; i++) {
            results[i] = UINT64_MAX;
            errors[i] = -1;
        }
        struct cl_procpool_batch *b =
            cl_procpool_map(pp, SQUARE_PLUS, k, N, chunks[k], results, errors);
        assert_non_null(b);
        assert_int_equal(cl_procpool_wait(b, 30000 * MS), CL_POOL_OK);
        for (uint64_t i = 0; i < N; i++) {
            assert_int_equal(results[i], i * i + k);
            assert_int_equal(errors[i], 0);
        }
        cl_procpool_release(b);
        requests += (N + chunks[k] - 1) / chunks[k];
        assert_int_equal(cl_procpool_stats(pp).requests, requests);
    }
    cl_procpool_shutdown(pp, false);
    assert_int_equal(cl_child_count(), 0);
}

static void test_per_item_errors_and_unknown_tasks(void **state)
{
    (void)state;
    enum { N = 10 };
    uint64_t results[N];
    int errors[N];
    struct cl_procpool *pp = pool_of(2, false);
    struct cl_procpool_batch *b = cl_procpool_map(pp, FAIL_ODD, 0, N, 3, results, errors);
    assert_int_equal(cl_procpool_wait(b, CL_FOREVER), CL_POOL_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(errors[i], i % 2 ? EDOM : 0);
    cl_procpool_release(b);
    b = cl_procpool_map(pp, NTASKS + 5, 0, N, 4, results, errors);
    assert_int_equal(cl_procpool_wait(b, CL_FOREVER), CL_POOL_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(errors[i], ENOSYS);
    cl_procpool_release(b);
    b = cl_procpool_map(pp, SQUARE_PLUS, 0, 0, 4, results, errors); /* nothing to do */
    assert_int_equal(cl_procpool_wait(b, 0), CL_POOL_OK);
    cl_procpool_release(b);
    assert_null(cl_procpool_map(pp, SQUARE_PLUS, 0, N, 0, results, errors));
    assert_int_equal(errno, EINVAL);
    cl_procpool_shutdown(pp, false);
}

static void test_cancel_kills_a_hung_task_and_replaces_its_worker(void **state)
{
    (void)state;
    struct cl_procpool *pp = pool_of(2, false);
    uint64_t hung_result[1] = {12345};
    int hung_err[1] = {-7};
    uint64_t t0 = cl_now_ns();
    struct cl_procpool_batch *b = cl_procpool_map(pp, HANG, 0, 1, 1, hung_result, hung_err);
    assert_int_equal(cl_procpool_wait(b, 80 * MS), CL_POOL_TIMEOUT);
    assert_true(cl_now_ns() - t0 >= 80 * MS);
    for (int i = 0; i < 5000 && cl_procpool_stats(pp).busy == 0; i++)
        cl_sleep_ns(1 * MS); /* sent to a worker, however slow the machine */
    assert_int_equal(cl_procpool_stats(pp).busy, 1);
    assert_true(cl_procpool_cancel(b));
    assert_true(cl_procpool_cancel(b)); /* again: already cancelled */
    assert_int_equal(cl_procpool_wait(b, 0), CL_POOL_CANCELLED);
    cl_procpool_release(b);
    wait_workers(pp, 3, 2); /* two, and the replacement */
    struct cl_procpool_stats s = cl_procpool_stats(pp);
    assert_int_equal(s.killed, 1);
    assert_int_equal(s.died, 0);
    assert_int_equal(hung_result[0], 12345); /* never written after the cancel */
    assert_int_equal(hung_err[0], -7);
    enum { N = 50 }; /* the pool works on at full strength */
    uint64_t results[N];
    int errors[N];
    b = cl_procpool_map(pp, SQUARE_PLUS, 1, N, 5, results, errors);
    assert_int_equal(cl_procpool_wait(b, 30000 * MS), CL_POOL_OK);
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(results[i], i * i + 1);
    assert_false(cl_procpool_cancel(b)); /* finished: nothing to cancel */
    cl_procpool_release(b);
    cl_procpool_shutdown(pp, false);
    assert_int_equal(cl_child_count(), 0);
}

static void test_cancel_drops_chunks_not_started(void **state)
{
    (void)state;
    enum { N = 6 };
    uint64_t results[N];
    int errors[N];
    struct cl_procpool *pp = pool_of(1, false);
    /* one worker, six one-item chunks, the first hangs: five never start */
    struct cl_procpool_batch *b = cl_procpool_map(pp, HANG, 0, N, 1, results, errors);
    for (int i = 0; i < 5000 && cl_procpool_stats(pp).busy == 0; i++)
        cl_sleep_ns(1 * MS);
    assert_true(cl_procpool_cancel(b));
    cl_procpool_release(b);
    wait_workers(pp, 2, 1);
    assert_int_equal(cl_procpool_stats(pp).requests, 1);
    cl_procpool_shutdown(pp, false);
}

static void test_a_worker_that_dies_fails_its_items_and_is_replaced(void **state)
{
    (void)state;
    enum { N = 8 };
    uint64_t results[N];
    int errors[N];
    struct cl_procpool *pp = pool_of(1, false);
    /* chunks of 4: items 0-3 (item 3 kills the worker), then 4-7 on its replacement */
    struct cl_procpool_batch *b = cl_procpool_map(pp, DIE, 0, N, 4, results, errors);
    assert_int_equal(cl_procpool_wait(b, 30000 * MS), CL_POOL_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(errors[i], i < 4 ? ECHILD : 0);
    cl_procpool_release(b);
    struct cl_procpool_stats s = cl_procpool_stats(pp);
    assert_int_equal(s.died, 1);
    assert_int_equal(s.killed, 0);
    assert_int_equal(s.spawned, 2);
    cl_procpool_shutdown(pp, false);
}

static void test_completion_fd(void **state)
{
    (void)state;
    enum { N = 100 };
    uint64_t r1[N], r2[N];
    int e1[N], e2[N];
    struct cl_procpool *pp = pool_of(2, true);
    int fd = cl_procpool_completion_fd(pp);
    assert_true(fd >= 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    struct cl_procpool_batch *b1 = cl_procpool_map(pp, SQUARE_PLUS, 0, N, 10, r1, e1);
    struct cl_procpool_batch *b2 = cl_procpool_map(pp, SQUARE_PLUS, 2, N, 10, r2, e2);
    int taken = 0;
    while (taken < 2) {
        assert_int_equal(poll(&pfd, 1, 30000), 1);
        uint64_t count;
        assert_int_equal(read(fd, &count, sizeof count), sizeof count);
        for (struct cl_procpool_batch *b; (b = cl_procpool_take_done(pp)) != NULL; taken++) {
            assert_true(b == b1 || b == b2);
            assert_int_equal(cl_procpool_wait(b, 0), CL_POOL_OK);
            cl_procpool_release(b);
        }
    }
    assert_int_equal(r1[N - 1], (uint64_t)(N - 1) * (N - 1));
    assert_int_equal(r2[N - 1], (uint64_t)(N - 1) * (N - 1) + 2);
    cl_procpool_release(b1);
    cl_procpool_release(b2);
    cl_procpool_shutdown(pp, false);
}

static void test_killing_shutdown_ends_hung_batches(void **state)
{
    (void)state;
    uint64_t results[4];
    int errors[4];
    struct cl_procpool *pp = pool_of(2, false);
    struct cl_procpool_batch *b = cl_procpool_map(pp, HANG, 0, 4, 1, results, errors);
    for (int i = 0; i < 5000 && cl_procpool_stats(pp).busy < 2; i++)
        cl_sleep_ns(1 * MS);
    uint64_t t0 = cl_now_ns();
    cl_procpool_shutdown(pp, true);
    assert_true(cl_now_ns() - t0 < 10000 * MS);
    assert_int_equal(cl_procpool_wait(b, 0), CL_POOL_CANCELLED); /* valid after the pool */
    cl_procpool_release(b);
    assert_int_equal(cl_child_count(), 0);
}

static void test_graceful_shutdown_lets_a_batch_finish(void **state)
{
    (void)state;
    enum { N = 2000 };
    static uint64_t results[N];
    static int errors[N];
    struct cl_procpool *pp = pool_of(2, false);
    struct cl_procpool_batch *b = cl_procpool_map(pp, SQUARE_PLUS, 3, N, 1, results, errors);
    cl_procpool_shutdown(pp, false); /* before most of its 2,000 requests are answered */
    assert_int_equal(cl_procpool_wait(b, 0), CL_POOL_OK);
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(results[i], i * i + 3);
    cl_procpool_release(b);
    assert_int_equal(cl_child_count(), 0);
}

int main(int argc, char **argv)
{
    if (cl_procpool_is_worker(argc, argv)) /* spawned by a pool below: serve it */
        return cl_procpool_serve(argc, argv, tasks, NTASKS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses_bad_sizes),
        cmocka_unit_test(test_results_by_index_at_every_chunk_size),
        cmocka_unit_test(test_per_item_errors_and_unknown_tasks),
        cmocka_unit_test(test_cancel_kills_a_hung_task_and_replaces_its_worker),
        cmocka_unit_test(test_cancel_drops_chunks_not_started),
        cmocka_unit_test(test_a_worker_that_dies_fails_its_items_and_is_replaced),
        cmocka_unit_test(test_completion_fd),
        cmocka_unit_test(test_killing_shutdown_ends_hung_batches),
        cmocka_unit_test(test_graceful_shutdown_lets_a_batch_finish),
    };
    return UNIT_MAIN("procpool", tests);
}
