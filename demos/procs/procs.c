/* procs: processes instead of threads: what starting one costs, what goes wrong
 * between them, and what moving data between them costs.
 *
 * Every variant is a .run: the main thread starts the children, waits for them
 * and counts. The families live in files of their own (see procs.h); this file
 * holds the table, the flags and the hooks that hand over to each family. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "procs.h"

extern const char *const mech_names[];
static const char *const wait_names[] = {"pidfd", "waitpid", NULL};
static const char *const start_names[] = {"fork", "spawn", NULL};

static const struct cl_variant variants[] = {
    {"fork", CL_CORRECT, "fork + _exit + wait, from a parent of --rss-mib MiB", .kind = K_FORK,
     .run = start_run, .iters = 100, .data = &start_family},
    {"vfork-exec", CL_CORRECT, "vfork + exec of a tiny program + wait", .kind = K_VFORK_EXEC,
     .run = start_run, .iters = 100, .data = &start_family},
    {"spawn", CL_CORRECT, "posix_spawn of a tiny program + wait", .kind = K_SPAWN, .run = start_run,
     .iters = 100, .data = &start_family},
    {"forkserver", CL_CORRECT, "a small server, started first, forks on request",
     .kind = K_FORKSERVER, .run = start_run, .iters = 100, .data = &start_family},
    {"fork-after-threads", CL_HANGS,
     "fork while a thread holds the logger's lock: the child waits for it for ever",
     .kind = K_FORK_AFTER_THREADS, .run = hazard_run, .iters = 20, .data = &hazard_family},
    {"atfork", CL_CORRECT, "the same, with pthread_atfork handlers around the lock",
     .kind = K_ATFORK, .run = hazard_run, .iters = 20, .data = &hazard_family},
    {"spawn-instead", CL_CORRECT, "the same children started by posix_spawn: a new program",
     .kind = K_SPAWN_INSTEAD, .run = hazard_run, .iters = 20, .data = &hazard_family},
    {"shared-racy", CL_WRONG, "counter++ in shared memory from --procs processes",
     .kind = K_SHARED_RACY, .run = shared_run, .iters = 1000000, .data = &shared_family},
    {"shared-mutex", CL_CORRECT, "the same under a PTHREAD_PROCESS_SHARED mutex",
     .kind = K_SHARED_MUTEX, .run = shared_run, .iters = 1000000, .data = &shared_family},
    {"shared-atomic", CL_CORRECT, "the same with an atomic add", .kind = K_SHARED_ATOMIC,
     .run = shared_run, .iters = 1000000, .data = &shared_family},
    {"robust", CL_CORRECT, "a child killed holding a robust shared mutex: EOWNERDEAD, repair",
     .kind = K_ROBUST, .run = robust_run, .iters = 3, .data = &robust_family},
    {"not-robust", CL_HANGS, "the same with a plain shared mutex: locked for ever",
     .kind = K_NOT_ROBUST, .run = robust_run, .iters = 3, .data = &robust_family},
    {"pipe-queue", CL_CORRECT, "tasks and results through two pipes, a stop message per worker",
     .kind = K_PIPE_QUEUE, .run = queue_run, .iters = 1000, .data = &queue_family},
    {"join-before-drain", CL_HANGS, "wait for the child before reading what it wrote",
     .kind = K_JOIN_BEFORE_DRAIN, .run = drain_run, .iters = 1, .max_iters = 1,
     .data = &drain_family},
    {"drain-then-join", CL_CORRECT, "read what the child wrote, then wait for it",
     .kind = K_DRAIN_THEN_JOIN, .run = drain_run, .iters = 1, .max_iters = 1,
     .data = &drain_family},
    {"ipc", CL_CORRECT, "message round trips: pipe, socketpair, mq, shared ring, eventfd",
     .kind = K_IPC, .run = ipc_run, .iters = 5000, .data = &ipc_family},
    {"shm-vs-copy", CL_CORRECT, "an array doubled by a child: through pipes vs shared memory",
     .kind = K_SHM_VS_COPY, .run = copy_run, .iters = 10, .data = &copy_family},
    {"chunk-lock", CL_SLOW, "disjoint chunks, one shared lock held around each",
     .kind = K_CHUNK_LOCK, .run = chunk_run, .iters = 500000, .data = &chunk_family},
    {"chunk-nolock", CL_CORRECT, "disjoint chunks, no lock", .kind = K_CHUNK_NOLOCK,
     .run = chunk_run, .iters = 500000, .data = &chunk_family},
    {"sigterm", CL_CORRECT, "workers drain on SIGTERM (signalfd), against SIGKILL",
     .kind = K_SIGTERM, .run = sigterm_run, .iters = 100000, .data = &sigterm_family},
    {"supervise", CL_CORRECT, "per-child deadlines: status in shared memory, pidfd or waitpid",
     .kind = K_SUPERVISE, .run = supervise_run, .iters = 1, .max_iters = 1,
     .data = &supervise_family},
    {"log-pipe", CL_CORRECT, "processes writing lines to one pipe: whole up to PIPE_BUF",
     .kind = K_LOG_PIPE, .run = logpipe_run, .iters = 1000, .data = &logpipe_family},
};

static const struct cl_param params[] = {
    [RSS_MIB] = {"rss-mib",
                 "start variants: memory the parent touches first, in MiB (at most "
                 "half of MemAvailable)",
                 .def = 0, .min = 0, .max = 4096},
    [PROCS] = {"procs", "child processes of the multi-process variants", .min = 1, .max = MAX_PROCS,
               .unset = "per variant: 2, or 4 for chunk-*, pipe-queue, "
                        "supervise and log-pipe"},
    [MSG_BYTES] = {"msg-bytes", "ipc: the message size in bytes", .def = 64, .min = 1,
                   .max = 65536},
    [MECH] = {"mech", "ipc: one mechanism, or all", .def = 7, .choices = mech_names},
    [BYTES] = {"bytes", "join-before-drain, drain-then-join: what the child writes", .min = 1,
               .max = 64 << 20, .unset = "the pipe's capacity + 4096"},
    [LINE_BYTES] = {"line-bytes", "log-pipe: bytes per line, newline included", .def = 256,
                    .min = 32, .max = 1 << 20},
    [SLOW_READER_US] = {"slow-reader-us", "log-pipe: the reader's pause after each 4 KiB read",
                        .def = 0, .min = 0, .max = 100000},
    [ITEM_US] = {"item-us", "sigterm: CPU time per item, in microseconds", .def = 2000, .min = 1,
                 .max = 1000000},
    [TERM_AFTER_MS] = {"term-after-ms", "sigterm: when the workers are signalled", .def = 100,
                       .min = 1, .max = 600000},
    [DEADLINE_MS] = {"deadline-ms", "supervise: each child's deadline", .def = 100, .min = 10,
                     .max = 600000},
    [LATE] = {"late", "supervise: how many children (the last ones) overrun", .def = 1, .min = 0,
              .max = MAX_PROCS},
    [WAIT] = {"wait", "supervise: how the parent waits", .choices = wait_names},
    [START] = {"start", "supervise: how the children start", .choices = start_names},
    [MIB] = {"mib", "shm-vs-copy: the array's size in MiB", .def = 4, .min = 1, .max = 256},
};

static const struct family *family(const struct cl_run *run)
{
    return run->variant->data;
}

static int prepare(struct cl_run *run, char *err, size_t len)
{
    int kind = run->variant->kind;
    long long rss = cl_param(run, RSS_MIB);
    long long kib = proc_number("/proc/meminfo", "MemAvailable:");
    long long avail = kib < 0 ? -1 : kib / 1024; /* MiB */
    if (rss > 0 && avail >= 0 && rss > avail / 2) {
        char a[32];
        snprintf(err, len, "procs: --rss-mib %lld: at most half of MemAvailable (%s MiB) allowed",
                 rss, cl_fmt_count((uint64_t)avail / 2, a));
        return 1;
    }
    bool four = kind == K_CHUNK_LOCK || kind == K_CHUNK_NOLOCK || kind == K_PIPE_QUEUE ||
                kind == K_SUPERVISE || kind == K_LOG_PIPE;
    bool many = four || kind == K_SHARED_RACY || kind == K_SHARED_MUTEX ||
                kind == K_SHARED_ATOMIC || kind == K_SIGTERM;
    if (!cl_param_given(run, PROCS))
        run->param[PROCS] = four ? 4 : 2;
    run->threads = many ? (int)cl_param(run, PROCS) : 1; /* a record per child */
    if (kind == K_SUPERVISE && cl_param(run, LATE) > cl_param(run, PROCS)) {
        snprintf(err, len, "procs: --late %lld: at most --procs (%lld)", cl_param(run, LATE),
                 cl_param(run, PROCS));
        return 1;
    }
    uint64_t cells = (uint64_t)run->threads * run->iters;
    if ((kind == K_CHUNK_LOCK || kind == K_CHUNK_NOLOCK) && cells > (32u << 20)) {
        snprintf(err, len, "procs: --procs x --iters: at most 33,554,432 elements (256 MiB)");
        return 1;
    }
    if (kind == K_LOG_PIPE && cells * (uint64_t)cl_param(run, LINE_BYTES) > (256u << 20)) {
        snprintf(err, len, "procs: --procs x --iters x --line-bytes: at most 256 MiB in all");
        return 1;
    }
    if (kind == K_IPC)
        return ipc_prepare(run, err, len);
    if (kind == K_JOIN_BEFORE_DRAIN || kind == K_DRAIN_THEN_JOIN)
        return drain_prepare(run, err, len);
    return 0;
}

