/* prodcons: the queue designs that move many small items as fast as they can.
 * Each is a put, a get and a close; the producer and consumer loops that call
 * them are in prodcons.c. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "prodcons.h"

void backoff(unsigned *spins)
{
    if (++*spins < 64)
        cl_cpu_relax();
    else
        sched_yield();
}

/* [snippet condvar] */
struct cl_queue queue; /* lib/cl_queue.c: a mutex, not_full, not_empty */

static void condvar_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    /* the id itself travels as the item: no allocation per item */
    cl_queue_put(&queue, (void *)(uintptr_t)id); /* NOLINT(performance-no-int-to-ptr) */
}

static bool condvar_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    void *item;
    if (cl_queue_get(&queue, &item) == CL_Q_CLOSED) /* sleeps while empty */
        return false;                               /* closed, and nothing left */
    *id = (uintptr_t)item;
    return true;
}

static void condvar_done(void)
{
    cl_queue_task_done(&queue); /* for every get, the pills included */
}
/* [end condvar] */

void condvar_init(void)
{
    CL_PT(cl_queue_init(&queue, capacity));
}

void condvar_close(void)
{
    cl_queue_close(&queue);
}

static void condvar_fini(void)
{
    cl_queue_destroy(&queue);
}

size_t condvar_fill(void)
{
    return cl_queue_peek(&queue).len;
}

void condvar_report(int fd, const struct cl_run *run)
{
    (void)run;
    struct cl_queue_snapshot s = cl_queue_peek(&queue);
    dprintf(fd,
            "  buffer: %zu of %zu slots used; %d producers wait for room, %d consumers for items\n",
            s.len, s.cap, s.putters_waiting, s.getters_waiting);
}

/* ---------------------------------------------------------- one-cond-signal */

/* [snippet one-cond-signal] */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* ONE condition for "not full" and "not empty" */
    uint64_t *slots;
    size_t head, len;
    bool closed;
    _Atomic size_t len_seen; /* len, for the watchdog's report */
} one_cond_q = {.mu = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static void one_put(struct cl_worker *w, uint64_t id)
{
    CL_PT(pthread_mutex_lock(&one_cond_q.mu));
    while (one_cond_q.len == capacity) { /* a while, as it should be ... */
        cl_status(w, "waits on the one condition (found the buffer full)");
        CL_PT(pthread_cond_wait(&one_cond_q.changed, &one_cond_q.mu));
    }
    cl_status(w, NULL);
    one_cond_q.slots[(one_cond_q.head + one_cond_q.len++) % capacity] = id;
    atomic_store_explicit(&one_cond_q.len_seen, one_cond_q.len, memory_order_relaxed);
    CL_PT(pthread_cond_signal(&one_cond_q.changed)); /* ... but this may wake a producer */
    CL_PT(pthread_mutex_unlock(&one_cond_q.mu));
}

static bool one_get(struct cl_worker *w, uint64_t *id)
{
    CL_PT(pthread_mutex_lock(&one_cond_q.mu));
    while (one_cond_q.len == 0 && !one_cond_q.closed) {
        cl_status(w, "waits on the one condition (found the buffer empty)");
        CL_PT(pthread_cond_wait(&one_cond_q.changed, &one_cond_q.mu));
    }
    cl_status(w, NULL);
    bool got = one_cond_q.len > 0;
    if (got) {
        *id = one_cond_q.slots[one_cond_q.head];
        one_cond_q.head = (one_cond_q.head + 1) % capacity;
        one_cond_q.len--;
        atomic_store_explicit(&one_cond_q.len_seen, one_cond_q.len, memory_order_relaxed);
        CL_PT(pthread_cond_signal(&one_cond_q.changed)); /* and this may wake a consumer */
    }
    CL_PT(pthread_mutex_unlock(&one_cond_q.mu));
    return got;
}
/* [end one-cond-signal] */

static void one_init(void)
{
    one_cond_q.slots = cl_xcalloc(capacity, sizeof *one_cond_q.slots);
    one_cond_q.head = one_cond_q.len = 0;
    one_cond_q.closed = false;
    atomic_store(&one_cond_q.len_seen, 0);
}

static void one_close(void)
{
    CL_PT(pthread_mutex_lock(&one_cond_q.mu));
    one_cond_q.closed = true;
    CL_PT(pthread_cond_broadcast(&one_cond_q.changed));
    CL_PT(pthread_mutex_unlock(&one_cond_q.mu));
}

static void one_fini(void)
{
    free(one_cond_q.slots);
}

static void one_report(int fd, const struct cl_run *run)
{
    int producers = 0, consumers = 0; /* asleep on the one condition */
    for (int i = 0; i < run->threads; i++) {
        const struct cl_worker *w = &run->workers[i];
        if (atomic_load_explicit(&w->status, memory_order_relaxed) != NULL)
            *(i < nprod ? &producers : &consumers) += 1;
    }
    size_t len = atomic_load_explicit(&one_cond_q.len_seen, memory_order_relaxed);
    dprintf(fd,
            "  buffer: %zu of %zu slots used (%s); asleep on the one condition: %d producers, "
            "%d consumers\n",
            len, capacity,
            len == capacity ? "FULL"
            : len == 0      ? "EMPTY"
                            : "partly full",
            producers, consumers);
    if (len == capacity && consumers > 0)
        dprintf(fd,
                "  lost wakeup: the buffer is full and %d consumers could take from it, but "
                "the signals went to producers,\n  which found it full and slept again; no thread "
                "is awake to signal\n",
                consumers);
    else if (len == 0 && producers > 0)
        dprintf(fd,
                "  lost wakeup: the buffer is empty and %d producers could fill it, but the "
                "signals went to consumers,\n  which found it empty and slept again; no thread is "
                "awake to signal\n",
                producers);
}

/* ---------------------------------------------------------------- semaphore */

/* [snippet semaphore] */
static struct {
    sem_t free_slots, used_slots; /* count what each side waits for */
    pthread_mutex_t mu;           /* guards the ring itself */
    uint64_t *slots;
    size_t head, len;
} sem_q = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void semq_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    CL_SYS_RETRY(sem_wait(&sem_q.free_slots)); /* take a free slot (or sleep) */
    CL_PT(pthread_mutex_lock(&sem_q.mu));
    sem_q.slots[(sem_q.head + sem_q.len++) % capacity] = id;
    CL_PT(pthread_mutex_unlock(&sem_q.mu));
    CL_SYS(sem_post(&sem_q.used_slots)); /* one more item to take */
}

