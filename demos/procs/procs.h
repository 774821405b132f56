/* procs: what the chapter's files share. procs.c holds the table of variants, the
 * flags and the hooks; each family of variants lives in a file of its own:
 *   start.c    fork, vfork-exec, spawn, forkserver: the cost of starting a child
 *   hazards.c  fork-after-threads, atfork, spawn-instead; robust, not-robust
 *   shared.c   shared-racy, shared-mutex, shared-atomic; chunk-lock, chunk-nolock
 *   copy.c     shm-vs-copy
 *   ipc.c      a message round trip per mechanism
 *   pipes.c    pipe-queue, join-before-drain, drain-then-join, log-pipe
 *   signals.c  sigterm, supervise
 *   util.c     shared-memory names, this program spawned as a worker, futexes
 *
 * Two kinds of children. A child forked from the demo (which always has a second
 * thread: lib's watchdog) calls only system calls, atomics and plain memory
 * operations, as POSIX requires of the child of a threaded process. A child that
 * must do more (lock a pthread mutex, start from a clean process) is this same
 * program started with posix_spawn in a worker mode: argv[0] "procs-worker",
 * then its role and the parent's pid. */
#ifndef PROCS_H
#define PROCS_H

#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conclab.h"

/* The chapter's flags (indexes into its cl_param table). */
enum param {
    RSS_MIB,        /* start: the parent's touched memory */
    PROCS,          /* child processes of the multi-process variants */
    MSG_BYTES,      /* ipc: the message size */
    MECH,           /* ipc: which mechanism, or all */
    BYTES,          /* join-before-drain, drain-then-join: what the child writes */
    LINE_BYTES,     /* log-pipe: the length of a line */
    SLOW_READER_US, /* log-pipe: the reader's pause between reads */
    ITEM_US,        /* sigterm: CPU time per item */
    TERM_AFTER_MS,  /* sigterm: when the workers are told to stop */
    DEADLINE_MS,    /* supervise: each child's deadline */
    LATE,           /* supervise: how many children overrun it */
    WAIT,           /* supervise: pidfd or waitpid */
    START,          /* supervise: fork or spawn the children */
    MIB,            /* shm-vs-copy: the array's size */
};

enum { WAIT_PIDFD, WAIT_WAITPID };  /* --wait */
enum { START_FORK, START_SPAWN };   /* --start */
enum { MAX_PROCS = 64 };            /* --procs */
#define WORKER_ARGV0 "procs-worker" /* argv[0] of this program in a worker mode */

/* What each variant is; a family's hooks read it. */
enum kind {
    K_FORK,
    K_VFORK_EXEC,
    K_SPAWN,
    K_FORKSERVER,
    K_FORK_AFTER_THREADS,
    K_ATFORK,
    K_SPAWN_INSTEAD,
    K_SHARED_RACY,
    K_SHARED_MUTEX,
    K_SHARED_ATOMIC,
    K_ROBUST,
    K_NOT_ROBUST,
    K_PIPE_QUEUE,
    K_JOIN_BEFORE_DRAIN,
    K_DRAIN_THEN_JOIN,
    K_IPC,
    K_SHM_VS_COPY,
    K_CHUNK_LOCK,
    K_CHUNK_NOLOCK,
    K_SIGTERM,
    K_SUPERVISE,
    K_LOG_PIPE,
};

/* A family's hooks (each optional): the chapter's hooks call the variant's. */
struct family {
    void (*setup)(const struct cl_run *run);
    void (*check)(const struct cl_run *run, struct cl_result *res);
    void (*report)(int fd, const struct cl_run *run);
    void (*teardown)(const struct cl_run *run);
};

extern const struct family start_family, hazard_family, robust_family, shared_family, chunk_family,
    copy_family, ipc_family, queue_family, drain_family, logpipe_family, sigterm_family,
    supervise_family;

