/* What a chapter declares: its variants, their tags, its own flags and hooks.
 * lib/README.md states the contract these structures carry. */
#ifndef CL_CHAPTER_H
#define CL_CHAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cl_worker;
struct cl_run;
struct cl_result;

/* What a variant is meant to show; the tests, the sanitizer checks and the
 * harness all read these. */
enum cl_tag {
    CL_CORRECT = 1u << 0,    /* must produce the exact result */
    CL_WRONG = 1u << 1,      /* a logic bug, reported as a wrong result (exit 0) */
    CL_RACY = 1u << 2,       /* a data race TSan reports inside one process */
    CL_LOCK_ORDER = 1u << 3, /* inverted lock orders, reported by TSan and Helgrind */
    CL_HANGS = 1u << 4,      /* ends through the watchdog with exit 3 */
    CL_SLOW = 1u << 5,       /* exact and checked like correct; the lesson is its cost */
};

struct cl_variant {
    const char *name; /* for --variant and --list; never compared by a chapter */
    unsigned tags;    /* enum cl_tag bits */
    const char *desc; /* one line for --list */
    int kind;         /* the chapter's own enum: which family this variant is */
    /* The run shape: exactly one of the two.
     * worker: one thread's whole job; lib starts `threads` of them behind a
     *   start gate and joins them.
     * run: takes over the run (one loop thread, child processes, a server and
     *   its clients) on the main thread; lib still gives it the watchdog,
     *   Ctrl-C, timing, check, output and teardown. It may start worker threads
     *   itself with cl_run_workers. */
    void (*worker)(struct cl_worker *w);
    void (*run)(struct cl_run *run);
    /* Default threads (worker records for a .run variant). 0 for a .run
     * variant means --threads has no meaning there: lib refuses it (exit 2). */
    int threads;
    uint64_t iters;     /* default operations per thread */
    uint64_t max_iters; /* cap on --iters, 0 for none */
    /* Default --timeout for this variant, 0 for the chapter's: a hang that
     * shows itself at once, in a chapter whose other runs may be slow. */
    double timeout_s;
    const void *data; /* the chapter's own per-variant data, beyond its kind */
};

/* A chapter's own flag, such as --window-us: declared once, here. */
struct cl_param {
    const char *name;           /* long option, without the dashes */
    const char *help;           /* what it sets, for --help */
    long long def;              /* the default, in the flag's units */
    long long min, max;         /* the allowed range (a choice flag: ignored) */
    const char *const *choices; /* NULL-terminated names: the value is the index */
    int decimals;               /* > 0: a fixed-point flag, held in units of
                                   10^-decimals (0.25 with 2 decimals is 25) */
    const char *unset;          /* non-NULL: no fixed default; --help prints this
                                   text ("per variant", "all CPUs") and prepare
                                   fills the value in */
};

/* A named group of workers (readers and writers, producers and consumers). The
 * watchdog also ends a run when one role makes no progress for --timeout while
 * others do: starvation. */
struct cl_role {
    const char *name; /* "writers" */
    const char *ops;  /* what its operations are called: "writes" */
};

struct cl_chapter {
    const char *name;
    const char *summary;  /* one line: what the chapter is ("lost updates and the
                             ways to stop losing them"); --help, --list of the
                             conclab front-end, the man page's NAME */
    const char *look_for; /* the header line: what to watch for, and what one
                             operation is */
    const struct cl_variant *variants;
    size_t nvariants;
    const struct cl_param *params;
    size_t nparams;
    double timeout_s; /* default --timeout */
    int max_threads;  /* cap on --threads (and on a run's workers); 0: 4096 */
    /* Give each worker a CPU of its own when there are no more threads than CPUs.
     * Left to the scheduler, two threads woken together often share a core for
     * milliseconds: a short racy loop then never overlaps, and a spinning waiter
     * (spin barrier, SPSC ring) burns the slice its partner needs. The price: a
     * pinned thread that sleeps cannot move to an idle CPU when it wakes. */
    bool pin_threads;
    /* Signals lib blocks in every thread before it starts any (its watchdog
     * included), so that the chapter can read them from a signalfd; 0-ended.
     * SIGINT stays lib's. */
    const int *blocked_signals;
    /* Hooks, each optional. Phases in order: prepare, setup, the run, check,
     * the output, teardown. Ctrl-C in any of them gives the partial result and
     * exit 130.
     * prepare: adjust the run once the defaults are applied (threads = producers
     *   + consumers, a flag with no fixed default), or refuse a combination:
     *   return nonzero with one line in err naming the flags; the demo exits 2.
     * setup: make and reset the shared state before the run.
     * check: judge the result after the run; judge only, free nothing.
     * report: the watchdog's view of a hang after its per-thread lines (who
     *   holds which lock, how full the buffer is). It runs while workers are
     *   stuck, so it takes no lock they might hold: atomics only.
     * teardown: free what setup made.
     * role: the role of worker id, or NULL for none. */
    int (*prepare)(struct cl_run *run, char *err, size_t errlen);
    void (*setup)(const struct cl_run *run);
    void (*check)(const struct cl_run *run, struct cl_result *res);
    void (*report)(int fd, const struct cl_run *run);
    void (*teardown)(const struct cl_run *run);
    const struct cl_role *(*role)(const struct cl_run *run, int id);
};

#endif
