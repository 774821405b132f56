/* prodcons: backpressure. A fast producer and a slow consumer, with messages
 * worth keeping in memory: an unbounded list grows, a bounded queue makes the
 * producer wait, watermarks pause it with hysteresis. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prodcons.h"

/* A message worth keeping in memory, as a real queue of requests would hold. */
#define MSG_BYTES 4096
struct msg {
    struct msg *next;
    uint64_t id;
    char payload[MSG_BYTES - 2 * sizeof(uint64_t)];
};

static struct msg *make_msg(uint64_t id)
{
    struct msg *m = cl_xcalloc(1, sizeof *m);
    m->id = id;
    memset(m->payload, (int)(id & 0x7f), sizeof m->payload); /* really resident */
    return m;
}

static uint64_t take_msg(struct msg *m)
{
    uint64_t id = m->id;
    free(m);
    return id;
}

/* [snippet unbounded] */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty; /* only consumers ever wait: put never does */
    struct msg *first, *last;
    bool closed;
    _Atomic size_t len;
} msg_list = {.mu = PTHREAD_MUTEX_INITIALIZER, .not_empty = PTHREAD_COND_INITIALIZER};

static void unbounded_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    struct msg *m = make_msg(id);
    CL_PT(pthread_mutex_lock(&msg_list.mu));
    if (msg_list.last != NULL)
        msg_list.last->next = m;
    else
        msg_list.first = m;
    msg_list.last = m;
    atomic_fetch_add_explicit(&msg_list.len, 1, memory_order_relaxed); /* no limit: it grows */
    CL_PT(pthread_cond_signal(&msg_list.not_empty));
    CL_PT(pthread_mutex_unlock(&msg_list.mu));
}
/* [end unbounded] */

static bool unbounded_get(struct cl_worker *w, uint64_t *id)
{
    CL_PT(pthread_mutex_lock(&msg_list.mu));
    while (msg_list.first == NULL && !msg_list.closed) {
        cl_status(w, "waits for an item: list empty");
        CL_PT(pthread_cond_wait(&msg_list.not_empty, &msg_list.mu));
    }
    cl_status(w, NULL);
    struct msg *m = msg_list.first;
    if (m != NULL) {
        msg_list.first = m->next;
        if (msg_list.first == NULL)
            msg_list.last = NULL;
        atomic_fetch_sub_explicit(&msg_list.len, 1, memory_order_relaxed);
    }
    CL_PT(pthread_mutex_unlock(&msg_list.mu));
    if (m == NULL)
        return false;
    *id = take_msg(m);
    return true;
}

static void unbounded_init(void)
{
    msg_list.first = msg_list.last = NULL;
    msg_list.closed = false;
    atomic_store(&msg_list.len, 0);
}

static void unbounded_close(void)
{
    CL_PT(pthread_mutex_lock(&msg_list.mu));
    msg_list.closed = true;
    CL_PT(pthread_cond_broadcast(&msg_list.not_empty));
    CL_PT(pthread_mutex_unlock(&msg_list.mu));
}

static size_t unbounded_fill(void)
{
    return atomic_load_explicit(&msg_list.len, memory_order_relaxed);
}

static void unbounded_report(int fd, const struct cl_run *run)
{
    (void)run;
    dprintf(fd, "  list: %zu messages queued\n", unbounded_fill());
}

/* Time each producer spent blocked on a full queue (bounded). */
static struct padded *blocked;

/* [snippet bounded] */
static void bounded_put(struct cl_worker *w, uint64_t id)
{
    struct msg *m = make_msg(id);
    if (cl_queue_try_put(&queue, m) == CL_Q_FULL) { /* full: the consumer is behind */
        cl_status(w, "waits for room: queue full");
        uint64_t t = cl_now_ns();
        cl_queue_put(&queue, m); /* backpressure: the producer slows to its pace */
        uint64_t now = cl_now_ns();
        blocked[w->id].n += now - t;
        if (w->trace != NULL)
            cl_trace_add(w->trace, CL_SPAN_WAIT, t, now);
        cl_status(w, NULL);
    }
}
/* [end bounded] */

static bool bounded_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    void *m;
    if (cl_queue_get(&queue, &m) == CL_Q_CLOSED)
        return false;
    *id = take_msg(m);
    return true;
}

static void bounded_init(void)
{
    condvar_init();
    blocked = cl_xaligned_calloc(64, (size_t)nprod, sizeof *blocked);
}