/* The variants' run functions. */
void start_run(struct cl_run *run);
void hazard_run(struct cl_run *run);
void robust_run(struct cl_run *run);
void shared_run(struct cl_run *run);
void chunk_run(struct cl_run *run);
void copy_run(struct cl_run *run);
void ipc_run(struct cl_run *run);
void queue_run(struct cl_run *run);
void drain_run(struct cl_run *run);
void logpipe_run(struct cl_run *run);
void sigterm_run(struct cl_run *run);
void supervise_run(struct cl_run *run);

/* The worker modes: main() of this program started as "procs-worker ROLE PARENT
 * ARGS...", argv from ARGS on. Each returns the exit status. */
int forkserver_main(int argc, char **argv);
int logger_main(int argc, char **argv);
int locker_main(int argc, char **argv);
int counter_main(int argc, char **argv);
int chunk_main(int argc, char **argv);
int task_main(int argc, char **argv);

/* prepare's checks that need a family's knowledge; 0, or nonzero with one line
 * in err. */
int ipc_prepare(struct cl_run *run, char *err, size_t len);
int drain_prepare(struct cl_run *run, char *err, size_t len);

/* ---------------------------------------------------------------- util.c */

/* A shared-memory object /conclab-<pid>-<what> of `bytes`, zeroed and mapped
 * shared. Its name is removed however the process ends (cl_on_exit), or sooner
 * by shm_remove; *name (for a worker's command line) lives as long. */
void *shm_make(const struct cl_run *run, const char *what, size_t bytes, const char **name);

/* Unmap and remove an object made by shm_make. */
void shm_remove(void *p, size_t bytes, const char *name);

/* In a worker: open and map an object by name; NULL (errno set) if it cannot. */
void *shm_attach(const char *name, size_t bytes);

/* Start this program as a worker, "procs-worker ROLE PARENT ARGS..." (args
 * NULL-terminated), with file actions fa (or NULL); registered with lib. A
 * refusal ends the run with exit 4. */
pid_t spawn_worker(const struct cl_run *run, const char *role, const char *const args[],
                   const posix_spawn_file_actions_t *fa);

/* In a worker: the common start (die with the parent) and its arguments; an
 * argument that is not a number ends the worker with exit 2. */
void worker_start(int argc, char **argv, int want);
long long worker_arg(char **argv, int i);

/* A start gate across processes, in shared memory: workers arrive and sleep
 * until the parent opens it, so that they start within microseconds. */
struct gate {
    _Atomic uint32_t arrived;
    _Atomic uint32_t open; /* a futex word: 0 closed, 1 open */
    uint64_t opened_ns;    /* CLOCK_MONOTONIC, the same in every process */
};
void gate_wait(struct gate *g);
/* Parent: wait until n workers have arrived (a worker that dies first ends the
 * run as a wrong result: returns false), then open. */
bool gate_open_when_ready(struct cl_run *run, struct gate *g, int n, const pid_t *pids);

/* Wait for children pids[0..n), each status into status[i]; meanwhile copy
 * progress(i) (a counter a spawned worker keeps in shared memory) into the
 * run's record i, so that the watchdog sees them work. */
void wait_mirrored(struct cl_run *run, const pid_t *pids, int n, uint64_t (*progress)(int i),
                   int *status);

/* futex(2) on a word in shared memory (not FUTEX_PRIVATE: other processes). */
long futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);
long futex_wake(_Atomic uint32_t *word, int n);

/* Pin this process to the i-th CPU it may use, when there are at least n. */
void pin_process(int i, int n);

/* "exit 0", "exit 3", "killed by SIGKILL". */
const char *status_text(int status, char *buf, size_t len);

/* read and write the whole of n bytes, retrying short counts and EINTR; the
 * bytes moved (less than n only at end of file). */
size_t read_full(int fd, void *buf, size_t n);
size_t write_full(int fd, const void *buf, size_t n);

/* The number after `key` on a line of a /proc or /sys file, or the file's first
 * number when key is NULL; -1 if there is none. */
long long proc_number(const char *path, const char *key);

/* A decimal number into buf without stdio (async-signal-safe); its length. */
size_t fmt_u64(char *buf, uint64_t v);

#endif
