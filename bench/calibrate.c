/* calibrate: the physical floors of this machine, for bench/run's report.
 *
 * Each figure is the cheapest possible version of something a chapter does: an
 * uncontended lock, an atomic add, a cache line crossing between two cores, a
 * system call, a thread, a process, a wake-up, a message round trip, a copy. A
 * chapter's per-operation cost reads best as a multiple of its floor.
 *
 * The floors are measured in interleaved repeats: after one warm-up of each,
 * every floor once, then every floor again, so that a machine that slows down
 * for a while slows every floor alike. Prints one JSON object per floor: name,
 * what, ns (the median of the repeats), ns_min, ns_max, ops per repeat (sized
 * so that a repeat lasts about 20 ms), the repeats' samples (ns each) and, for a
 * bandwidth, the bytes of one operation; bench/run adds the interval. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conclab.h"

#define REPEATS_DEFAULT  11 /* bench/run's interval is a bootstrap from 10 samples */
#define BUDGET_S_DEFAULT 6  /* seconds of repeats: bench/run's quick budget is 8 in all */
#define REPEATS_MAX      1000
#define REPEAT_NS        20e6 /* the length of one repeat of one floor */
#define MIN_REPEATS      6    /* bench/run gives no interval below 6 samples */

extern char **environ;

typedef double measure_fn(uint64_t ops); /* ns per operation */

static double ns_per_op(uint64_t t0, uint64_t ops)
{
    return (double)(cl_now_ns() - t0) / (double)ops;
}

static double mutex_uncontended(uint64_t ops)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        CL_PT(pthread_mutex_lock(&m));
        CL_PT(pthread_mutex_unlock(&m));
    }
    return ns_per_op(t0, ops);
}

static double atomic_add_uncontended(uint64_t ops)
{
    static _Atomic uint64_t n;
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++)
        atomic_fetch_add_explicit(&n, 1, memory_order_relaxed);
    return ns_per_op(t0, ops);
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

static int cpus[2];        /* the two CPUs of the round trip, -1 if there is only one */
static cpu_set_t allowed;  /* this process's CPUs: every other floor runs unpinned */
static char spawnee[4096]; /* the program the spawn floor starts */

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
    double ns = ns_per_op(t0, ops);
    CL_PT(pthread_join(t, NULL));
    /* Threads and children inherit the affinity: the floors after this one
     * would all run on one CPU. */
    CL_PT(pthread_setaffinity_np(pthread_self(), sizeof allowed, &allowed));
    return ns;
}

/* getppid: always a real entry into the kernel (glibc caches nothing for it,
 * and no vDSO serves it), with almost no work inside. */
static double null_syscall(uint64_t ops)
{
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++)
        syscall(SYS_getppid);
    return ns_per_op(t0, ops);
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
    return ns_per_op(t0, ops);
}

/* A ping-pong between this thread and a partner, the clock started after one
 * round trip so that starting the partner is not counted. */
struct ping_pong {
    void (*ping)(void);    /* this thread: hand over, then wait for the answer */
    void *(*pong)(void *); /* the partner: `ops` times, wait, then answer */
};

static double thread_round_trips(const struct ping_pong *pp, uint64_t ops)
{
    pthread_t t;
    uint64_t n = ops + 1;
    CL_PT(pthread_create(&t, NULL, pp->pong, &n));
    pp->ping();
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++)
        pp->ping();
    double ns = ns_per_op(t0, ops);
    CL_PT(pthread_join(t, NULL));
    return ns;
}

/* A futex word: 1 while it is the partner's turn, 0 while it is ours. Each side
 * flips it, wakes the other and sleeps in the kernel until it flips back: two
 * wakes and two sleeps per round trip, what a condition variable or a semaphore
 * costs at the least when a thread really has to wait. */
static _Atomic uint32_t turn;

static void futex_wait_while(uint32_t value)
{
    while (atomic_load_explicit(&turn, memory_order_acquire) == value)
        if (syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0) == -1 &&
            errno != EAGAIN && errno != EINTR)
            cl_die(__FILE__, __LINE__, "futex(FUTEX_WAIT_PRIVATE)", errno);
}

