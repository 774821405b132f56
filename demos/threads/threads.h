/* threads: what a thread is, how it starts, ends, hands back a result and
 * stops, what the kernel says it is doing, and what it costs.
 *
 * Every variant is a .run variant: its run function starts its own threads
 * with pthread_create, because starting and joining them is the lesson. The
 * files split the chapter by theme:
 *   threads.c   the table of variants, the flags, prepare and check
 *   basics.c    create-join, shared-vs-private, result, join-timeout,
 *               timedjoin, thread-local
 *   stop.c      stop-flag, stop-cond, detached (and its child process)
 *   observe.c   lifecycle, timeline: the scheduler's view
 *   memory.c    memory: many blocked threads and what they cost */
#ifndef THREADS_H
#define THREADS_H

#include <pthread.h>
#include <stddef.h>

#include "conclab.h"

/* The chapter's flags, indices into cl_param(). */
enum {
    SLEEP_MS,  /* create-join, result: the unit of sleep */
    TASK_MS,   /* join-timeout, timedjoin: how long the task takes */
    WAIT_MS,   /* join-timeout, timedjoin: how long the caller waits */
    POLL_MS,   /* stop-flag, stop-cond: how often the worker looks */
    MAIN_EXIT, /* detached: how the child's main ends */
    BEATS,     /* detached: heartbeats the detached thread means to write */
    CPUS,      /* timeline: CPUs of the first pass */
    SIZE,      /* timeline: numbers summed by each task */
    COUNT,     /* memory: threads */
    STACK_KIB, /* memory: each thread's stack */
    NPARAMS
};

enum main_exit { MAIN_RETURNS, MAIN_PTHREAD_EXIT }; /* --main-exit's choices */

/* Which variant: a function of threads.c's table reads this, never a name. */
enum kind {
    CREATE_JOIN,
    SHARED_PRIVATE,
    RESULT,
    JOIN_TIMEOUT,
    TIMEDJOIN,
    STOP_FLAG,
    STOP_COND,
    DETACHED,
    THREAD_LOCAL,
    LIFECYCLE,
    TIMELINE,
    MEMORY,
};

#define MS_NS 1000000ull

/* pthread_create failed with err after `made` of `want` threads: let the
 * made ones finish (release, if not NULL, wakes the ones that wait), join
 * them (tids NULL: they cannot finish, and the exit ends them), then end the
 * run as lib ends a refused worker: one line, exit 4. */
_Noreturn void refuse_threads(const struct cl_run *run, int err, const pthread_t *tids, int made,
                              int want, void (*release)(void));

/* basics.c */
void run_create_join(struct cl_run *run);
void check_create_join(const struct cl_run *run, struct cl_result *res);
void run_shared(struct cl_run *run);
void check_shared(const struct cl_run *run, struct cl_result *res);
void run_result(struct cl_run *run);
void check_result(const struct cl_run *run, struct cl_result *res);
void run_join_timeout(struct cl_run *run);
void run_timedjoin(struct cl_run *run);
void check_joins(const struct cl_run *run, struct cl_result *res);
void run_thread_local(struct cl_run *run);
void check_thread_local(const struct cl_run *run, struct cl_result *res);
void setup_basics(const struct cl_run *run);
void teardown_basics(void);

/* stop.c */
void run_stop(struct cl_run *run);
void check_stop(const struct cl_run *run, struct cl_result *res);
void run_detached(struct cl_run *run);
void check_detached(const struct cl_run *run, struct cl_result *res);
void teardown_stop(void);
#define HEARTBEAT_CHILD "--heartbeat-child" /* argv[1] of the detached variant's child */
int heartbeat_child_main(int argc, char **argv);

/* observe.c */
void run_lifecycle(struct cl_run *run);
void check_lifecycle(const struct cl_run *run, struct cl_result *res);
void run_timeline(struct cl_run *run);
void check_timeline(const struct cl_run *run, struct cl_result *res);
void teardown_observe(void);

/* memory.c */
int prepare_memory(struct cl_run *run, char *err, size_t errlen);
void run_memory(struct cl_run *run);
void check_memory(const struct cl_run *run, struct cl_result *res);

#endif
