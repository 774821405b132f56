/* procs: the plumbing every family uses: shared-memory names, this program
 * spawned as a worker, a start gate across processes, waiting for children. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

/* ------------------------------------------------------------ shared memory */

/* The names this process made, removed at its end (one exit function for all). */
enum { MAX_NAMES = 8, NAME_LEN = 64 };
static char names[MAX_NAMES][NAME_LEN];
static bool hooked;

static void remove_names(void *arg)
{
    (void)arg;
    for (int i = 0; i < MAX_NAMES; i++)
        if (names[i][0] != '\0')
            shm_unlink(names[i]); /* async-signal-safe enough: one system call */
}

static char *free_name(void)
{
    for (int i = 0; i < MAX_NAMES; i++)
        if (names[i][0] == '\0')
            return names[i];
    cl_fatal("procs: more than %d shared-memory objects at once", MAX_NAMES);
}

void *shm_make(const struct cl_run *run, const char *what, size_t bytes, const char **name)
{
    char *n = free_name();
    snprintf(n, NAME_LEN, "/conclab-%d-%s", (int)getpid(), what);
    int fd = shm_open(n, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1) {
        n[0] = '\0';
        cl_refuse(run, "shm_open", errno, "%s", what);
    }
    if (!hooked) {
        cl_on_exit(remove_names, NULL);
        hooked = true;
    }
    if (ftruncate(fd, (off_t)bytes) == -1) /* /dev/shm may be smaller (a container's 64 MiB) */
        cl_refuse(run, "ftruncate", errno, "%zu bytes in /dev/shm", bytes);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "%zu bytes of %s", bytes, n);
    close(fd);
    *name = n;
    return p;
}

void shm_remove(void *p, size_t bytes, const char *name)
{
    munmap(p, bytes);
    for (int i = 0; i < MAX_NAMES; i++)
        if (names[i] == name) {
            shm_unlink(name);
            names[i][0] = '\0';
        }
}

void *shm_attach(const char *name, size_t bytes)
{
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd == -1)
        return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

/* ------------------------------------------------------------ workers */

pid_t spawn_worker(const struct cl_run *run, const char *role, const char *const args[],
                   const posix_spawn_file_actions_t *fa)
{
    char parent[16];
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    char *argv[16] = {WORKER_ARGV0, (char *)role, parent};
    int argc = 3;
    for (const char *const *a = args; *a != NULL; a++) {
        if (argc == 15)
            cl_fatal("procs: a worker takes at most 12 arguments");
        argv[argc++] = (char *)*a;
    }
    argv[argc] = NULL;
    pid_t pid;
    /* the running program, whatever its name (procs, or conclab-procs installed) */
    int rc = cl_child_spawn(&pid, "/proc/self/exe", fa, argv);
    if (rc != 0)
        cl_refuse(run, "posix_spawn", rc, "a %s worker", role);
    return pid;
}

void worker_start(int argc, char **argv, int want)
{
    if (argc != want) {
        fprintf(stderr, "procs-worker: %d arguments, expected %d\n", argc, want);
        exit(CL_EXIT_USAGE);
    }
    /* argv[0] is the parent's pid */
    cl_child_die_with_parent((pid_t)worker_arg(argv, 0));
}

long long worker_arg(char **argv, int i)
{
    char *end;
    errno = 0;
    long long v = strtoll(argv[i], &end, 10);
    if (errno != 0 || *end != '\0' || end == argv[i]) {
        fprintf(stderr, "procs-worker: '%s' is not a number\n", argv[i]);
        exit(CL_EXIT_USAGE);
    }
    return v;
}

/* ------------------------------------------------------------ the gate */

void gate_wait(struct gate *g)
{
    atomic_fetch_add(&g->arrived, 1);
    while (atomic_load(&g->open) == 0)
        futex_wait(&g->open, 0, 0);
}

bool gate_open_when_ready(struct cl_run *run, struct gate *g, int n, const pid_t *pids)
{
    cl_status(&run->workers[0], "waits for the workers to start");
    while (atomic_load(&g->arrived) < (uint32_t)n) {
        for (int i = 0; i < n; i++) {
            int status;
            if (cl_child_reaped(pids[i], &status)) {
                char how[64];
                fprintf(stderr, "procs: worker %d ended before the start: %s\n", i + 1,
                        status_text(status, how, sizeof how));
                return false;
            }
        }
        cl_sleep_ns(200 * 1000ull);
    }
    cl_status(&run->workers[0], NULL);
    g->opened_ns = cl_now_ns();
    atomic_store(&g->open, 1);
    futex_wake(&g->open, n);
    return true;
}

void wait_mirrored(struct cl_run *run, const pid_t *pids, int n, uint64_t (*progress)(int i),
                   int *status)
{
    bool *done = cl_xcalloc((size_t)n, sizeof *done);
    for (int left = n; left > 0;) {
        for (int i = 0; i < n; i++) {
            if (progress != NULL)
                atomic_store_explicit(&run->workers[i].progress, progress(i), memory_order_relaxed);
            if (!done[i] && cl_child_reaped(pids[i], &status[i])) {
                done[i] = true;
                left--;
            }
        }
        if (left > 0)
            cl_sleep_ns(1000 * 1000ull);
    }
    free(done);
}

long futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec t = {(time_t)(timeout_ns / CL_NS_PER_S), (long)(timeout_ns % CL_NS_PER_S)};
    return syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout_ns ? &t : NULL, NULL, 0);
}

long futex_wake(_Atomic uint32_t *word, int n)
{
    return syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

void pin_process(int i, int n)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == -1 || CPU_COUNT(&allowed) < n)
        return;
    CPU_ZERO(&one);
    for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &allowed) && seen++ == i % CPU_COUNT(&allowed)) {
            CPU_SET(cpu, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
}

const char *status_text(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by SIG%s", sigabbrev_np(WTERMSIG(status)));
    else
        snprintf(buf, len, "status %#x", status);
    return buf;
}

size_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r == 0)
            break;
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            cl_die(__FILE__, __LINE__, "read", errno);
        got += (size_t)r;
    }
    return got;
}

size_t write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            cl_die(__FILE__, __LINE__, "write", errno);
        put += (size_t)r;
    }
    return put;
}

long long proc_number(const char *path, const char *key)
{
    long long v = -1;
    char line[256];
    size_t klen = key != NULL ? strlen(key) : 0;
    FILE *f = fopen(path, "r");
    while (f != NULL && v < 0 && fgets(line, sizeof line, f) != NULL) {
        if (key != NULL && strncmp(line, key, klen) != 0)
            continue;
        char *end;
        errno = 0;
        long long n = strtoll(line + klen, &end, 10);
        if (errno == 0 && end != line + klen)
            v = n;
    }
    if (f != NULL)
        fclose(f);
    return v;
}

size_t fmt_u64(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}
