/* prodcons: priority. A heap under a mutex with two condition variables, the
 * lowest number first, as Python's PriorityQueue; within one priority, first
 * in, first out. Its producers run for --duration and outrun its consumers:
 * while they do, the lowest priority waits (starvation); once they stop, the
 * consumers drain everything.
 *
 * The consumer checks the order under the queue's lock, against counts of the
 * queued items per priority that are kept apart from the heap: it must never
 * take an item while one of a higher priority is queued, nor a later item of
 * its priority before an earlier one. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "prodcons.h"

#define LEVELS 4 /* priorities 0 (first out) to 3; a pill comes after them all */

/* An item's priority: from its id, the same in every run. */
static int level_of(uint64_t id)
{
    if (id == PILL)
        return LEVELS;
    uint64_t s = id;
    return (int)(cl_splitmix64(&s) % LEVELS);
}

/* [snippet priority] */
struct entry {
    uint64_t key; /* priority << 56 | arrival number: the smallest leaves first */
    uint64_t id;
    uint64_t put_ns; /* when it was put, for its age */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct entry *heap; /* a binary min-heap on key: heap[0] is the next to leave */
    size_t len;
    uint64_t arrivals;
    bool closed;
    uint64_t queued[LEVELS + 1];   /* items queued per priority: the check's, not the heap's */
    uint64_t last_out[LEVELS + 1]; /* the arrival number last taken, per priority, + 1 */
    uint64_t out_of_order, checked, peak; /* what the check found; items checked; most queued */
    _Atomic size_t len_seen;              /* len, for the watchdog and the sampler */
} pq = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .not_empty = PTHREAD_COND_INITIALIZER,
        .not_full = PTHREAD_COND_INITIALIZER};

static void swap(size_t a, size_t b)
{
    struct entry t = pq.heap[a];
    pq.heap[a] = pq.heap[b];
    pq.heap[b] = t;
}

static void sift_up(size_t i)
{
    for (; i > 0 && pq.heap[(i - 1) / 2].key > pq.heap[i].key; i = (i - 1) / 2)
        swap(i, (i - 1) / 2);
}

static void sift_down(size_t i)
{
    for (;;) {
        size_t least = i, l = 2 * i + 1, r = l + 1;
        if (l < pq.len && pq.heap[l].key < pq.heap[least].key)
            least = l;
        if (r < pq.len && pq.heap[r].key < pq.heap[least].key)
            least = r;
        if (least == i)
            return;
        swap(i, least);
        i = least;
    }
}

static void priority_put(struct cl_worker *w, uint64_t id)
{
    int level = level_of(id);
    CL_PT(pthread_mutex_lock(&pq.mu));
    while (pq.len == capacity) {
        cl_status(w, "waits for room: heap full");
        CL_PT(pthread_cond_wait(&pq.not_full, &pq.mu));
    }
    cl_status(w, NULL);
    pq.heap[pq.len] = (struct entry){(uint64_t)level << 56 | pq.arrivals++, id, cl_now_ns()};
    sift_up(pq.len++);
    pq.queued[level]++;
    pq.peak = pq.len > pq.peak ? pq.len : pq.peak;
    atomic_store_explicit(&pq.len_seen, pq.len, memory_order_relaxed);
    CL_PT(pthread_cond_signal(&pq.not_empty));
    CL_PT(pthread_mutex_unlock(&pq.mu));
}

static uint64_t *age_ns; /* per id: how long it waited in the heap */
static void check_order(struct entry e);

static bool priority_get(struct cl_worker *w, uint64_t *id)
{
    CL_PT(pthread_mutex_lock(&pq.mu));
    while (pq.len == 0 && !pq.closed) {
        cl_status(w, "waits for an item: heap empty");
        CL_PT(pthread_cond_wait(&pq.not_empty, &pq.mu));
    }
    cl_status(w, NULL);
    bool got = pq.len > 0;
    if (got) {
        struct entry e = pq.heap[0]; /* the lowest key */
        pq.heap[0] = pq.heap[--pq.len];
        sift_down(0);
        check_order(e); /* still under the lock: the heap cannot change meanwhile */
        *id = e.id;
        if (e.id != PILL)
            age_ns[e.id] = cl_now_ns() - e.put_ns;
        atomic_store_explicit(&pq.len_seen, pq.len, memory_order_relaxed);
        CL_PT(pthread_cond_signal(&pq.not_full));
    }
    CL_PT(pthread_mutex_unlock(&pq.mu));
    return got;
}
/* [end priority] */

/* [snippet priority-check] */
/* Called with the lock held, for the entry just taken off the heap. */
static void check_order(struct entry e)
{
    int level = (int)(e.key >> 56);
    uint64_t arrival = e.key & ((1ull << 56) - 1);
    for (int higher = 0; higher < level; higher++)
        pq.out_of_order += pq.queued[higher] > 0;         /* a higher priority was waiting */
    pq.out_of_order += arrival + 1 <= pq.last_out[level]; /* overtook an earlier one */
    pq.last_out[level] = arrival + 1;
    pq.queued[level]--;
    pq.checked += e.id != PILL;
}
/* [end priority-check] */