static bool semq_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    CL_SYS_RETRY(sem_wait(&sem_q.used_slots));
    CL_PT(pthread_mutex_lock(&sem_q.mu));
    bool got = sem_q.len > 0; /* empty here only after semq_close's extra posts */
    if (got) {
        *id = sem_q.slots[sem_q.head];
        sem_q.head = (sem_q.head + 1) % capacity;
        sem_q.len--;
    }
    CL_PT(pthread_mutex_unlock(&sem_q.mu));
    if (got)
        CL_SYS(sem_post(&sem_q.free_slots));
    return got;
}

static void semq_close(void)
{
    for (int c = 0; c < ncons; c++) /* wake each consumer once more, to find it empty */
        CL_SYS(sem_post(&sem_q.used_slots));
}
/* [end semaphore] */

static void semq_init(void)
{
    CL_SYS(sem_init(&sem_q.free_slots, 0, (unsigned)capacity));
    CL_SYS(sem_init(&sem_q.used_slots, 0, 0));
    sem_q.slots = cl_xcalloc(capacity, sizeof *sem_q.slots);
    sem_q.head = sem_q.len = 0;
}

static void semq_fini(void)
{
    CL_SYS(sem_destroy(&sem_q.free_slots));
    CL_SYS(sem_destroy(&sem_q.used_slots));
    free(sem_q.slots);
}

static void semq_report(int fd, const struct cl_run *run)
{
    (void)run;
    int free_slots = 0, used = 0;
    sem_getvalue(&sem_q.free_slots, &free_slots); /* no lock: a sem_t is its own atomic */
    sem_getvalue(&sem_q.used_slots, &used);
    dprintf(fd, "  semaphores: %d free slots, %d items to take (capacity %zu)\n", free_slots, used,
            capacity);
}

/* ------------------------------------------------------------------ polling */

/* [snippet polling] */
static struct {
    pthread_mutex_t mu;
    uint64_t *slots;
    size_t head, len;
    bool closed;
} poll_q = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct padded *polls; /* failed tries, per thread */

