#include "cl_lockdep.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_thread.h"

/* after[a] has bit b once some thread acquired class b while holding a. */
static _Atomic uint64_t after[CL_LOCKDEP_MAX_CLASSES];
static const char *names[CL_LOCKDEP_MAX_CLASSES];
static int nclasses;
static int who[CL_LOCKDEP_MAX_CLASSES][CL_LOCKDEP_MAX_CLASSES]; /* thread that made each edge */
static int out_fd = STDERR_FILENO;
static _Atomic size_t nreports;
static _Atomic size_t untracked; /* acquisitions past CL_LOCKDEP_MAX_HELD */
static char first[256];
static pthread_mutex_t slow = PTHREAD_MUTEX_INITIALIZER; /* new edges only */

/* This thread's held classes, innermost last. */
static _Thread_local int held[CL_LOCKDEP_MAX_HELD];
static _Thread_local int nheld;

void cl_lockdep_reset(int fd)
{
    CL_PT(pthread_mutex_lock(&slow));
    for (int i = 0; i < CL_LOCKDEP_MAX_CLASSES; i++)
        atomic_store(&after[i], 0);
    nclasses = 0;
    out_fd = fd;
    atomic_store(&nreports, 0);
    atomic_store(&untracked, 0);
    first[0] = '\0';
    CL_PT(pthread_mutex_unlock(&slow));
}

int cl_lockdep_class(const char *name)
{
    if (nclasses == CL_LOCKDEP_MAX_CLASSES)
        return -1;
    names[nclasses] = name;
    return nclasses++;
}

bool cl_lockdep_edge(int from, int to)
{
    return (atomic_load_explicit(&after[from], memory_order_relaxed) >> to) & 1u;
}

/* Is `to` reachable from `from` through recorded edges? (Under `slow`.) */
static bool reaches(int from, int to)
{
    uint64_t seen = 0, frontier = 1ull << from;
    while (frontier != 0) {
        int c = __builtin_ctzll(frontier);
        frontier &= frontier - 1;
        if (c == to)
            return true;
        if (seen & (1ull << c))
            continue;
        seen |= 1ull << c;
        frontier |= atomic_load_explicit(&after[c], memory_order_relaxed) & ~seen;
    }
    return false;
}

/* Under `slow`. */
static void report(const char *text)
{
    if (atomic_fetch_add(&nreports, 1) == 0)
        snprintf(first, sizeof first, "%s", text);
    dprintf(out_fd, "lockdep: %s\n", text);
}

static int me(void)
{
    return cl_thread_id() + 1; /* T1, T2, ...; T0 for an unnamed thread */
}

/* A new edge h -> c: record it, unless it closes a cycle, which is reported. */
static void new_edge(int h, int c)
{
    CL_PT(pthread_mutex_lock(&slow));
    if (!cl_lockdep_edge(h, c)) {
        if (reaches(c, h)) {
            char text[256], how[64] = "through other locks";
            bool direct = cl_lockdep_edge(c, h);
            if (direct && who[c][h] > 0)
                snprintf(how, sizeof how, "by T%d", who[c][h]);
            snprintf(text, sizeof text,
                     "possible deadlock: T%d takes %s while holding %s, but %s was taken %s %s "
                     "before, %s (lock order %s -> %s%s inverted)",
                     me(), names[c], names[h], names[h], direct ? "while holding" : "after",
                     names[c], direct && who[c][h] == 0 ? "elsewhere" : how, names[c],
                     direct ? "" : "... -> ", names[h]);
            report(text);
        }
        who[h][c] = me();
        atomic_fetch_or_explicit(&after[h], 1ull << c, memory_order_relaxed);
    }
    CL_PT(pthread_mutex_unlock(&slow));
}

/* Remember cls as held; past the limit, say once that checking stops there. */
static void hold(int cls)
{
    if (nheld < CL_LOCKDEP_MAX_HELD) {
        held[nheld++] = cls;
        return;
    }
    if (atomic_fetch_add(&untracked, 1) == 0)
        dprintf(out_fd,
                "lockdep: T%d holds more than %d classes at once: %s and deeper locks are "
                "not checked\n",
                me(), CL_LOCKDEP_MAX_HELD, names[cls]);
}

void cl_lockdep_acquire(int cls)
{
    for (int i = 0; i < nheld; i++) {
        int h = held[i];
        if (h == cls) {
            char text[256];
            snprintf(text, sizeof text,
                     "possible deadlock: T%d takes %s while already holding it (self-deadlock "
                     "on a non-recursive lock)",
                     me(), names[cls]);
            CL_PT(pthread_mutex_lock(&slow));
            report(text);
            CL_PT(pthread_mutex_unlock(&slow));
        } else if (!cl_lockdep_edge(h, cls))
            new_edge(h, cls);
    }
    hold(cls);
}

void cl_lockdep_acquired_try(int cls)
{
    hold(cls);
}

void cl_lockdep_release(int cls)
{
    for (int i = nheld - 1; i >= 0; i--)
        if (held[i] == cls) {
            memmove(&held[i], &held[i + 1], (size_t)(nheld - 1 - i) * sizeof held[0]);
            nheld--;
            return;
        }
}

size_t cl_lockdep_untracked(void)
{
    return atomic_load(&untracked);
}

size_t cl_lockdep_reports(void)
{
    return atomic_load(&nreports);
}

const char *cl_lockdep_first_report(void)
{
    return first;
}