/* [snippet priority-producer] */
static struct padded *made; /* per producer: ids made, the first of its share */

/* A producer of its own: it stops when --duration is over, not after --items. */
static void produce_for(struct cl_worker *w)
{
    uint64_t produce_ns = (uint64_t)cl_param(w->run, PRODUCE_US) * 1000;
    uint64_t stop_at = cl_now_ns() + (uint64_t)cl_param(w->run, DURATION) * 1000000;
    uint64_t id = (uint64_t)w->id;
    for (; id < nitems && cl_now_ns() < stop_at; id += (uint64_t)nprod) {
        if (produce_ns > 0)
            cl_busy_ns(produce_ns); /* making the item */
        stamp_put(id);
        priority_put(w, id);
        made[w->id].n++;
        cl_tick(w);
    }
    producer_finished(w); /* the last one stops the consumers */
}
/* [end priority-producer] */

void prioritised(struct cl_worker *w)
{
    if (w->id < nprod)
        produce_for(w);
    else
        consume_items(w);
}

static uint64_t priority_made(int producer)
{
    return made[producer].n;
}

static void priority_init(void)
{
    pq.heap = cl_xcalloc(capacity, sizeof *pq.heap);
    pq.len = 0;
    pq.arrivals = 0;
    pq.closed = false;
    for (int l = 0; l <= LEVELS; l++)
        pq.queued[l] = pq.last_out[l] = 0;
    pq.out_of_order = pq.checked = pq.peak = 0;
    atomic_store(&pq.len_seen, 0);
    age_ns = cl_xcalloc(nitems, sizeof *age_ns);
    made = cl_xaligned_calloc(64, (size_t)nprod, sizeof *made);
}

static void priority_close(void)
{
    CL_PT(pthread_mutex_lock(&pq.mu));
    pq.closed = true;
    CL_PT(pthread_cond_broadcast(&pq.not_empty));
    CL_PT(pthread_mutex_unlock(&pq.mu));
}

static void priority_fini(void)
{
    free(pq.heap);
    free(age_ns);
    free(made);
}

static size_t priority_fill(void)
{
    return atomic_load_explicit(&pq.len_seen, memory_order_relaxed);
}

static void priority_report(int fd, const struct cl_run *run)
{
    (void)run;
    dprintf(fd, "  heap: %zu of %zu slots used\n", priority_fill(), capacity);
}

/* The age of one priority's items at a percentile, in ms; -1 with none. */
static double age_ms(int level, int pct)
{
    uint64_t *ages = cl_xcalloc(nitems, sizeof *ages);
    size_t n = 0;
    for (uint64_t id = 0; id < nitems; id++)
        if (id / (uint64_t)nprod < made[id % (uint64_t)nprod].n && level_of(id) == level)
            ages[n++] = age_ns[id];
    cl_sort_ns(ages, n);
    size_t at = n * (size_t)pct / 100; /* the index of the percentile, as prodcons.c's */
    double ms = n > 0 ? (double)ages[at] / 1e6 : -1;
    free(ages);
    return ms;
}

/* After the common check: the order, and what waiting cost each priority. */
static void priority_metrics(struct cl_result *res)
{
    double high = age_ms(0, 99), low = age_ms(LEVELS - 1, 99), low50 = age_ms(LEVELS - 1, 50);
    cl_metric_int(res, "out_of_order", (long long)pq.out_of_order);
    cl_metric_int(res, "checked", (long long)pq.checked);
    cl_metric_int(res, "peak_queued", (long long)pq.peak);
    cl_metric_real(res, "high_p99_ms", high);
    cl_metric_real(res, "low_p50_ms", low50);
    cl_metric_real(res, "low_p99_ms", low);
    char a[32], common[256];
    snprintf(common, sizeof common, "%s", res->verdict);
    if (pq.out_of_order > 0) {
        res->exact = false;
        cl_verdict(res, "WRONG: %s items taken out of priority order; %s",
                   cl_fmt_count(pq.out_of_order, a), common);
    } else if (res->exact)
        cl_verdict(res,
                   "%s; in priority order: priority %d waited %.1f ms at p99, priority 0 %.1f ms",
                   common, LEVELS - 1, low, high);
}

/* One producer five times as fast as one consumer: 2 us against 10 us an item. */
const struct design priority_design = {.init = priority_init,
                                       .put = priority_put,
                                       .get = priority_get,
                                       .close = priority_close,
                                       .fini = priority_fini,
                                       .report = priority_report,
                                       .fill = priority_fill,
                                       .metrics = priority_metrics,
                                       .made = priority_made,
                                       .producers = 1,
                                       .consumers = 1,
                                       .capacity = 16384,
                                       .items = 1000000,
                                       .consume_us = 10,
                                       .produce_us = 2};
