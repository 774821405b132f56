/* prodcons: producers and consumers around a bounded buffer, how to stop them,
 * and why the buffer must be bounded.
 *
 * The first --producers threads produce ids 0 .. items-1 between them, the rest
 * consume. Every variant is a queue design: a put and a get (and a close). The
 * producer and consumer loops below are the same for all of them, and so is the
 * check: every id must be consumed exactly once. The last producer to finish
 * stops the consumers the --shutdown way: close the queue, one poison pill per
 * consumer, or one pill that each consumer passes along. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conclab.h"

enum { PRODUCERS, CONSUMERS, CAPACITY, ITEMS, CONSUME_US, PRODUCE_US, SHUTDOWN }; /* flags */
enum { SHUT_CLOSE, SHUT_PILLS, SHUT_PASS_ALONG };                                 /* --shutdown */

#define PILL UINT64_MAX /* the poison pill: an id no producer makes */

/* Run-wide settings, fixed before the threads start. */
static int nprod, ncons, shutdown_mode;
static size_t capacity;
static uint64_t nitems, consume_ns, produce_ns;

/* The check: how many times each id was consumed, and item latencies for a
 * sample of ids (one in LAT_EVERY, so the clock costs nothing measurable). */
#define LAT_EVERY 64
static _Atomic uint8_t *seen;
static _Atomic uint64_t *put_at; /* when sampled ids were put */
static uint64_t *latency_ns;     /* their put-to-get time, one slot per sampled id */
static _Atomic uint64_t stray;   /* ids no producer made */
static _Atomic int producers_left, consumers_left;

/* Busy work of a given length: a consumer's processing, a producer's making. */
static void spin_ns(uint64_t ns)
{
    uint64_t end = cl_now_ns() + ns;
    while (cl_now_ns() < end)
        ;
}

/* Waiting for another thread to move, without a lock: a few polite spins, then
 * give the CPU away (the machine may have fewer cores than threads). */
static void backoff(unsigned *spins)
{
    if (++*spins < 64)
        __builtin_ia32_pause();
    else
        sched_yield();
}

/* A per-thread counter on a cache line of its own. */
struct padded {
    _Alignas(64) uint64_t n;
};

/* A queue design: how to put, get and close. get returns false once the queue
 * is closed and drained. */
struct design {
    void (*init)(void);
    void (*put)(struct cl_worker *w, uint64_t id);
    bool (*get)(struct cl_worker *w, uint64_t *id);
    void (*close)(void);
    void (*done)(void); /* after each get, pills too (the lib queue's task_done) */
    void (*fini)(void);
    void (*report)(int fd); /* for the watchdog: atomics only */
    size_t (*fill)(void);   /* items in the buffer now, for the sampler (lock-free) */
    /* default flags */
    int producers, consumers;
    size_t capacity;
    uint64_t items;
    int consume_us, produce_us;
    bool spsc; /* one producer and one consumer only */
};

/* ------------------------------------------------------------------ condvar */

/* [snippet condvar] */
static struct cl_queue queue; /* lib/cl_queue.c: a mutex, not_full, not_empty */

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

static void condvar_init(void)
{
    CL_PT(cl_queue_init(&queue, capacity));
}

static void condvar_close(void)
{
    cl_queue_close(&queue);
}

static void condvar_fini(void)
{
    cl_queue_destroy(&queue);
}

static size_t condvar_fill(void)
{
    return cl_queue_peek(&queue).len;
}

