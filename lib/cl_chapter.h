/* What a chapter declares: its variants, their tags, its own flags and hooks. */
#ifndef CL_CHAPTER_H
#define CL_CHAPTER_H

#include <stddef.h>
#include <stdint.h>

struct cl_worker;
struct cl_run;
struct cl_result;

/* What a variant is meant to show (DESIGN.md, "Declared expectations"). */
enum cl_tag {
    CL_CORRECT = 1u << 0,    /* must produce the exact result */
    CL_WRONG = 1u << 1,      /* a logic bug, reported as a wrong result */
    CL_RACY = 1u << 2,       /* a data race that TSan reports */
    CL_LOCK_ORDER = 1u << 3, /* inverted lock orders, reported by TSan and Helgrind */
    CL_HANGS = 1u << 4,      /* ends through the watchdog with exit 3 */
};

struct cl_variant {
    const char *name;
    unsigned tags;
    const char *desc;
    void (*worker)(struct cl_worker *w); /* the lesson: one thread's whole job */
    int threads;                         /* default thread count */
    uint64_t iters;                      /* default operations per thread */
    uint64_t max_iters;                  /* cap on --iters, 0 for none */
    const void *data;                    /* the chapter's own per-variant data */
};

/* A chapter's own integer flag, such as --window-us. */
struct cl_param {
    const char *name; /* long option, without the dashes */
    const char *help;
    long long def, min, max;
};

struct cl_chapter {
    const char *name;
    const char *look_for; /* the header line: what to watch for */
    const struct cl_variant *variants;
    size_t nvariants;
    const struct cl_param *params;
    size_t nparams;
    double timeout_s; /* default --timeout */
    /* Give each worker a CPU of its own when there are no more threads than CPUs.
     * Left to the scheduler, two threads woken together often share a core for
     * milliseconds: a short racy loop then never overlaps, and a spinning waiter
     * (spin barrier, SPSC ring) burns the slice its partner needs. The price: a
     * pinned thread that sleeps cannot move to an idle CPU when it wakes, which
     * made the pthread barrier stencil slower on the 2-vCPU VM. */
    bool pin_threads;
    /* Optional, parallel to params: a flag that takes a name (--shutdown close)
     * has its NULL-terminated list of names here, and its value is the index of
     * the name given (its min and max are then 0 and the count - 1). A NULL
     * entry, or a NULL array, is an integer flag. */
    const char *const *const *param_choices;
    /* Optional, parallel to params: decimals > 0 makes a fixed-point flag, held
     * in units of 10^-decimals (--cpu-fraction 0.25 with 2 decimals is 25; its
     * def, min and max are in the same units). NULL: every flag is whole. */
    const int *param_decimals;
    /* Hooks, each optional.
     * prepare: adjust the run once the defaults are applied (threads = producers +
     *   consumers, say), or refuse a combination: return nonzero with one line
     *   in err naming the flags, and the demo exits 2.
     * setup: reset the shared state before the threads start.
     * check: judge the result after the threads are joined.
     * report: after the watchdog's per-thread lines, the chapter's own state
     *   (who holds which lock, how full the buffer is). It runs while workers are
     *   stuck, so it must take no lock they might hold: read atomics only. */
    int (*prepare)(struct cl_run *run, char *err, size_t errlen);
    void (*setup)(const struct cl_run *run);
    void (*check)(const struct cl_run *run, struct cl_result *res);
    void (*report)(int fd, const struct cl_run *run);
};

#endif