static void setup(const struct cl_run *run)
{
    if (family(run)->setup != NULL)
        family(run)->setup(run);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    if (family(run)->check != NULL)
        family(run)->check(run, res);
}

static void report(int fd, const struct cl_run *run)
{
    if (family(run)->report != NULL)
        family(run)->report(fd, run);
}

static void teardown(const struct cl_run *run)
{
    if (family(run)->teardown != NULL)
        family(run)->teardown(run);
}

/* SIGTERM is the sigterm variant's: blocked everywhere before any thread starts,
 * read from a signalfd. */
static const int blocked[] = {SIGTERM, 0};

static const struct cl_chapter procs = {
    .name = "procs",
    .summary = "processes: what starting one costs, what goes wrong between them, and what "
               "moving data between them costs",
    .look_for = "each variant starts child processes and checks what they did; watch the cost "
                "per start against the parent's size, the hangs the watchdog explains, and "
                "the round trips per second of each IPC mechanism",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 2,
    .blocked_signals = blocked,
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
    .teardown = teardown,
};

/* This program in a worker mode: "procs-worker ROLE PARENT ARGS...". */
static int worker_main(int argc, char **argv)
{
    static const struct {
        const char *role;
        int (*main)(int argc, char **argv);
    } roles[] = {{"forkserver", forkserver_main}, {"logger", logger_main}, {"locker", locker_main},
                 {"counter", counter_main},       {"chunk", chunk_main},   {"task", task_main}};
    for (size_t i = 0; argc >= 3 && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(argv[1], roles[i].role) == 0)
            return roles[i].main(argc - 2, argv + 2);
    fprintf(stderr, "procs-worker: no such role\n");
    return CL_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* A write to a pipe whose reader died returns EPIPE instead of killing. */
    signal(SIGPIPE, SIG_IGN);
    if (argc > 0 && strcmp(argv[0], WORKER_ARGV0) == 0)
        return worker_main(argc, argv);
    return cl_main(&procs, argc, argv);
}