static void condvar_report(int fd)
{
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
} one = {.mu = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static void one_put(struct cl_worker *w, uint64_t id)
{
    CL_PT(pthread_mutex_lock(&one.mu));
    while (one.len == capacity) { /* a while, as it should be ... */
        cl_status(w, "waits on the one condition (found the buffer full)");
        CL_PT(pthread_cond_wait(&one.changed, &one.mu));
    }
    cl_status(w, NULL);
    one.slots[(one.head + one.len++) % capacity] = id;
    atomic_store_explicit(&one.len_seen, one.len, memory_order_relaxed);
    CL_PT(pthread_cond_signal(&one.changed)); /* ... but this may wake a producer */
    CL_PT(pthread_mutex_unlock(&one.mu));
}

static bool one_get(struct cl_worker *w, uint64_t *id)
{
    CL_PT(pthread_mutex_lock(&one.mu));
    while (one.len == 0 && !one.closed) {
        cl_status(w, "waits on the one condition (found the buffer empty)");
        CL_PT(pthread_cond_wait(&one.changed, &one.mu));
    }
    cl_status(w, NULL);
    bool got = one.len > 0;
    if (got) {
        *id = one.slots[one.head];
        one.head = (one.head + 1) % capacity;
        one.len--;
        atomic_store_explicit(&one.len_seen, one.len, memory_order_relaxed);
        CL_PT(pthread_cond_signal(&one.changed)); /* and this may wake a consumer */
    }
    CL_PT(pthread_mutex_unlock(&one.mu));
    return got;
}
/* [end one-cond-signal] */

static const struct cl_run *current_run; /* for the watchdog's report */

static void one_init(void)
{
    one.slots = cl_xcalloc(capacity, sizeof *one.slots);
    one.head = one.len = 0;
    one.closed = false;
    atomic_store(&one.len_seen, 0);
}

static void one_close(void)
{
    CL_PT(pthread_mutex_lock(&one.mu));
    one.closed = true;
    CL_PT(pthread_cond_broadcast(&one.changed));
    CL_PT(pthread_mutex_unlock(&one.mu));
}

static void one_fini(void)
{
    free(one.slots);
}

static void one_report(int fd)
{
    int producers = 0, consumers = 0; /* asleep on the one condition */
    for (int i = 0; i < current_run->threads; i++) {
        const struct cl_worker *w = &current_run->workers[i];
        if (atomic_load_explicit(&w->status, memory_order_relaxed) != NULL)
            *(i < nprod ? &producers : &consumers) += 1;
    }
    size_t len = atomic_load_explicit(&one.len_seen, memory_order_relaxed);
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
} sem = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void semq_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    while (sem_wait(&sem.free_slots) != 0) /* take a free slot (or sleep) */
        CL_SYS(errno == EINTR ? 0 : -1);
    CL_PT(pthread_mutex_lock(&sem.mu));
    sem.slots[(sem.head + sem.len++) % capacity] = id;
    CL_PT(pthread_mutex_unlock(&sem.mu));
    CL_SYS(sem_post(&sem.used_slots)); /* one more item to take */
}

static bool semq_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    while (sem_wait(&sem.used_slots) != 0)
        CL_SYS(errno == EINTR ? 0 : -1);
    CL_PT(pthread_mutex_lock(&sem.mu));
    bool got = sem.len > 0; /* empty here only after semq_close's extra posts */
    if (got) {
        *id = sem.slots[sem.head];
        sem.head = (sem.head + 1) % capacity;
        sem.len--;
    }
    CL_PT(pthread_mutex_unlock(&sem.mu));
    if (got)
        CL_SYS(sem_post(&sem.free_slots));
    return got;
}

static void semq_close(void)
{
    for (int c = 0; c < ncons; c++) /* wake each consumer once more, to find it empty */
        CL_SYS(sem_post(&sem.used_slots));
}
/* [end semaphore] */

static void semq_init(void)
{
    CL_SYS(sem_init(&sem.free_slots, 0, (unsigned)capacity));
    CL_SYS(sem_init(&sem.used_slots, 0, 0));
    sem.slots = cl_xcalloc(capacity, sizeof *sem.slots);
    sem.head = sem.len = 0;
}

static void semq_fini(void)
{
    CL_SYS(sem_destroy(&sem.free_slots));
    CL_SYS(sem_destroy(&sem.used_slots));
    free(sem.slots);
}

static void semq_report(int fd)
{
    int free_slots = 0, used = 0;
    sem_getvalue(&sem.free_slots, &free_slots); /* no lock: a sem_t is its own atomic */
    sem_getvalue(&sem.used_slots, &used);
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

static void ring_report(int fd)
{
    dprintf(fd, "  ring: %zu of %zu slots used\n", ring_fill(), capacity);
}

/* --------------------------------------------------------------------- pipe */

/* [snippet pipe] */
static int pipe_fd[2]; /* [0] to read, [1] to write; the kernel holds the buffer */

static void pipe_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    /* 8 bytes is under PIPE_BUF, so a write is never split or interleaved */
    while (write(pipe_fd[1], &id, sizeof id) != (ssize_t)sizeof id)
        CL_SYS(errno == EINTR ? 0 : -1); /* blocks while the pipe is full */
}