static void futex_flip(uint32_t to)
{
    atomic_store_explicit(&turn, to, memory_order_release);
    CL_SYS(syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
}

static void futex_ping(void)
{
    futex_flip(1);
    futex_wait_while(1);
}

static void *futex_pong(void *arg)
{
    for (uint64_t i = 0, n = *(uint64_t *)arg; i < n; i++) {
        futex_wait_while(0);
        futex_flip(0);
    }
    return NULL;
}

static double futex_round_trip(uint64_t ops)
{
    atomic_store(&turn, 0);
    return thread_round_trips(&(struct ping_pong){futex_ping, futex_pong}, ops);
}

/* Two eventfds, one each way, blocking: how an event loop's thread is woken
 * from another thread (libuv's uv_async_send writes one). */
static int to_partner = -1, to_us = -1;

static void eventfd_ping(void)
{
    uint64_t one = 1, got;
    CL_SYS(write(to_partner, &one, sizeof one));
    CL_SYS(read(to_us, &got, sizeof got));
}

static void *eventfd_pong(void *arg)
{
    uint64_t one = 1, got;
    for (uint64_t i = 0, n = *(uint64_t *)arg; i < n; i++) {
        CL_SYS(read(to_partner, &got, sizeof got));
        CL_SYS(write(to_us, &one, sizeof one));
    }
    return NULL;
}

static double eventfd_round_trip(uint64_t ops)
{
    CL_SYS(to_partner = eventfd(0, EFD_CLOEXEC));
    CL_SYS(to_us = eventfd(0, EFD_CLOEXEC));
    double ns = thread_round_trips(&(struct ping_pong){eventfd_ping, eventfd_pong}, ops);
    CL_SYS(close(to_partner));
    CL_SYS(close(to_us));
    return ns;
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
    return ns_per_op(t0, ops);
}

/* posix_spawn of a program built beside this one that returns at once, then
 * waitpid: a new process with a fresh image (glibc spawns with CLONE_VFORK, so
 * the parent's size does not matter as it does for fork). */
static double spawn_wait(uint64_t ops)
{
    char *argv[] = {spawnee, NULL};
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        pid_t pid;
        CL_PT(posix_spawn(&pid, spawnee, NULL, NULL, argv, environ));
        int status;
        CL_SYS(waitpid(pid, &status, 0));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            cl_fatal("calibrate: %s did not exit 0", spawnee);
    }
    return ns_per_op(t0, ops);
}

/* One byte to a child process and one byte back. The child echoes until it
 * reads EOF: when the parent closes its end, or when the parent dies. */
static double child_round_trips(int there, int back, int child_there, int child_back, uint64_t ops)
{
    pid_t pid = fork();
    CL_SYS(pid);
    char byte = 'x';
    if (pid == 0) {
        /* Only the parent may hold its ends, or the child never reads EOF. */
        CL_SYS(close(there));
        if (back != there)
            CL_SYS(close(back));
        while (read(child_there, &byte, 1) == 1)
            if (write(child_back, &byte, 1) != 1)
                _exit(1);
        _exit(0);
    }
    CL_SYS(close(child_there));
    if (child_back != child_there)
        CL_SYS(close(child_back));
    CL_SYS(write(there, &byte, 1)); /* the first round trip starts the child */
    CL_SYS(read(back, &byte, 1));
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        CL_SYS(write(there, &byte, 1));
        CL_SYS(read(back, &byte, 1));
    }
    double ns = ns_per_op(t0, ops);
    CL_SYS(close(there)); /* the child reads EOF and exits */
    int status;
    CL_SYS(waitpid(pid, &status, 0));
    if (back != there)
        CL_SYS(close(back));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        cl_fatal("calibrate: the echoing child failed");
    return ns;
}

static double pipe_round_trip(uint64_t ops)
{
    int there[2], back[2];
    CL_SYS(pipe2(there, O_CLOEXEC));
    CL_SYS(pipe2(back, O_CLOEXEC));
    return child_round_trips(there[1], back[0], there[0], back[1], ops);
}

/* A Unix stream socket pair carries both directions, as a local server's
 * connection does. */
static double socketpair_round_trip(uint64_t ops)
{
    int sv[2];
    CL_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    return child_round_trips(sv[0], sv[0], sv[1], sv[1], ops);
}

/* memcpy bandwidth: 1 MiB at a time, walking two 64 MiB buffers (far larger
 * than an L2; many an L3 too). Each copy carries a stamp that is read back from
 * the destination and checked, so that the compiler cannot drop a copy whose
 * result nobody reads. */
