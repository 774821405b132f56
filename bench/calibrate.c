/* calibrate: the physical floors of this machine, for bench/run's report.
 *
 * Each figure is the cheapest possible version of something a chapter does:
 * an uncontended lock, an atomic add, a cache line crossing between two cores,
 * a thread, a process, a pipe round trip. A chapter's per-operation cost reads
 * best as a multiple of its floor. Prints one JSON object per line: name, what,
 * ns (median of 5 repeats), ops per repeat. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conclab.h"

#define REPEATS 5

typedef double measure_fn(uint64_t ops); /* ns per operation */

static double mutex_uncontended(uint64_t ops)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        CL_PT(pthread_mutex_lock(&m));
        CL_PT(pthread_mutex_unlock(&m));
    }
    return (double)(cl_now_ns() - t0) / (double)ops;
}

static double atomic_add_uncontended(uint64_t ops)
{
    static _Atomic uint64_t n;
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++)
        atomic_fetch_add_explicit(&n, 1, memory_order_relaxed);
    return (double)(cl_now_ns() - t0) / (double)ops;
}

/* Two threads on two cores pass a counter back and forth: each hand-over moves
 * the cache line to the other core and back. */
static _Atomic uint64_t ball;

static void pin(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    CL_PT(pthread_setaffinity_np(pthread_self(), sizeof one, &one));
}

struct pong_args {
    uint64_t ops;
    int cpu;
};

static void *pong(void *arg)
{
    const struct pong_args *a = arg;
    pin(a->cpu);
    for (uint64_t i = 0; i < a->ops; i++) {
        while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&ball, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static int cpus[2]; /* the two CPUs of the round trip, -1 if there is only one */

static double cache_line_round_trip(uint64_t ops)
{
    atomic_store(&ball, 0);
    pthread_t t;
    struct pong_args a = {ops, cpus[1]};
    CL_PT(pthread_create(&t, NULL, pong, &a));
    pin(cpus[0]);
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        atomic_store_explicit(&ball, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&ball, memory_order_acquire) != 2 * i + 2)
            ;
    }
    double ns = (double)(cl_now_ns() - t0) / (double)ops;
    CL_PT(pthread_join(t, NULL));
    return ns;
}

static void *nothing(void *arg)
{
    return arg;
}

static double thread_create_join(uint64_t ops)
{
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        pthread_t t;
        CL_PT(pthread_create(&t, NULL, nothing, NULL));
        CL_PT(pthread_join(t, NULL));
    }
    return (double)(cl_now_ns() - t0) / (double)ops;
}

static double fork_wait(uint64_t ops)
{
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        pid_t pid = fork();
        CL_SYS(pid);
        if (pid == 0)
            _exit(0);
        CL_SYS(waitpid(pid, NULL, 0));
    }
    return (double)(cl_now_ns() - t0) / (double)ops;
}

/* One byte to a child process and one byte back, over two pipes. */
static double pipe_round_trip(uint64_t ops)
{
    int there[2], back[2];
    CL_SYS(pipe(there));
    CL_SYS(pipe(back));
    pid_t pid = fork();
    CL_SYS(pid);
    char byte = 'x';
    if (pid == 0) {
        /* Only the parent may hold the write end, or the child never reads EOF. */
        CL_SYS(close(there[1]));
        CL_SYS(close(back[0]));
        while (read(there[0], &byte, 1) == 1)
            if (write(back[1], &byte, 1) != 1)
                _exit(1);
        _exit(0);
    }
    CL_SYS(close(there[0]));
    CL_SYS(close(back[1]));
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        CL_SYS(write(there[1], &byte, 1));
        CL_SYS(read(back[0], &byte, 1));
    }
    double ns = (double)(cl_now_ns() - t0) / (double)ops;
    CL_SYS(close(there[1])); /* the child reads EOF and exits */
    CL_SYS(waitpid(pid, NULL, 0));
    CL_SYS(close(back[0]));
    return ns;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, const char *what, measure_fn *fn, uint64_t ops)
{
    double ns[REPEATS];
    fn(ops / 10 + 1); /* warm-up: page faults, lazy binding, frequency */
    for (int r = 0; r < REPEATS; r++)
        ns[r] = fn(ops);
    qsort(ns, REPEATS, sizeof ns[0], compare_doubles);
    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "name", name);
    cl_json_str(&j, "what", what);
    cl_json_real(&j, "ns", ns[REPEATS / 2]);
    cl_json_real(&j, "ns_min", ns[0]);
    cl_json_real(&j, "ns_max", ns[REPEATS - 1]);
    cl_json_uint(&j, "ops", ops);
    cl_json_end(&j);
}

int main(void)
{
    cpu_set_t allowed;
    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    cpus[0] = cpus[1] = -1;
    for (int c = 0, found = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[found++] = c;

    report("mutex", "uncontended pthread mutex lock + unlock", mutex_uncontended, 2000000);
    report("atomic_add", "uncontended atomic fetch-and-add", atomic_add_uncontended, 2000000);
    if (cpus[1] >= 0)
        report("cache_line", "cache line round trip between two cores", cache_line_round_trip,
               100000);
    report("thread", "pthread_create + pthread_join", thread_create_join, 1000);
    report("fork", "fork + _exit + waitpid", fork_wait, 100);
    report("pipe", "one-byte pipe round trip to another process", pipe_round_trip, 10000);
    return 0;
}
