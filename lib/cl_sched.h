/* A thread's state as the scheduler sees it, read from the kernel: the files
 * of /proc/self/task/TID/, sampled by another thread of the same process.
 *
 *   stat       the state letter: R is on a CPU or ready for one, S and D asleep
 *   wchan      the kernel function an asleep thread waits in: a futex wait (a
 *              lock, a condition variable) or a nanosleep
 *   syscall    the system call an asleep thread is in, when wchan says "0"
 *   schedstat  time on a CPU, and time spent ready in a run queue
 *
 * R alone cannot tell running from runnable; the run-queue time can, after the
 * fact: the kernel adds a wait to it when the wait ends. cl_sched_label turns a
 * series of samples into spans of the cl_trace kinds running, runnable,
 * blocked, sleeping and exited. Linux only; a sample costs four pread calls. */
#ifndef CL_SCHED_H
#define CL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cl_trace.h"

/* One reading of a thread's files. */
struct cl_sched_sample {
    uint64_t t_ns;      /* cl_now_ns() just before the reading */
    char state;         /* stat's letter (R, S, D, ...); 0 once the thread is gone */
    char wchan[40];     /* "futex_do_wait", "hrtimer_nanosleep", ...; "0" on a CPU */
    long syscall;       /* the call it is asleep in; -1 when running or unknown */
    uint64_t cpu_ns;    /* schedstat: time on a CPU so far */
    uint64_t queued_ns; /* schedstat: time ready in a run queue so far */
};

/* The thread's files, kept open for its whole life: stat, wchan, syscall,
 * schedstat, in that order (-1: closed). */
#define CL_SCHED_FILES 4
struct cl_sched_probe {
    int fd[CL_SCHED_FILES];
};

/* Open thread tid's files (a thread of this process): 0, or the errno. */
int cl_sched_open(struct cl_sched_probe *p, pid_t tid);

/* Read them now into *s. False once the thread has exited (s->state is 0). */
bool cl_sched_read(const struct cl_sched_probe *p, struct cl_sched_sample *s);

void cl_sched_close(struct cl_sched_probe *p);

/* What one sample says on its own: exited (gone, or X or Z), sleeping (asleep
 * in a nanosleep), blocked (asleep in anything else) or running (R: on a CPU
 * or ready for one; only the next samples can tell which). */
enum cl_span_kind cl_sched_kind(const struct cl_sched_sample *s);

/* Label n samples in time order: kinds[i] is what the thread did from sample i
 * to sample i + 1. Each is cl_sched_kind, except that where the run-queue time
 * grew by d between two samples, the R intervals before the growth, counted
 * back from it, are runnable for about d (an interval counts when at least half
 * of it is covered) instead of running. */
void cl_sched_label(const struct cl_sched_sample *s, size_t n, enum cl_span_kind *kinds);

/* Add the labelled samples to a trace buffer as spans, neighbours of one kind
 * merged; the last sample's span ends at end_ns. */
void cl_sched_add_spans(struct cl_trace_buf *b, const struct cl_sched_sample *s,
                        const enum cl_span_kind *kinds, size_t n, uint64_t end_ns);

#endif