static bool pipe_get(struct cl_worker *w, uint64_t *id)
{
    (void)w;
    ssize_t n;
    while ((n = read(pipe_fd[0], id, sizeof *id)) == -1) /* blocks while empty */
        CL_SYS(errno == EINTR ? 0 : -1);
    return n == (ssize_t)sizeof *id; /* 0: end of file, the write end is closed */
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

static void pipe_fini(void)
{
    CL_SYS(close(pipe_fd[0]));
    if (pipe_fd[1] >= 0)
        CL_SYS(close(pipe_fd[1]));
}

/* ------------------------------------------------------------- backpressure */

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
} list = {.mu = PTHREAD_MUTEX_INITIALIZER, .not_empty = PTHREAD_COND_INITIALIZER};

static void unbounded_put(struct cl_worker *w, uint64_t id)
{
    (void)w;
    struct msg *m = make_msg(id);
    CL_PT(pthread_mutex_lock(&list.mu));
    if (list.last != NULL)
        list.last->next = m;
    else
        list.first = m;
    list.last = m;
    atomic_fetch_add_explicit(&list.len, 1, memory_order_relaxed); /* no limit: it grows */
    CL_PT(pthread_cond_signal(&list.not_empty));
    CL_PT(pthread_mutex_unlock(&list.mu));
}
/* [end unbounded] */

static bool unbounded_get(struct cl_worker *w, uint64_t *id)
{
    CL_PT(pthread_mutex_lock(&list.mu));
    while (list.first == NULL && !list.closed) {
        cl_status(w, "waits for an item: list empty");
        CL_PT(pthread_cond_wait(&list.not_empty, &list.mu));
    }
    cl_status(w, NULL);
    struct msg *m = list.first;
    if (m != NULL) {
        list.first = m->next;
        if (list.first == NULL)
            list.last = NULL;
        atomic_fetch_sub_explicit(&list.len, 1, memory_order_relaxed);
    }
    CL_PT(pthread_mutex_unlock(&list.mu));
    if (m == NULL)
        return false;
    *id = take_msg(m);
    return true;
}

static void unbounded_init(void)
{
    list.first = list.last = NULL;
    list.closed = false;
    atomic_store(&list.len, 0);
}

static void unbounded_close(void)
{
    CL_PT(pthread_mutex_lock(&list.mu));
    list.closed = true;
    CL_PT(pthread_cond_broadcast(&list.not_empty));
    CL_PT(pthread_mutex_unlock(&list.mu));
}

static size_t unbounded_fill(void)
{
    return atomic_load_explicit(&list.len, memory_order_relaxed);
}

static void unbounded_report(int fd)
{
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
} wm = {.mu = PTHREAD_MUTEX_INITIALIZER, .resume = PTHREAD_COND_INITIALIZER};

static void watermarks_put(struct cl_worker *w, uint64_t id)
{
    bounded_put(w, id);
    if (cl_queue_len(&queue) < wm.high)
        return;
    CL_PT(pthread_mutex_lock(&wm.mu)); /* high water: stop producing */
    wm.paused = true;
    atomic_store(&wm.paused_seen, true);
    atomic_fetch_add(&wm.pauses, 1);
    cl_status(w, "paused at the high watermark");
    while (wm.paused && cl_queue_len(&queue) > wm.low) /* the consumers may be there already */
        CL_PT(pthread_cond_wait(&wm.resume, &wm.mu));
    if (wm.paused) { /* drained before we slept: resume ourselves */
        wm.paused = false;
        atomic_store(&wm.paused_seen, false);
        atomic_fetch_add(&wm.resumes, 1);
    }
    cl_status(w, NULL);
    CL_PT(pthread_mutex_unlock(&wm.mu));
}

