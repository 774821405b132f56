/* procs: fork, vfork-exec, spawn, forkserver. Each times --iters starts of a
 * child that does nothing, each one waited for before the next, with a parent
 * that first touches --rss-mib MiB of memory (its "ballast"): fork copies the
 * parent's page tables, so its cost grows with the parent; the others do not.
 *
 * spawn and vfork-exec run procs-tiny, a program with an empty main() built
 * beside the demo; forkserver asks a small server process, started before the
 * ballast, to fork for it, as CPython's forkserver start method does. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

extern char **environ;

static uint64_t *took_ns; /* each start + wait */
static uint64_t started, failed;
static char *ballast;
static size_t ballast_bytes;
static long rss_kib;
static const char *tiny;
static int thp; /* the THP mode: 0 never, 1 madvise, 2 always */
static pid_t server;
static int to_server = -1, from_server = -1;

/* ------------------------------------------------------------ the parent's size */

/* The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled. */
static int thp_mode(void)
{
    char buf[64] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    return strstr(buf, "[always]") ? 2 : strstr(buf, "[madvise]") ? 1 : 0;
}

/* [snippet ballast] */
/* M MiB the parent really uses: every page written, in 4 KiB pages (a huge
 * page would make fork's page-table copy 512 times smaller). */
static void touch_ballast(const struct cl_run *run, size_t mib)
{
    ballast_bytes = mib << 20;
    ballast = mmap(NULL, ballast_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ballast == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "--rss-mib %zu", mib);
    madvise(ballast, ballast_bytes, MADV_NOHUGEPAGE);
    /* the kernel writes every page itself (Linux 5.14), faster than a fault each */
    if (madvise(ballast, ballast_bytes, MADV_POPULATE_WRITE) != 0)
        for (size_t off = 0; off < ballast_bytes; off += 4096)
            ballast[off] = (char)off;
}
/* [end ballast] */

/* ------------------------------------------------------------ the tiny program */

/* procs-tiny: beside this program (the build tree), where meson installs it,
 * or in the build tree this program was built in. */
static const char *find_tiny(const struct cl_run *run)
{
    static char beside[4096];
    ssize_t n = readlink("/proc/self/exe", beside, sizeof beside - 16);
    if (n > 0) {
        beside[n] = '\0';
        char *slash = strrchr(beside, '/');
        if (slash != NULL) {
            snprintf(slash + 1, sizeof beside - (size_t)(slash + 1 - beside), "procs-tiny");
            if (access(beside, X_OK) == 0)
                return beside;
        }
    }
    if (access(PROCS_TINY_INSTALLED, X_OK) == 0)
        return PROCS_TINY_INSTALLED;
    if (access(PROCS_TINY_BUILT, X_OK) == 0)
        return PROCS_TINY_BUILT;
    cl_refuse(run, "posix_spawn", ENOENT,
              "procs-tiny, looked for beside the program, in %s and in %s", PROCS_TINY_INSTALLED,
              PROCS_TINY_BUILT);
}

/* ------------------------------------------------------------ the forkserver */

/* [snippet forkserver] */
/* The server (a worker mode of this program): for each request byte on stdin,
 * fork a child that exits at once, wait for it, and answer its status on stdout.
 * It is small and single-threaded, so its fork is cheap and safe. */
int forkserver_main(int argc, char **argv)
{
    worker_start(argc, argv, 1);
    char request;
    while (read(STDIN_FILENO, &request, 1) == 1) {
        int status = -1;
        pid_t pid = fork();
        if (pid == 0)
            _exit(0); /* a CPython child would run its target here */
        if (pid > 0)
            while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
                ;
        if (write(STDOUT_FILENO, &status, sizeof status) != sizeof status)
            return 1;
    }
    return 0;
}
/* [end forkserver] */

static void start_server(const struct cl_run *run)
{
    int req[2], rep[2];
    CL_SYS(pipe2(req, O_CLOEXEC));
    CL_SYS(pipe2(rep, O_CLOEXEC));
    posix_spawn_file_actions_t fa;
    CL_PT(posix_spawn_file_actions_init(&fa));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, req[0], STDIN_FILENO));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, rep[1], STDOUT_FILENO));
    server = spawn_worker(run, "forkserver", (const char *const[]){NULL}, &fa);
    CL_PT(posix_spawn_file_actions_destroy(&fa));
    close(req[0]);
    close(rep[1]);
    to_server = req[1];
    from_server = rep[0];
}