static void poll_put(struct cl_worker *w, uint64_t id)
{
    for (unsigned spins = 0;; backoff(&spins), polls[w->id].n++) { /* ask again and again */
        if (pthread_mutex_trylock(&poll_q.mu) != 0)
            continue;
        bool room = poll_q.len < capacity;
        if (room)
            poll_q.slots[(poll_q.head + poll_q.len++) % capacity] = id;
        CL_PT(pthread_mutex_unlock(&poll_q.mu));
        if (room)
            return;
    }
}

static bool poll_get(struct cl_worker *w, uint64_t *id)
{
    for (unsigned spins = 0;; backoff(&spins), polls[w->id].n++) {
        if (pthread_mutex_trylock(&poll_q.mu) != 0)
            continue;
        bool got = poll_q.len > 0, over = !got && poll_q.closed;
        if (got) {
            *id = poll_q.slots[poll_q.head];
            poll_q.head = (poll_q.head + 1) % capacity;
            poll_q.len--;
        }
        CL_PT(pthread_mutex_unlock(&poll_q.mu));
        if (got || over)
            return got;
    }
}
/* [end polling] */

static void poll_init(void)
{
    poll_q.slots = cl_xcalloc(capacity, sizeof *poll_q.slots);
    polls = cl_xaligned_calloc(64, (size_t)nprod + (size_t)ncons, sizeof *polls);
    poll_q.head = poll_q.len = 0;
    poll_q.closed = false;
}

static void poll_close(void)
{
    CL_PT(pthread_mutex_lock(&poll_q.mu));
    poll_q.closed = true;
    CL_PT(pthread_mutex_unlock(&poll_q.mu));
}

static void poll_metrics(struct cl_result *res)
{
    uint64_t tries = 0;
    for (int i = 0; i < nprod + ncons; i++)
        tries += polls[i].n;
    cl_metric_int(res, "failed_polls", (long long)tries);
}

static void poll_fini(void)
{
    free(poll_q.slots);
    free(polls);
}

/* ---------------------------------------------------------------- spsc-ring */

/* [snippet spsc-ring] */
/* Head and tail only ever grow; slot = index % capacity. The producer alone
 * writes tail, the consumer alone writes head, each on its own cache line, next
 * to that side's private copies. */
#define RING_BATCH 64 /* the consumer frees slots in batches of at most this many */
static struct {
    _Alignas(64) _Atomic size_t head; /* next to read, as the producer may see it */
    size_t next;                      /* the consumer's own next to read */
    size_t tail_seen;                 /* the consumer's last look at tail */
    _Alignas(64) _Atomic size_t tail; /* next to write: the producer's */
    size_t head_seen;                 /* the producer's last look at head */
    _Alignas(64) _Atomic bool closed;
    uint64_t *slots;
} ring;

static void ring_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    size_t t = atomic_load_explicit(&ring.tail, memory_order_relaxed);
    for (unsigned spins = 0; t - ring.head_seen == capacity; backoff(&spins))
        ring.head_seen = atomic_load_explicit(&ring.head, memory_order_acquire); /* full? */
    ring.slots[t % capacity] = id;
    /* release: the slot's contents become visible before the new tail does */
    atomic_store_explicit(&ring.tail, t + 1, memory_order_release);
}

static bool ring_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    size_t h = ring.next;
    for (unsigned spins = 0; h == ring.tail_seen; backoff(&spins)) {
        bool closed = atomic_load_explicit(&ring.closed, memory_order_acquire);
        /* acquire: pairs with the producer's release, so the slot is complete */
        ring.tail_seen = atomic_load_explicit(&ring.tail, memory_order_acquire);
        if (closed && h == ring.tail_seen)
            return false; /* closed after its last put, and all taken */
    }
    *id = ring.slots[h % capacity];
    ring.next = h + 1;
    /* Free the slots for the producer (release: we are done reading them) every
     * RING_BATCH items, and always before we could wait: one cache-line transfer
     * per batch instead of one per item. */
    if (ring.next == ring.tail_seen || ring.next % RING_BATCH == 0)
        atomic_store_explicit(&ring.head, ring.next, memory_order_release);
    return true;
}

static void ring_close(void)
{
    atomic_store_explicit(&ring.closed, true, memory_order_release);
}
/* [end spsc-ring] */

