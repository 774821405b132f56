/* procs: fork-after-threads, atfork, spawn-instead. A helper thread logs through
 * the application's logger, which holds one lock (log_lock) while it formats
 * and writes a line, and its sink is slow. The main thread starts --iters
 * children, one after another, each of which logs LINES lines to a pipe that the
 * parent reads. Every child is started while the helper holds log_lock: the
 * main thread waits for that moment, so every run is the same.
 *
 * glibc takes and resets its own locks around fork() (stdio's, malloc's), so a
 * child of a threaded program does not hang in printf or malloc on Linux; an
 * application's lock gets no such care, which is why the demo has its own. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

enum { LINES = 10 };                 /* lines each child logs */
#define HOLD_NS (2ull * 1000 * 1000) /* the slow sink: log_lock held 2 ms a line */
#define GAP_NS  (100ull * 1000)      /* the helper's pause between lines */

/* [snippet logger] */
/* The application's logger: one lock around a shared line buffer. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char line[64];

static size_t format_line(const char *who, uint64_t n)
{
    size_t len = 0;
    while (*who != '\0')
        line[len++] = *who++;
    line[len++] = ' ';
    len += fmt_u64(line + len, n);
    line[len++] = '\n';
    return len;
}

static void log_line(int fd, const char *who, uint64_t n)
{
    CL_PT(pthread_mutex_lock(&log_lock));
    write_full(fd, line, format_line(who, n));
    CL_PT(pthread_mutex_unlock(&log_lock));
}
/* [end logger] */

static int kind;
static pthread_t helper_thread;
static _Atomic bool helper_holds, stopping;
static _Atomic uint64_t forks_done;
static _Atomic pid_t current_child;
static uint64_t children, lines_read, failed;

/* The helper: logs to /dev/null through a slow sink, holding log_lock meanwhile.
 * In fork-after-threads it holds the lock until the main thread has forked. */
static void *helper(void *arg)
{
    (void)arg;
    int sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CL_SYS(sink);
    for (uint64_t n = 0; !atomic_load(&stopping); n++) {
        CL_PT(pthread_mutex_lock(&log_lock));
        atomic_store(&helper_holds, true);
        size_t len = format_line("helper", n);
        uint64_t seen = atomic_load(&forks_done), until = cl_now_ns() + CL_NS_PER_S;
        if (kind == K_FORK_AFTER_THREADS) /* until the fork: the same hang every run */
            while (atomic_load(&forks_done) == seen && !atomic_load(&stopping) &&
                   cl_now_ns() < until)
                cl_sleep_ns(50 * 1000ull);
        else
            cl_sleep_ns(HOLD_NS);
        write_full(sink, line, len);
        atomic_store(&helper_holds, false);
        CL_PT(pthread_mutex_unlock(&log_lock));
        cl_sleep_ns(GAP_NS);
    }
    close(sink);
    return NULL;
}

/* [snippet atfork] */
/* atfork: fork() takes log_lock first (waiting for the helper to let go), and
 * both processes release it after, so the child's copy is never held. */
static void before_fork(void)
{
    CL_PT(pthread_mutex_lock(&log_lock));
}

static void after_fork(void)
{
    CL_PT(pthread_mutex_unlock(&log_lock));
}
/* [end atfork] */

/* The logger worker of spawn-instead: a new program, with a log_lock of its own
 * that no thread holds. */
int logger_main(int argc, char **argv)
{
    worker_start(argc, argv, 2);
    long long lines = worker_arg(argv, 1);
    for (long long k = 0; k < lines; k++)
        log_line(STDOUT_FILENO, "child", (uint64_t)k);
    return 0;
}

/* [snippet start-child] */
/* Start one child that logs LINES lines to fd out. */
static pid_t start_child(const struct cl_run *run, int out)
{
    if (kind == K_SPAWN_INSTEAD) {
        posix_spawn_file_actions_t fa;
        CL_PT(posix_spawn_file_actions_init(&fa));
        CL_PT(posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO));
        char lines[16];
        snprintf(lines, sizeof lines, "%d", LINES);
        pid_t pid = spawn_worker(run, "logger", (const char *const[]){lines, NULL}, &fa);
        CL_PT(posix_spawn_file_actions_destroy(&fa));
        return pid;
    }
    pid_t pid = cl_child_fork(); /* fork-after-threads, atfork: the same call */
    if (pid == 0) {
        for (int k = 0; k < LINES; k++)
            log_line(out, "child", (uint64_t)k); /* fork-after-threads: blocks here */
        cl_tick(&run->workers[0]);               /* in shared memory: the parent sees it */
        _exit(0);
    }
    if (pid == -1)
        cl_refuse(run, "fork", errno, "started %llu children", (unsigned long long)children);
    return pid;
}
/* [end start-child] */

/* Count the lines of a child's pipe until it closes. */
static uint64_t read_lines(int fd)
{
    char buf[512] = "";
    uint64_t n = 0;
    ssize_t got;
    while ((got = CL_RETRY(read(fd, buf, sizeof buf))) > 0)
        for (ssize_t i = 0; i < got; i++)
            n += buf[i] == '\n';
    CL_SYS(got);
    return n;
}

void hazard_run(struct cl_run *run)
{
    struct cl_worker *w = &run->workers[0];
    int rc = pthread_create(&helper_thread, NULL, helper, NULL);
    if (rc != 0)
        cl_refuse(run, "pthread_create", rc, "the helper thread");
    for (uint64_t i = 0; i < run->iters; i++) {
        cl_status(w, "waits for the helper to hold log_lock");
        while (!atomic_load(&helper_holds))
            cl_sleep_ns(20 * 1000ull);
        int p[2];
        CL_SYS(pipe2(p, O_CLOEXEC));
        pid_t pid = start_child(run, p[1]);
        atomic_fetch_add(&forks_done, 1);
        atomic_store(&current_child, pid);
        close(p[1]);
        cl_status(w, "waits for the child's log lines");
        uint64_t n = read_lines(p[0]);
        close(p[0]);
        cl_status(w, NULL);
        int status = cl_child_wait(pid);
        if (kind == K_SPAWN_INSTEAD) /* a forked child counts itself */
            cl_tick(w);
        children++;
        lines_read += n;
        if (n != LINES || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    atomic_store(&stopping, true);
    CL_PT(pthread_join(helper_thread, NULL));
}

static void setup(const struct cl_run *run)
{
    kind = run->variant->kind;
    if (kind == K_ATFORK)
        CL_PT(pthread_atfork(before_fork, after_fork, after_fork));
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    res->ops = children;
    res->exact = children == run->iters && failed == 0;
    cl_metric_int(res, "children", (long long)children);
    cl_metric_int(res, "lines", (long long)lines_read);
    char a[32];
    if (res->exact) {
        char b[32];
        cl_verdict(res, "%s children started while the helper held log_lock; all %s lines logged",
                   cl_fmt_count(children, a), cl_fmt_count(lines_read, b));
    } else
        cl_verdict(res, "%llu of %s children did not log their %d lines and exit 0",
                   (unsigned long long)failed, cl_fmt_count(children, a), LINES);
}

/* The watchdog's view: which child waits for what. */
static void report(int fd, const struct cl_run *run)
{
    (void)run;
    pid_t pid = atomic_load(&current_child);
    if (kind != K_FORK_AFTER_THREADS || pid == 0)
        return;
    dprintf(fd,
            "  child %d waits for log_lock in its first log call: fork() copied the lock as "
            "the helper thread held it, and copied only the thread that called fork, so no "
            "thread in the child will ever release it\n",
            (int)pid);
}

const struct family hazard_family = {.setup = setup, .check = check, .report = report};