#define MIB      ((size_t)1 << 20)
#define COPY_BUF (64 * MIB)
static unsigned char *src, *dst;

/* A buffer with every page faulted in, and left out of every fork: a fork
 * copies the page tables of all the memory it inherits, and 128 MiB of them
 * would make the fork floor several times slower. */
static unsigned char *copy_buffer(int fill)
{
    void *p = mmap(NULL, COPY_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        cl_die(__FILE__, __LINE__, "mmap", errno);
    CL_SYS(madvise(p, COPY_BUF, MADV_DONTFORK));
    memset(p, fill, COPY_BUF);
    return p;
}

static double memcpy_mib(uint64_t ops)
{
    if (!src) {
        src = copy_buffer(0x5a);
        dst = copy_buffer(0xa5);
    }
    uint64_t sum = 0, want = 0;
    uint64_t t0 = cl_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        size_t at = (size_t)(i % (COPY_BUF / MIB)) * MIB;
        memcpy(src + at, &i, sizeof i);
        memcpy(dst + at, src + at, MIB);
        uint64_t stamp;
        memcpy(&stamp, dst + at, sizeof stamp);
        sum += stamp;
        want += i;
    }
    double ns = ns_per_op(t0, ops);
    if (sum != want)
        cl_fatal("calibrate: memcpy lost a copy");
    return ns;
}

struct floor {
    const char *name, *what;
    measure_fn *fn;
    uint64_t min_ops; /* per repeat at least, and the size of each warm-up */
    uint64_t bytes;   /* of one operation, for a bandwidth; 0 for a latency */
    bool two_cpus;    /* left out on a one-CPU machine */
};

/* The names are stable: chapters refer to them (floor = "..." in
 * bench/<chapter>.toml), and bench/harness/schema.py lists them. */
static const struct floor floors[] = {
    {"mutex", "uncontended pthread mutex lock + unlock", mutex_uncontended, 10000, 0, false},
    {"atomic_add", "uncontended atomic fetch-and-add", atomic_add_uncontended, 10000, 0, false},
    {"cache_line", "cache line round trip between two cores", cache_line_round_trip, 1000, 0, true},
    {"syscall", "null system call (getppid)", null_syscall, 10000, 0, false},
    {"futex", "futex wake round trip between two threads (each wakes the other)", futex_round_trip,
     100, 0, false},
    {"eventfd", "eventfd round trip between two threads", eventfd_round_trip, 100, 0, false},
    {"thread", "pthread_create + pthread_join", thread_create_join, 50, 0, false},
    {"fork", "fork + _exit + waitpid", fork_wait, 5, 0, false},
    {"spawn", "posix_spawn of a program that returns at once + waitpid", spawn_wait, 5, 0, false},
    {"pipe", "one-byte pipe round trip to another process", pipe_round_trip, 100, 0, false},
    {"socketpair", "one-byte Unix socketpair round trip to another process", socketpair_round_trip,
     100, 0, false},
    {"memcpy", "memcpy of 1 MiB within two 64 MiB buffers (ns per MiB)", memcpy_mib, 8, MIB, false},
};
#define NFLOORS (sizeof floors / sizeof floors[0])

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const struct floor *f, uint64_t ops, const double *samples, int repeats)
{
    double sorted[REPEATS_MAX];
    memcpy(sorted, samples, sizeof samples[0] * (size_t)repeats);
    qsort(sorted, (size_t)repeats, sizeof sorted[0], compare_doubles);
    double median =
        repeats % 2 ? sorted[repeats / 2] : (sorted[repeats / 2 - 1] + sorted[repeats / 2]) / 2;
    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "name", f->name);
    cl_json_str(&j, "what", f->what);
    cl_json_real(&j, "ns", median);
    cl_json_real(&j, "ns_min", sorted[0]);
    cl_json_real(&j, "ns_max", sorted[repeats - 1]);
    cl_json_uint(&j, "ops", ops);
    if (f->bytes)
        cl_json_uint(&j, "bytes", f->bytes);
    cl_json_array(&j, "samples");
    for (int r = 0; r < repeats; r++)
        cl_json_real(&j, NULL, samples[r]);
    cl_json_end(&j);
}

