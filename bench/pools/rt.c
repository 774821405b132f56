/* pool-rt: the submit-to-result round trip of one empty task on lib's thread
 * pool, against its floor, a futex wake round trip between two threads.
 *
 * A round trip on the pool wakes the worker (the task is queued) and then the
 * submitter (the future is settled): two wake-ups, as a futex ping-pong makes.
 * The two are timed in alternation, `rounds` times, each a batch of `ops` round
 * trips, and the ratio is taken round by round, so a machine that slows down for
 * a while slows both sides of it. Prints the medians over the rounds, or with
 * --json one line in the demos' shape: ops, wall_s, ns_per_op (the pool's), and
 * metrics futex_rt_ns, pool_rt_ns and pool_over_futex (the median of the rounds'
 * ratios). Neither thread is pinned: the pool's are not.
 *
 *   pool-rt [--ops N] [--rounds N] [--json] */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conclab.h"

/* ------------------------------------------------------------ the futex floor */

static _Atomic uint32_t turn; /* 0: the pinger's move, 1: the ponger's, 2: stop */

static void futex_wait(_Atomic uint32_t *addr, uint32_t while_value)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, while_value, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *ponger(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t t;
        while ((t = atomic_load(&turn)) == 0)
            futex_wait(&turn, 0);
        if (t == 2)
            return NULL;
        atomic_store(&turn, 0);
        futex_wake(&turn);
    }
}

/* ns per round trip: pass the turn over and sleep until it comes back. */
static double futex_round_trips(uint64_t ops)
{
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        atomic_store(&turn, 1);
        futex_wake(&turn);
        while (atomic_load(&turn) == 1)
            futex_wait(&turn, 1);
    }
    return (double)(cl_now_ns() - t0) / (double)ops;
}

/* ------------------------------------------------------------ the pool */

static int empty_task(void *arg, uint64_t *result)
{
    (void)arg;
    *result = 1;
    return 0;
}

static double pool_round_trips(struct cl_pool *pool, uint64_t ops)
{
    uint64_t sum = 0, t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        struct cl_pool_future *f = cl_pool_submit(pool, empty_task, NULL);
        uint64_t v = 0;
        if (f == NULL || cl_pool_get(f, CL_FOREVER, &v, NULL) != CL_POOL_OK)
            cl_fatal("pool-rt: a round trip failed");
        cl_pool_release(f);
        sum += v;
    }
    double ns = (double)(cl_now_ns() - t0) / (double)ops;
    if (sum != ops)
        cl_fatal("pool-rt: %llu results of %llu", (unsigned long long)sum, (unsigned long long)ops);
    return ns;
}

static uint64_t number(const char *flag, const char *arg)
{
    char *end;
    unsigned long long v = strtoull(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || v == 0 || v > 100000000) {
        fprintf(stderr, "pool-rt: %s: expected 1 to 100000000, got '%s'\n", flag, arg);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    uint64_t ops = 20000, rounds = 9;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (i + 1 < argc && strcmp(argv[i], "--ops") == 0) {
            ops = number(argv[i], argv[i + 1]);
            i++;
        } else if (i + 1 < argc && strcmp(argv[i], "--rounds") == 0) {
            rounds = number(argv[i], argv[i + 1]);
            i++;
        } else {
            fprintf(stderr, "usage: pool-rt [--ops N] [--rounds N] [--json]\n");
            return 2;
        }
    }
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, ponger, NULL));
    struct cl_pool *pool = cl_pool_new(&(struct cl_pool_opts){.workers = 1});
    double *futex_ns = cl_xcalloc(rounds, sizeof *futex_ns);
    double *pool_ns = cl_xcalloc(rounds, sizeof *pool_ns);
    double *ratio = cl_xcalloc(rounds, sizeof *ratio);
    futex_round_trips(ops / 10 + 1); /* warm-up: both threads exist and have run */
    pool_round_trips(pool, ops / 10 + 1);
    uint64_t t0 = cl_now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        futex_ns[r] = futex_round_trips(ops);
        pool_ns[r] = pool_round_trips(pool, ops);
        ratio[r] = pool_ns[r] / futex_ns[r];
    }
    double wall = cl_seconds(cl_now_ns() - t0);
    atomic_store(&turn, 2);
    futex_wake(&turn);
    CL_PT(pthread_join(t, NULL));
    cl_pool_shutdown(pool, false);
    double pool_med = cl_median(pool_ns, rounds), futex_med = cl_median(futex_ns, rounds);
    double ratio_med = cl_median(ratio, rounds);
    free(futex_ns);
    free(pool_ns);
    free(ratio);
    if (!json) {
        printf("round trip: futex %.0f ns, pool %.0f ns: %.2fx (medians of %llu rounds)\n",
               futex_med, pool_med, ratio_med, (unsigned long long)rounds);
        return 0;
    }
    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "chapter", "pools");
    cl_json_str(&j, "variant", "round-trip");
    cl_json_uint(&j, "ops", ops * rounds);
    cl_json_real(&j, "wall_s", wall);
    cl_json_real(&j, "ns_per_op", pool_med);
    cl_json_object(&j, "metrics");
    cl_json_real(&j, "futex_rt_ns", futex_med);
    cl_json_real(&j, "pool_rt_ns", pool_med);
    cl_json_real(&j, "pool_over_futex", ratio_med);
    cl_json_close(&j);
    cl_json_end(&j);
    return 0;
}