static bool watermarks_get(struct cl_worker *w, uint64_t *id)
{
    bool got = bounded_get(w, id);
    if (atomic_load(&wm.paused_seen) && cl_queue_len(&queue) <= wm.low) {
        CL_PT(pthread_mutex_lock(&wm.mu)); /* low water: let the producer go on */
        if (wm.paused) {
            wm.paused = false;
            atomic_store(&wm.paused_seen, false);
            atomic_fetch_add(&wm.resumes, 1);
            CL_PT(pthread_cond_broadcast(&wm.resume));
        }
        CL_PT(pthread_mutex_unlock(&wm.mu));
    }
    return got;
}
/* [end watermarks] */

static void watermarks_init(void)
{
    bounded_init();
    wm.high = (size_t)(HIGH * (double)capacity);
    wm.low = (size_t)(LOW * (double)capacity);
    if (wm.high < 1)
        wm.high = 1;
    wm.paused = false;
    atomic_store(&wm.paused_seen, false);
    atomic_store(&wm.pauses, 0);
    atomic_store(&wm.resumes, 0);
}

static void bounded_report(int fd)
{
    condvar_report(fd);
}

/* ------------------------------------------------------ the shared loops */

/* [snippet producer] */
static void shut_down(struct cl_worker *w, const struct design *d);

static void produce(struct cl_worker *w, const struct design *d)
{
    for (uint64_t id = (uint64_t)w->id; id < nitems; id += (uint64_t)nprod) {
        if (produce_ns > 0)
            spin_ns(produce_ns); /* making the item */
        if (id % LAT_EVERY == 0)
            atomic_store_explicit(&put_at[id / LAT_EVERY], cl_now_ns(), memory_order_relaxed);
        d->put(w, id);
        cl_tick(w);
    }
    if (atomic_fetch_sub(&producers_left, 1) == 1) /* the last producer out */
        shut_down(w, d);
}
/* [end producer] */

/* [snippet shutdown] */
static void shut_down(struct cl_worker *w, const struct design *d)
{
    cl_status(w, "shutting down the consumers");
    switch (shutdown_mode) {
    case SHUT_CLOSE: /* no more puts; gets drain what is left, then see "closed" */
        d->close();
        break;
    case SHUT_PILLS: /* one pill per consumer: each eats one and stops */
        for (int c = 0; c < ncons; c++)
            d->put(w, PILL);
        break;
    case SHUT_PASS_ALONG: /* one pill; each consumer puts it back for the next */
        d->put(w, PILL);
        break;
    }
    if (d->done != NULL) { /* the lib queue counts unfinished items, as Python's does */
        cl_status(w, "waits in join for every task_done");
        cl_queue_join(&queue); /* returns: every get, pills included, is task_done'd */
    }
    cl_status(w, NULL);
}
/* [end shutdown] */

/* [snippet consumer] */
static void consume(struct cl_worker *w, const struct design *d)
{
    uint64_t id;
    while (d->get(w, &id)) { /* false: closed and drained */
        if (id == PILL) {
            if (d->done != NULL)
                d->done(); /* a pill is an item too: forget this and join hangs */
            if (shutdown_mode == SHUT_PASS_ALONG && atomic_fetch_sub(&consumers_left, 1) > 1)
                d->put(w, PILL); /* pass it on to the next consumer */
            return;
        }
        if (id < nitems)
            atomic_fetch_add_explicit(&seen[id], 1, memory_order_relaxed); /* the check */
        else
            atomic_fetch_add_explicit(&stray, 1, memory_order_relaxed);
        if (id < nitems && id % LAT_EVERY == 0)
            latency_ns[id / LAT_EVERY] =
                cl_now_ns() - atomic_load_explicit(&put_at[id / LAT_EVERY], memory_order_relaxed);
        if (consume_ns > 0)
            spin_ns(consume_ns); /* processing the item */
        if (d->done != NULL)
            d->done();
        cl_tick(w);
    }
}
/* [end consumer] */

static void prodcons(struct cl_worker *w)
{
    const struct design *d = w->run->variant->data;
    if (w->id < nprod)
        produce(w, d);
    else
        consume(w, d);
}

/* ----------------------------------------------------------- the variants */

