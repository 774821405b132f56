/* prodcons: what the shared producer and consumer loops (prodcons.c), the queue
 * designs (queues.c, backpressure.c) and the memory sampler (sampler.c) share. */
#ifndef PRODCONS_H
#define PRODCONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclab.h"

enum {
    PRODUCERS,
    CONSUMERS,
    CAPACITY,
    ITEMS,
    CONSUME_US,
    PRODUCE_US,
    SHUTDOWN,
    DURATION
}; /* flags */

#define PILL UINT64_MAX /* the poison pill: an id no producer makes */

/* Run-wide settings, fixed by setup before the threads start. */
extern int nprod, ncons;
extern size_t capacity;
extern uint64_t nitems; /* --items: the ids 0 .. nitems-1, shared out among the producers */

/* A queue design: how to put, get and close, and its default flags. get
 * returns false once the queue is closed and drained. */
struct design {
    void (*init)(void);
    void (*put)(struct cl_worker *w, uint64_t id);
    bool (*get)(struct cl_worker *w, uint64_t *id);
    void (*close)(void);
    void (*done)(void); /* after each get, pills too (the lib queue's task_done) */
    void (*fini)(void);
    void (*report)(int fd, const struct cl_run *run); /* for the watchdog: atomics only */
    size_t (*fill)(void); /* items in the buffer now, for the sampler (lock-free) */
    /* what this design counts of its own; called after the common verdict, which
     * it may amend */
    void (*metrics)(struct cl_result *res);
    /* for producers that stop early (priority): the ids producer p made, the
     * first of its share; NULL: every id was made */
    uint64_t (*made)(int producer);
    /* default flags: the variant's sizes, stated here only */
    int producers, consumers;
    size_t capacity;
    uint64_t items;
    int consume_us, produce_us;
    bool spsc; /* one producer and one consumer only */
};

/* The designs, in queues.c (moving many small items fast) and backpressure.c
 * (a fast producer against a slow consumer, with and without a bound). */
extern const struct design condvar_design, one_cond_design, semaphore_design, polling_design,
    ring_design, pipe_design, unbounded_design, bounded_design, watermarks_design, priority_design;

/* The priority design's worker (priority.c): its producers stop at --duration. */
void prioritised(struct cl_worker *w);

/* The shared loops' pieces, for a design with a producer of its own (prodcons.c):
 * note when a sampled id is put; stop the consumers once the last producer is
 * done; run the common consumer. */
void stamp_put(uint64_t id);
void producer_finished(struct cl_worker *w);
void consume_items(struct cl_worker *w);

/* lib's bounded queue (queues.c): the condvar design, and the backpressure
 * designs' bound; shut_down joins it. */
extern struct cl_queue queue;
void condvar_init(void);
void condvar_close(void);
size_t condvar_fill(void);
void condvar_report(int fd, const struct cl_run *run);

/* The queue designs' default items, or ITEMS_PER_SLOT per slot if fewer. */
#define QUEUE_ITEMS    200000
#define ITEMS_PER_SLOT 1000

/* Waiting for another thread to move, without a lock: a few polite spins, then
 * give the CPU away (the machine may have fewer cores than threads). */
void backoff(unsigned *spins);

/* A per-thread counter on a cache line of its own. */
struct padded {
    _Alignas(64) uint64_t n;
};

/* The sampler (sampler.c): every 2 ms, resident memory and the buffer's fill,
 * for the backpressure charts; a thread of the chapter's own, not a worker. */
void sampler_start(size_t (*fill)(void));
void sampler_stop(void);
bool sampler_running(void);
long sampler_rss_growth_kib(void);     /* the peak above the first sample; 0: no samples */
void sampler_write(const char *trace); /* with --trace FILE.csv: FILE.samples.tsv */
void sampler_free(void);

/* This process's peak resident memory in KiB (VmHWM). Not getrusage's
 * ru_maxrss, which Linux carries across exec: a demo started by a large parent
 * (the harness's Python) would report the parent's peak. */
long peak_rss_kib(void);

#endif