static void bounded_metrics(struct cl_result *res)
{
    uint64_t ns = 0;
    for (int i = 0; i < nprod; i++)
        ns += blocked[i].n;
    cl_metric_real(res, "blocked_s", cl_seconds(ns));
}

static void bounded_fini(void)
{
    cl_queue_destroy(&queue);
    free(blocked);
}

/* Watermarks: the producer pauses when the queue reaches HIGH of its capacity,
 * and resumes only when it has drained to LOW; the gap (hysteresis) keeps it
 * from flapping on and off at one level. */
#define HIGH 0.8
#define LOW  0.3

/* [snippet watermarks] */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t resume;
    bool paused;
    _Atomic bool paused_seen; /* read by consumers without the lock */
    _Atomic uint64_t pauses, resumes;
    size_t high, low;
} watermarks = {.mu = PTHREAD_MUTEX_INITIALIZER, .resume = PTHREAD_COND_INITIALIZER};

static void watermarks_put(struct cl_worker *w, uint64_t id)
{
    bounded_put(w, id);
    if (cl_queue_len(&queue) < watermarks.high)
        return;
    CL_PT(pthread_mutex_lock(&watermarks.mu)); /* high water: stop producing */
    watermarks.paused = true;
    atomic_store(&watermarks.paused_seen, true);
    atomic_fetch_add(&watermarks.pauses, 1);
    cl_status(w, "paused at the high watermark");
    while (watermarks.paused &&
           cl_queue_len(&queue) > watermarks.low) /* the consumers may be there already */
        CL_PT(pthread_cond_wait(&watermarks.resume, &watermarks.mu));
    if (watermarks.paused) { /* drained before we slept: resume ourselves */
        watermarks.paused = false;
        atomic_store(&watermarks.paused_seen, false);
        atomic_fetch_add(&watermarks.resumes, 1);
    }
    cl_status(w, NULL);
    CL_PT(pthread_mutex_unlock(&watermarks.mu));
}

static bool watermarks_get(struct cl_worker *w, uint64_t *id)
{
    bool got = bounded_get(w, id);
    if (atomic_load(&watermarks.paused_seen) && cl_queue_len(&queue) <= watermarks.low) {
        CL_PT(pthread_mutex_lock(&watermarks.mu)); /* low water: let the producer go on */
        if (watermarks.paused) {
            watermarks.paused = false;
            atomic_store(&watermarks.paused_seen, false);
            atomic_fetch_add(&watermarks.resumes, 1);
            CL_PT(pthread_cond_broadcast(&watermarks.resume));
        }
        CL_PT(pthread_mutex_unlock(&watermarks.mu));
    }
    return got;
}
/* [end watermarks] */

static void watermarks_init(void)
{
    bounded_init();
    watermarks.high = (size_t)(HIGH * (double)capacity);
    watermarks.low = (size_t)(LOW * (double)capacity);
    if (watermarks.high < 1)
        watermarks.high = 1;
    watermarks.paused = false;
    atomic_store(&watermarks.paused_seen, false);
    atomic_store(&watermarks.pauses, 0);
    atomic_store(&watermarks.resumes, 0);
}

static void watermarks_metrics(struct cl_result *res)
{
    bounded_metrics(res);
    cl_metric_int(res, "pauses", (long long)atomic_load(&watermarks.pauses));
    cl_metric_int(res, "resumes", (long long)atomic_load(&watermarks.resumes));
}

/* The producer is 25 times faster than the consumer; 40 MiB of messages. */
#define BP_DEFAULTS                                                                                \
    .producers = 1, .consumers = 1, .capacity = 64, .items = 10000, .consume_us = 50,              \
    .produce_us = 2

const struct design unbounded_design = {.init = unbounded_init,
                                        .put = unbounded_put,
                                        .get = unbounded_get,
                                        .close = unbounded_close,
                                        .report = unbounded_report,
                                        .fill = unbounded_fill,
                                        BP_DEFAULTS};
const struct design bounded_design = {.init = bounded_init,
                                      .put = bounded_put,
                                      .get = bounded_get,
                                      .close = condvar_close,
                                      .fini = bounded_fini,
                                      .report = condvar_report,
                                      .fill = condvar_fill,
                                      .metrics = bounded_metrics,
                                      BP_DEFAULTS};
const struct design watermarks_design = {.init = watermarks_init,
                                         .put = watermarks_put,
                                         .get = watermarks_get,
                                         .close = condvar_close,
                                         .fini = bounded_fini,
                                         .report = condvar_report,
                                         .fill = condvar_fill,
                                         .metrics = watermarks_metrics,
                                         BP_DEFAULTS};