#define QUEUE_ITEMS    200000 /* default items of the queue designs ... */
#define ITEMS_PER_SLOT 1000   /* ... or this many per slot of capacity, if fewer */
#define BP_ITEMS       10000  /* default items of the backpressure variants: 40 MiB of messages */

/* Each design with its default flags: the queue designs move many small items as
 * fast as they can; the backpressure ones pair a fast producer with a consumer
 * 25 times slower. */
#define QUEUE_DEFAULTS .producers = 2, .consumers = 2, .capacity = 64, .items = QUEUE_ITEMS
#define BP_DEFAULTS                                                                                \
    .producers = 1, .consumers = 1, .capacity = 64, .items = BP_ITEMS, .consume_us = 50,           \
    .produce_us = 2

static const struct design d_condvar = {.init = condvar_init,
                                        .put = condvar_put,
                                        .get = condvar_get,
                                        .close = condvar_close,
                                        .done = condvar_done,
                                        .fini = condvar_fini,
                                        .report = condvar_report,
                                        .fill = condvar_fill,
                                        QUEUE_DEFAULTS};
static const struct design d_one = {.init = one_init,
                                    .put = one_put,
                                    .get = one_get,
                                    .close = one_close,
                                    .fini = one_fini,
                                    .report = one_report,
                                    .producers = 4,
                                    .consumers = 4,
                                    .capacity = 1,
                                    .items = 10000000};
static const struct design d_sem = {.init = semq_init,
                                    .put = semq_put,
                                    .get = semq_get,
                                    .close = semq_close,
                                    .fini = semq_fini,
                                    .report = semq_report,
                                    QUEUE_DEFAULTS};
static const struct design d_poll = {.init = poll_init,
                                     .put = poll_put,
                                     .get = poll_get,
                                     .close = poll_close,
                                     .fini = poll_fini,
                                     QUEUE_DEFAULTS};