/* ------------------------------------------------------------ one start each way */

/* [snippet start-one] */
/* Start a child that does nothing, wait for it; its status. */
static int start_one(const struct cl_run *run, char *const tiny_argv[])
{
    pid_t pid;
    switch (run->variant->kind) {
    case K_FORK:
        pid = cl_child_fork(); /* copies the page tables of every touched page */
        if (pid == 0)
            _exit(0);
        if (pid == -1)
            cl_refuse(run, "fork", errno, "started %llu children", (unsigned long long)started);
        return cl_child_wait(pid);
    case K_VFORK_EXEC:
        /* borrows the parent's memory until the exec: nothing copied. (The lesson
         * is vfork itself; posix_spawn below is the safe way to the same.) */
        pid = vfork(); /* NOLINT(clang-analyzer-security.insecureAPI.vfork) */
        if (pid == 0) {
            execve(tiny_argv[0], tiny_argv, environ);
            _exit(127);
        }
        if (pid == -1)
            cl_refuse(run, "vfork", errno, "started %llu children", (unsigned long long)started);
        cl_child_adopt(pid);
        return cl_child_wait(pid);
    case K_SPAWN: {
        int rc = cl_child_spawn(&pid, tiny_argv[0], NULL, tiny_argv); /* glibc: clone + exec */
        if (rc != 0)
            cl_refuse(run, "posix_spawn", rc, "started %llu children", (unsigned long long)started);
        return cl_child_wait(pid);
    }
    default: { /* K_FORKSERVER: one request, one answer */
        int status = -1;
        if (write(to_server, "f", 1) != 1 || read_full(from_server, &status, sizeof status) == 0)
            return -1; /* the server is gone */
        return status;
    }
    }
}
/* [end start-one] */

void start_run(struct cl_run *run)
{
    struct cl_worker *w = &run->workers[0];
    char *const tiny_argv[] = {(char *)tiny, NULL};
    for (uint64_t i = 0; i < run->iters; i++) {
        uint64_t t0 = cl_now_ns();
        int status = start_one(run, tiny_argv);
        took_ns[i] = cl_now_ns() - t0;
        started++;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
        cl_tick(w);
    }
}

static void setup(const struct cl_run *run)
{
    took_ns = cl_xcalloc(run->iters, sizeof *took_ns);
    int kind = run->variant->kind;
    if (kind == K_FORKSERVER)
        start_server(run); /* before the ballast: the server stays small */
    if (kind == K_VFORK_EXEC || kind == K_SPAWN)
        tiny = find_tiny(run);
    if (cl_param(run, RSS_MIB) > 0)
        touch_ballast(run, (size_t)cl_param(run, RSS_MIB));
    rss_kib = (long)proc_number("/proc/self/status", "VmRSS:"); /* resident now */
    thp = thp_mode();
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    static const char *const thp_names[] = {"never", "madvise", "always"};
    double *us = cl_xcalloc(started, sizeof *us);
    for (uint64_t i = 0; i < started; i++)
        us[i] = (double)took_ns[i] / 1e3;
    double median = started > 0 ? cl_median(us, started) : 0;      /* sorts us */
    double p90 = started > 0 ? us[(started * 9 + 9) / 10 - 1] : 0; /* ceil(0.9 n)-th */
    free(us);
    res->ops = started;
    res->exact = started == run->iters && failed == 0;
    cl_metric_real(res, "start_us", median);
    cl_metric_real(res, "start_p90_us", p90);
    cl_metric_int(res, "rss_mib", rss_kib / 1024);
    cl_metric_int(res, "thp", thp);
    cl_metric_int(res, "failed", (long long)failed);
    char a[32];
    if (res->exact)
        cl_verdict(res,
                   "median %.3f ms to start and reap a child, over %s; parent RSS %ld MiB "
                   "(THP %s)",
                   median / 1e3, cl_fmt_count(started, a), rss_kib / 1024, thp_names[thp]);
    else
        cl_verdict(res, "%llu of %s children did not exit 0", (unsigned long long)failed,
                   cl_fmt_count(started, a));
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    if (to_server != -1) {
        close(to_server); /* end of file: the server returns */
        cl_child_wait(server);
        close(from_server);
    }
    if (ballast != NULL)
        munmap(ballast, ballast_bytes);
    free(took_ns);
}

const struct family start_family = {.setup = setup, .check = check, .teardown = teardown};