static void ring_init(void)
{
    atomic_store(&ring.head, 0);
    atomic_store(&ring.tail, 0);
    ring.next = 0;
    atomic_store(&ring.closed, false);
    ring.head_seen = ring.tail_seen = 0;
    ring.slots = cl_xcalloc(capacity, sizeof *ring.slots);
}

static void ring_fini(void)
{
    free(ring.slots);
}

static size_t ring_fill(void)
{
    return atomic_load_explicit(&ring.tail, memory_order_relaxed) -
           atomic_load_explicit(&ring.head, memory_order_relaxed);
}

static void ring_report(int fd, const struct cl_run *run)
{
    (void)run;
    dprintf(fd, "  ring: %zu of %zu slots used\n", ring_fill(), capacity);
}

/* --------------------------------------------------------------------- pipe */

/* [snippet pipe] */
static int pipe_fd[2]; /* [0] to read, [1] to write; the kernel holds the buffer */

static void pipe_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    /* 8 bytes is under PIPE_BUF, so a write is never split or interleaved */
    CL_SYS_RETRY(write(pipe_fd[1], &id, sizeof id)); /* blocks while the pipe is full */
}

static bool pipe_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    long n = CL_SYS_RETRY(read(pipe_fd[0], id, sizeof *id)); /* blocks while empty */
    return n == (long)sizeof *id; /* 0: end of file, the write end is closed */
}

static void pipe_close(void)
{
    CL_SYS(close(pipe_fd[1]));
    pipe_fd[1] = -1;
}
/* [end pipe] */

static long pipe_bytes; /* what the kernel gave: at least one page */

static void pipe_init(void)
{
    CL_SYS(pipe(pipe_fd));
    /* The kernel rounds up to a power-of-two number of pages, one page at least. */
    long want = (long)(capacity * sizeof(uint64_t));
    CL_SYS(pipe_bytes = fcntl(pipe_fd[1], F_SETPIPE_SZ, (int)want));
}

static void pipe_metrics(struct cl_result *res)
{
    cl_metric_int(res, "pipe_items", pipe_bytes / (long)sizeof(uint64_t));
}

static void pipe_fini(void)
{
    CL_SYS(close(pipe_fd[0]));
    if (pipe_fd[1] >= 0)
        CL_SYS(close(pipe_fd[1]));
}

/* --------------------------------------------------------------- the designs */

#define QUEUE_DEFAULTS .producers = 2, .consumers = 2, .capacity = 64, .items = QUEUE_ITEMS

const struct design condvar_design = {.init = condvar_init,
                                      .put = condvar_put,
                                      .get = condvar_get,
                                      .close = condvar_close,
                                      .done = condvar_done,
                                      .fini = condvar_fini,
                                      .report = condvar_report,
                                      .fill = condvar_fill,
                                      QUEUE_DEFAULTS};
const struct design one_cond_design = {.init = one_init,
                                       .put = one_put,
                                       .get = one_get,
                                       .close = one_close,
                                       .fini = one_fini,
                                       .report = one_report,
                                       .producers = 4,
                                       .consumers = 4,
                                       .capacity = 1,
                                       .items = 10000000};
const struct design semaphore_design = {.init = semq_init,
                                        .put = semq_put,
                                        .get = semq_get,
                                        .close = semq_close,
                                        .fini = semq_fini,
                                        .report = semq_report,
                                        QUEUE_DEFAULTS};
const struct design polling_design = {.init = poll_init,
                                      .put = poll_put,
                                      .get = poll_get,
                                      .close = poll_close,
                                      .fini = poll_fini,
                                      .metrics = poll_metrics,
                                      QUEUE_DEFAULTS};
const struct design ring_design = {.init = ring_init,
                                   .put = ring_put,
                                   .get = ring_get,
                                   .close = ring_close,
                                   .fini = ring_fini,
                                   .report = ring_report,
                                   .fill = ring_fill,
                                   .producers = 1,
                                   .consumers = 1,
                                   .capacity = 1024,
                                   .items = QUEUE_ITEMS,
                                   .spsc = true};
const struct design pipe_design = {.init = pipe_init,
                                   .put = pipe_put,
                                   .get = pipe_get,
                                   .close = pipe_close,
                                   .fini = pipe_fini,
                                   .metrics = pipe_metrics,
                                   .producers = 2,
                                   .consumers = 2,
                                   .capacity = 512,
                                   .items = QUEUE_ITEMS};