static const struct design d_ring = {.init = ring_init,
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
static const struct design d_pipe = {.init = pipe_init,
                                     .put = pipe_put,
                                     .get = pipe_get,
                                     .close = pipe_close,
                                     .fini = pipe_fini,
                                     .producers = 2,
                                     .consumers = 2,
                                     .capacity = 512,
                                     .items = QUEUE_ITEMS};
static const struct design d_unbounded = {.init = unbounded_init,
                                          .put = unbounded_put,
                                          .get = unbounded_get,
                                          .close = unbounded_close,
                                          .report = unbounded_report,
                                          .fill = unbounded_fill,
                                          BP_DEFAULTS};
static const struct design d_bounded = {.init = bounded_init,
                                        .put = bounded_put,
                                        .get = bounded_get,
                                        .close = condvar_close,
                                        .fini = bounded_fini,
                                        .report = bounded_report,
                                        .fill = condvar_fill,
                                        BP_DEFAULTS};
static const struct design d_watermarks = {.init = watermarks_init,
                                           .put = watermarks_put,
                                           .get = watermarks_get,
                                           .close = condvar_close,
                                           .fini = bounded_fini,
                                           .report = bounded_report,
                                           .fill = condvar_fill,
                                           BP_DEFAULTS};

static const struct cl_variant variants[] = {
    {"condvar", CL_CORRECT, "lib's bounded queue: a mutex and two condition variables", prodcons, 4,
     QUEUE_ITEMS, 0, &d_condvar},
    {"one-cond-signal", CL_HANGS,
     "one condition for full and empty, signal not broadcast: a wakeup is lost, all sleep",
     prodcons, 8, 10000000, 0, &d_one},
    {"semaphore", CL_CORRECT, "two counting semaphores (free and used slots) and a mutex", prodcons,
     4, QUEUE_ITEMS, 0, &d_sem},
    {"polling", CL_CORRECT, "trylock and look again, never sleep: correct, burns CPU", prodcons, 4,
     QUEUE_ITEMS, 0, &d_poll},
    {"spsc-ring", CL_CORRECT, "lock-free ring, one producer and one consumer, acquire/release",
     prodcons, 2, QUEUE_ITEMS, 0, &d_ring},
    {"pipe", CL_CORRECT, "the kernel's pipe as the bounded buffer (one page at least)", prodcons, 4,
     QUEUE_ITEMS, 0, &d_pipe},
    {"unbounded", CL_CORRECT, "fast producer, slow consumer, a linked list: memory grows", prodcons,
     2, BP_ITEMS, 0, &d_unbounded},
    {"bounded", CL_CORRECT, "the same through a bounded queue: the producer blocks, memory stays",
     prodcons, 2, BP_ITEMS, 0, &d_bounded},
    {"watermarks", CL_CORRECT, "pause the producer at 80% full, resume at 30%: hysteresis",
     prodcons, 2, BP_ITEMS, 0, &d_watermarks},
};

/* Defaults outside the allowed range mean "the variant's own". */
static const struct cl_param params[] = {
    {"producers", "producer threads", 0, 1, 64},
    {"consumers", "consumer threads", 0, 1, 64},
    {"capacity", "buffer slots (items)", 0, 1, 65536},
    {"items", "items to produce, in total (queue designs: 200,000, or 1,000 per slot if fewer)", 0,
     1, 100000000},
    {"consume-us", "busy time to process one item, in microseconds", -1, 0, 100000},
    {"produce-us", "busy time to make one item, in microseconds", -1, 0, 100000},
    {"shutdown", "how the consumers are stopped", SHUT_CLOSE, SHUT_CLOSE, SHUT_PASS_ALONG},
};
static const char *const shutdown_names[] = {"close", "pill-per-consumer", "pass-along", NULL};
static const char *const *const param_choices[] = {NULL, NULL, NULL,          NULL,
                                                   NULL, NULL, shutdown_names};

/* ------------------------------------------------------------- the hooks */

static struct cl_opts effective; /* the flags with the variant's defaults filled in */

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct design *d = run->variant->data;
    const struct cl_opts *o = run->opts;
    if (o->threads != 0) {
        snprintf(err, errlen,
                 "prodcons: --threads: not used here (allowed: --producers and --consumers)");
        return 1;
    }
    if (o->iters != 0) {
        snprintf(err, errlen, "prodcons: --iters: not used here (allowed: --items)");
        return 1;
    }
    effective = *o;
    long long *p = effective.param;
    if (p[PRODUCERS] == 0)
        p[PRODUCERS] = d->producers;
    if (p[CONSUMERS] == 0)
        p[CONSUMERS] = d->consumers;
    if (p[CAPACITY] == 0)
        p[CAPACITY] = (long long)d->capacity;
    if (p[ITEMS] == 0) {
        p[ITEMS] = (long long)d->items;
        /* A tiny buffer means a thread switch per item or two: keep such runs short */
        if (d->items == QUEUE_ITEMS && p[CAPACITY] * ITEMS_PER_SLOT < p[ITEMS])
            p[ITEMS] = p[CAPACITY] * ITEMS_PER_SLOT;
    }
    if (p[CONSUME_US] < 0)
        p[CONSUME_US] = d->consume_us;
    if (p[PRODUCE_US] < 0)
        p[PRODUCE_US] = d->produce_us;
    if (d->spsc && (p[PRODUCERS] != 1 || p[CONSUMERS] != 1)) {
        snprintf(err, errlen,
                 "prodcons: --producers/--consumers: %s takes one producer and one consumer "
                 "(allowed: 1 and 1; got %lld and %lld)",
                 run->variant->name, p[PRODUCERS], p[CONSUMERS]);
        return 1;
    }
    run->opts = &effective;
    run->threads = (int)(p[PRODUCERS] + p[CONSUMERS]);
    run->iters = (uint64_t)p[ITEMS];
    return 0;
}

/* Resident memory now, in KiB, from /proc/self/statm. */
static long rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    strtol(buf, &end, 10);                 /* total pages */
    long resident = strtol(end, NULL, 10); /* resident pages */
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The sampler: every SAMPLE_NS, resident memory and the buffer's fill, for the
 * backpressure charts. A thread of the chapter's own, not a worker. */