/* The spawned program is procs' empty one, at demos/procs/procs-tiny in the build. */
static void find_spawnee(void)
{
    char self[sizeof spawnee] = {0}; /* readlink does not end the string: the zeros do */
    CL_SYS(readlink("/proc/self/exe", self, sizeof self - 1));
    const char *slash = strrchr(self, '/');
    int len = snprintf(spawnee, sizeof spawnee, "%.*s/../demos/procs/procs-tiny",
                       slash ? (int)(slash - self) : 1, slash ? self : ".");
    if (len < 0 || (size_t)len >= sizeof spawnee)
        cl_fatal("calibrate: the path of procs-tiny beside %s is too long", self);
    if (access(spawnee, X_OK) != 0) {
        fprintf(stderr, "calibrate: no %s (build it with meson)\n", spawnee);
        exit(1);
    }
}

static _Noreturn void usage(const char *msg)
{
    fprintf(stderr, "calibrate: %s (usage: calibrate [--repeats N] [--budget SECONDS] [--list])\n",
            msg);
    exit(CL_EXIT_USAGE);
}

int main(int argc, char **argv)
{
    int repeats = REPEATS_DEFAULT;
    double budget_s = BUDGET_S_DEFAULT;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--list") == 0) {
            for (size_t f = 0; f < NFLOORS; f++)
                printf("%s\t%s\n", floors[f].name, floors[f].what);
            return 0;
        }
        bool is_repeats = strcmp(argv[a], "--repeats") == 0;
        if (!is_repeats && strcmp(argv[a], "--budget") != 0)
            usage("unknown argument");
        if (a + 1 == argc)
            usage(is_repeats ? "--repeats needs a value" : "--budget needs a value");
        char *end;
        errno = 0;
        const char *v = argv[++a];
        if (is_repeats) {
            long n = strtol(v, &end, 10);
            if (errno || *end || end == v || n < 1 || n > REPEATS_MAX)
                usage("--repeats takes a whole number from 1 to 1000");
            repeats = (int)n;
        } else {
            budget_s = strtod(v, &end);
            if (errno || *end || end == v || !(budget_s >= 0 && budget_s <= 3600))
                usage("--budget takes seconds from 0 to 3600");
        }
    }

    CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
    cpus[0] = cpus[1] = -1;
    for (int c = 0, found = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &allowed))
            cpus[found++] = c;
    find_spawnee();
    /* Every chapter's process has started threads, and so must this one before
     * it measures anything: until a process starts its first thread, glibc
     * leaves the lock prefix off a mutex's atomic instructions (the mutex floor
     * took 3 ns instead of 15 ns here), and it never puts it back off after. */
    thread_create_join(1);

    /* Warm-up (page faults, lazy binding, the first thread's stack), then three
     * short runs whose median sizes the repeats: each about REPEAT_NS long, so that the
     * whole calibration takes about the same time on a slow machine as on a
     * fast one, and a sample spans many time slices. */
    static double samples[NFLOORS][REPEATS_MAX];
    uint64_t ops[NFLOORS] = {0};
    for (size_t f = 0; f < NFLOORS; f++) {
        if (floors[f].two_cpus && cpus[1] < 0)
            continue;
        double est[3];
        floors[f].fn(floors[f].min_ops);
        for (int k = 0; k < 3; k++)
            est[k] = floors[f].fn(floors[f].min_ops);
        qsort(est, 3, sizeof est[0], compare_doubles);
        double ns = est[1];
        ops[f] = floors[f].min_ops;
        if (ns > 0 && REPEAT_NS / ns > (double)ops[f])
            ops[f] = (uint64_t)(REPEAT_NS / ns);
    }
    /* Rounds until `repeats`, or until another round would end past the budget
     * (a busy machine stretches every repeat), though never fewer than
     * MIN_REPEATS: the fewest that still give an interval. */
    uint64_t start = cl_now_ns();
    int done = 0;
    while (done < repeats) {
        uint64_t t0 = cl_now_ns();
        for (size_t f = 0; f < NFLOORS; f++)
            if (ops[f])
                samples[f][done] = floors[f].fn(ops[f]);
        done++;
        uint64_t now = cl_now_ns();
        if (done >= MIN_REPEATS && (double)(now - start + (now - t0)) > budget_s * 1e9)
            break;
    }
    for (size_t f = 0; f < NFLOORS; f++)
        if (ops[f])
            report(&floors[f], ops[f], samples[f], done);
    return 0;
}