#define SAMPLE_NS   2000000ull
#define MAX_SAMPLES 30000
struct sample {
    double t_s;
    long rss_kib;
    size_t fill;
};
static struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t stop_cv;
    bool stop, running;
    struct sample *s;
    size_t n;
    uint64_t t0;
    size_t (*fill)(void);
} sampler = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *sample_loop(void *arg)
{
    (void)arg;
    CL_PT(pthread_mutex_lock(&sampler.mu));
    while (!sampler.stop) {
        if (sampler.n < MAX_SAMPLES)
            sampler.s[sampler.n++] =
                (struct sample){cl_seconds(cl_now_ns() - sampler.t0), rss_kib(), sampler.fill()};
        struct timespec ts = cl_deadline_ns(SAMPLE_NS);
        int rc = pthread_cond_timedwait(&sampler.stop_cv, &sampler.mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT)
            CL_PT(rc);
    }
    CL_PT(pthread_mutex_unlock(&sampler.mu));
    return NULL;
}

static void sampler_start(size_t (*fill)(void))
{
    CL_PT(cl_cond_init_monotonic(&sampler.stop_cv));
    sampler.s = cl_xcalloc(MAX_SAMPLES, sizeof *sampler.s);
    sampler.n = 0;
    sampler.stop = false;
    sampler.fill = fill;
    sampler.t0 = cl_now_ns();
    sampler.running = true;
    CL_PT(pthread_create(&sampler.thread, NULL, sample_loop, NULL));
}

static void sampler_stop(void)
{
    CL_PT(pthread_mutex_lock(&sampler.mu));
    sampler.stop = true;
    CL_PT(pthread_cond_signal(&sampler.stop_cv));
    CL_PT(pthread_mutex_unlock(&sampler.mu));
    CL_PT(pthread_join(sampler.thread, NULL));
    CL_PT(pthread_cond_destroy(&sampler.stop_cv));
    sampler.running = false;
}

/* With --trace FILE.csv, the samples go to FILE.samples.tsv for the charts. */
static void write_samples(const char *trace)
{
    char path[4096];
    const char *dot = strrchr(trace, '.');
    int stem = dot != NULL ? (int)(dot - trace) : (int)strlen(trace);
    snprintf(path, sizeof path, "%.*s.samples.tsv", stem, trace);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fprintf(f, "t_s\trss_mib\tfill\tfill_pct\n");
    for (size_t i = 0; i < sampler.n; i++)
        fprintf(f, "%.4f\t%.2f\t%zu\t%.1f\n", sampler.s[i].t_s,
                (double)sampler.s[i].rss_kib / 1024.0, sampler.s[i].fill,
                100.0 * (double)sampler.s[i].fill / (double)capacity);
    fclose(f);
}

static struct rusage usage_at_start;

static void setup(const struct cl_run *run)
{
    const struct design *d = run->variant->data;
    const long long *p = run->opts->param;
    current_run = run;
    nprod = (int)p[PRODUCERS];
    ncons = (int)p[CONSUMERS];
    capacity = (size_t)p[CAPACITY];
    nitems = (uint64_t)p[ITEMS];
    consume_ns = (uint64_t)p[CONSUME_US] * 1000;
    produce_ns = (uint64_t)p[PRODUCE_US] * 1000;
    shutdown_mode = (int)p[SHUTDOWN];
    seen = cl_xcalloc(nitems, sizeof *seen);
    put_at = cl_xcalloc(nitems / LAT_EVERY + 1, sizeof *put_at);
    latency_ns = cl_xcalloc(nitems / LAT_EVERY + 1, sizeof *latency_ns);
    atomic_store(&stray, 0);
    atomic_store(&producers_left, nprod);
    atomic_store(&consumers_left, ncons);
    for (int i = 0; i < run->threads; i++) /* a producer's share, for the watchdog's lines */
        run->workers[i].iters =
            i < nprod ? (nitems + (uint64_t)(nprod - 1 - i)) / (uint64_t)nprod : nitems;
    d->init();
    if (d->fill != NULL && p[CONSUME_US] > 0)
        sampler_start(d->fill);
    CL_SYS(getrusage(RUSAGE_SELF, &usage_at_start));
}

static double cpu_seconds(const struct rusage *r)
{
    return (double)(r->ru_utime.tv_sec + r->ru_stime.tv_sec) +
           (double)(r->ru_utime.tv_usec + r->ru_stime.tv_usec) / 1e6;
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    const struct design *d = run->variant->data;
    struct rusage now;
    CL_SYS(getrusage(RUSAGE_SELF, &now));
    if (sampler.running)
        sampler_stop();
    uint64_t lost = 0, dup = 0, bad = atomic_load(&stray);
    for (uint64_t i = 0; i < nitems; i++) {
        uint8_t n = atomic_load_explicit(&seen[i], memory_order_relaxed);
        lost += n == 0;
        dup += n > 1 ? (uint64_t)n - 1 : 0;
    }
    size_t nlat = (size_t)((nitems + LAT_EVERY - 1) / LAT_EVERY);
    cl_sort_ns(latency_ns, nlat);
    double cpu = cpu_seconds(&now) - cpu_seconds(&usage_at_start);
    double per_s = (double)nitems / run->wall_s;

    res->exact = lost == 0 && dup == 0 && bad == 0;
    res->ops = nitems;
    cl_metric_real(res, "items_per_s", per_s);
    cl_metric_int(res, "lost", (long long)lost);
    uint64_t doubled = dup + bad;
    cl_metric_int(res, "duplicated", (long long)doubled);
    size_t p50 = nlat / 2, p99 = nlat * 99 / 100;
    cl_metric_real(res, "p50_us", (double)latency_ns[p50] / 1e3);
    cl_metric_real(res, "p99_us", (double)latency_ns[p99] / 1e3);
    cl_metric_real(res, "cpu_s", cpu);
    cl_metric_real(res, "cpu_per_wall", cpu / run->wall_s);
    cl_metric_int(res, "peak_rss_kib", now.ru_maxrss);
    if (d == &d_poll) {
        uint64_t tries = 0;
        for (int i = 0; i < nprod + ncons; i++)
            tries += polls[i].n;
        cl_metric_int(res, "failed_polls", (long long)tries);
    }
    if (d == &d_pipe)
        cl_metric_int(res, "pipe_items", pipe_bytes / (long)sizeof(uint64_t));
    if (sampler.n > 0) {
        long top = 0;
        for (size_t i = 0; i < sampler.n; i++)
            top = sampler.s[i].rss_kib > top ? sampler.s[i].rss_kib : top;
        cl_metric_int(res, "rss_growth_kib", top - sampler.s[0].rss_kib);
        if (run->opts->trace != NULL)
            write_samples(run->opts->trace);
    }
    if (d == &d_bounded) {
        uint64_t ns = 0;
        for (int i = 0; i < nprod; i++)
            ns += blocked[i].n;
        cl_metric_real(res, "blocked_s", cl_seconds(ns));
    }
    if (d == &d_watermarks) {
        cl_metric_int(res, "pauses", (long long)atomic_load(&wm.pauses));
        cl_metric_int(res, "resumes", (long long)atomic_load(&wm.resumes));
    }

    char a[32];
    if (res->exact) {
        cl_verdict(res, "all %s items consumed exactly once, %.3g items/s, CPU %.2f s for %.2f s",
                   cl_fmt_count(nitems, a), per_s, cpu, run->wall_s);
    } else {
        char b[32], c[32];
        cl_verdict(res, "WRONG: %s of %s items lost, %s duplicated or stray", cl_fmt_count(lost, a),
                   cl_fmt_count(nitems, b), cl_fmt_count(doubled, c));
    }
    if (d->fini != NULL)
        d->fini();
    free(seen);
    free(put_at);
    free(latency_ns);
    free(sampler.s);
    sampler.s = NULL;
}

static void report(int fd, const struct cl_run *run)
{
    const struct design *d = run->variant->data;
    if (d->report != NULL)
        d->report(fd);
}

static const struct cl_chapter prodcons_chapter = {
    .name = "prodcons",
    .look_for = "every item must be consumed exactly once; watch items/s per queue design, "
                "CPU against wall time, and memory with and without a bound",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 2,
    .pin_threads = true, /* the SPSC ring and polling spin: a core per thread */
    .param_choices = param_choices,
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
};

int main(int argc, char **argv)
{
    return cl_main(&prodcons_chapter, argc, argv);
}
