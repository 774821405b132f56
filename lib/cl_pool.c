#include "cl_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_time.h"

/* A done callback, in the future's list until the future settles. Those of an
 * as_completed iterator live in the iterator (owned = false) and may be taken
 * out again; cl_pool_on_done's are allocated here. */
struct callback {
    struct callback *next;
    void (*fn)(struct cl_pool_future *f, void *arg);
    void *arg;
    bool owned; /* allocated by cl_pool_on_done: freed once it has run */
};

struct cl_pool_future {
    pthread_mutex_t mu;
    pthread_cond_t settled; /* broadcast when the state becomes final, and when the
                               callbacks have run */
    _Atomic int state;      /* enum cl_pool_status, written under mu */
    bool notifying;         /* callbacks detached and running, outside mu */
    uint64_t value;
    int err;
    struct callback *callbacks;
    cl_pool_fn *fn;
    void *arg;
    _Atomic int refs;                 /* the caller's, the pool's until popped, and
                                         the completion queue's */
    struct cl_pool *pool;             /* only while it is in the pool's queues */
    struct cl_pool_future *next;      /* the pending queue */
    struct cl_pool_future *done_next; /* the completion queue */
};

/* One per thread. An idle worker waits on its own condition variable, on a stack
 * of idle workers: a submit wakes the one that went idle last, whose cache is
 * still warm, rather than whichever one a shared condition would wake. */
struct slot {
    struct cl_pool *pool;
    pthread_t thread;
    pthread_cond_t wake;
    struct slot *next_idle; /* the idle stack, most recent first */
    bool woken;             /* taken off the stack by a submit or the shutdown */
};

/* Every field is under mu but the stats' mirrors, which are written under mu and
 * read without it, and the eventfd. The counters are plain fields: a locked
 * increment of a shared counter per task would cost a cache-line transfer more. */
struct cl_pool {
    pthread_mutex_t mu;
    struct cl_pool_future *head, *tail;           /* pending, in submission order */
    struct cl_pool_future *done_head, *done_tail; /* settled, for take_done */
    bool stopping;
    int max, started;  /* threads: the cap, and how many were created */
    int waiting;       /* workers on the idle stack */
    struct slot *idle; /* the idle stack's top */
    struct slot *slots;
    int efd; /* the completion eventfd, or -1 */
    struct cl_pool_stats counts;
    _Atomic uint64_t submitted, ok, failed, cancelled; /* cl_pool_stats: mirrors */
    _Atomic int alive, nidle;
    _Atomic size_t queued;
};

static bool settled(int state)
{
    return state == CL_POOL_OK || state == CL_POOL_FAILED || state == CL_POOL_CANCELLED;
}

/* ------------------------------------------------------------ futures */

static struct cl_pool_future *future_new(struct cl_pool *pool, cl_pool_fn *fn, void *arg)
{
    struct cl_pool_future *f = malloc(sizeof *f);
    if (f == NULL)
        return NULL;
    *f = (struct cl_pool_future){.fn = fn, .arg = arg, .pool = pool, .state = CL_POOL_PENDING};
    atomic_init(&f->refs, 2); /* the caller's and the pool's */
    CL_PT(pthread_mutex_init(&f->mu, NULL));
    CL_PT(cl_cond_init_monotonic(&f->settled));
    return f;
}

void cl_pool_release(struct cl_pool_future *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    CL_PT(pthread_cond_destroy(&f->settled));
    CL_PT(pthread_mutex_destroy(&f->mu));
    free(f);
}

/* Make f final (OK, FAILED or CANCELLED) and tell everyone: the waiters in get,
 * then each callback. The caller holds a reference, so f outlives the broadcast
 * made after the unlock (a woken waiter may release its own at once). */
static void settle_locked_then_notify(struct cl_pool_future *f, int state, uint64_t value, int err)
{
    f->value = value;
    f->err = err;
    atomic_store_explicit(&f->state, state, memory_order_release);
    struct callback *cbs = f->callbacks;
    f->callbacks = NULL;
    f->notifying = cbs != NULL;
    CL_PT(pthread_mutex_unlock(&f->mu));
    CL_PT(pthread_cond_broadcast(&f->settled));
    if (cbs == NULL)
        return;
    /* in the order they were added (the list is newest first) */
    struct callback *rev = NULL;
    while (cbs != NULL) {
        struct callback *next = cbs->next;
        cbs->next = rev;
        rev = cbs;
        cbs = next;
    }
    while (rev != NULL) {
        struct callback *next = rev->next;
        bool owned = rev->owned;
        rev->fn(f, rev->arg); /* an iterator's node may be gone once this returns */
        if (owned)
            free(rev);
        rev = next;
    }
    CL_PT(pthread_mutex_lock(&f->mu));
    f->notifying = false;
    CL_PT(pthread_mutex_unlock(&f->mu));
    CL_PT(pthread_cond_broadcast(&f->settled)); /* for an iterator taking its node out */
}

enum cl_pool_status cl_pool_get(struct cl_pool_future *f, uint64_t timeout_ns, uint64_t *value,
                                int *err)
{
    CL_PT(pthread_mutex_lock(&f->mu));
    if (timeout_ns == CL_FOREVER) {
        while (!settled(atomic_load_explicit(&f->state, memory_order_relaxed)))
            CL_PT(pthread_cond_wait(&f->settled, &f->mu));
    } else if (!settled(atomic_load_explicit(&f->state, memory_order_relaxed)) && timeout_ns > 0) {
        struct timespec deadline = cl_deadline_ns(timeout_ns);
        while (!settled(atomic_load_explicit(&f->state, memory_order_relaxed))) {
            int rc = pthread_cond_timedwait(&f->settled, &f->mu, &deadline);
            if (rc == ETIMEDOUT)
                break;
            CL_PT(rc);
        }
    }
    int state = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (state == CL_POOL_OK && value != NULL)
        *value = f->value;
    if (state == CL_POOL_FAILED && err != NULL)
        *err = f->err;
    CL_PT(pthread_mutex_unlock(&f->mu));
    return settled(state) ? (enum cl_pool_status)state : CL_POOL_TIMEOUT;
}

enum cl_pool_status cl_pool_state(const struct cl_pool_future *f)
{
    return (enum cl_pool_status)atomic_load_explicit(&f->state, memory_order_acquire);
}

/* [snippet cancel] */
bool cl_pool_cancel(struct cl_pool_future *f)
{
    CL_PT(pthread_mutex_lock(&f->mu));
    int state = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (state != CL_POOL_PENDING) { /* running or finished: nothing stops a thread */
        CL_PT(pthread_mutex_unlock(&f->mu));
        return state == CL_POOL_CANCELLED;
    }
    /* still queued: the worker that pops it will see CANCELLED and skip it */
    if (!atomic_compare_exchange_strong(&f->state, &state, CL_POOL_CANCELLED)) {
        CL_PT(pthread_mutex_unlock(&f->mu)); /* a worker started it just now */
        return false;
    }
    settle_locked_then_notify(f, CL_POOL_CANCELLED, 0, 0);
    return true;
}
/* [end cancel] */

void cl_pool_on_done(struct cl_pool_future *f, void (*fn)(struct cl_pool_future *f, void *arg),
                     void *arg)
{
    struct callback *cb = cl_xcalloc(1, sizeof *cb);
    *cb = (struct callback){.fn = fn, .arg = arg, .owned = true};
    CL_PT(pthread_mutex_lock(&f->mu));
    if (!settled(atomic_load_explicit(&f->state, memory_order_relaxed))) {
        cb->next = f->callbacks;
        f->callbacks = cb;
        CL_PT(pthread_mutex_unlock(&f->mu));
        return;
    }
    CL_PT(pthread_mutex_unlock(&f->mu));
    fn(f, arg);
    free(cb);
}

/* ------------------------------------------------------------ the pool */

/* Under mu: count a future that left the pending queue (run, skipped, or
 * cancelled by shutdown), and queue it for take_done if the pool keeps one.
 * Returns whether the eventfd is to be written (after the unlock). */
static bool retire_locked(struct cl_pool *pool, struct cl_pool_future *f)
{
    struct cl_pool_stats *c = &pool->counts;
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) {
    case CL_POOL_OK:
        atomic_store_explicit(&pool->ok, ++c->ok, memory_order_relaxed);
        break;
    case CL_POOL_FAILED:
        atomic_store_explicit(&pool->failed, ++c->failed, memory_order_relaxed);
        break;
    default:
        atomic_store_explicit(&pool->cancelled, ++c->cancelled, memory_order_relaxed);
    }
    if (pool->efd < 0)
        return false;
    atomic_fetch_add(&f->refs, 1); /* the completion queue's */
    f->done_next = NULL;
    if (pool->done_tail != NULL)
        pool->done_tail->done_next = f;
    else
        pool->done_head = f;
    pool->done_tail = f;
    return true;
}

static void signal_completion(struct cl_pool *pool)
{
    uint64_t one = 1; /* after the push: a reader woken by it finds the future */
    CL_SYS_RETRY(write(pool->efd, &one, sizeof one));
}

/* [snippet worker] */
static void *worker_main(void *arg)
{
    struct slot *me = arg;
    struct cl_pool *pool = me->pool;
    struct cl_pool_future *done = NULL; /* the last task, counted under the next lock */
    CL_PT(pthread_mutex_lock(&pool->mu));
    for (;;) {
        bool wrote = done != NULL && retire_locked(pool, done);
        if (done == NULL && pool->head == NULL && !pool->stopping) {
            me->woken = false; /* idle: onto the stack, until a submit takes it off */
            me->next_idle = pool->idle;
            pool->idle = me;
            atomic_store_explicit(&pool->nidle, ++pool->waiting, memory_order_relaxed);
            while (!me->woken)
                CL_PT(pthread_cond_wait(&me->wake, &pool->mu));
            atomic_store_explicit(&pool->nidle, --pool->waiting, memory_order_relaxed);
        }
        struct cl_pool_future *f = pool->head;
        bool stop = f == NULL && pool->stopping; /* and nothing left to run */
        if (f != NULL) {
            pool->head = f->next;
            if (pool->head == NULL)
                pool->tail = NULL;
            atomic_store_explicit(&pool->queued, --pool->counts.queued, memory_order_relaxed);
        }
        CL_PT(pthread_mutex_unlock(&pool->mu));
        if (wrote)
            signal_completion(pool);
        if (done != NULL)
            cl_pool_release(done); /* the pool's reference, outside the lock */
        done = NULL;
        if (stop)
            break;
        int pending = CL_POOL_PENDING; /* -> running, unless it was cancelled */
        if (f != NULL && atomic_compare_exchange_strong(&f->state, &pending, CL_POOL_RUNNING)) {
            uint64_t value = 0;
            int err = f->fn(f->arg, &value); /* an error is a value too: never lost */
            CL_PT(pthread_mutex_lock(&f->mu));
            settle_locked_then_notify(f, err == 0 ? CL_POOL_OK : CL_POOL_FAILED, value, err);
        }
        done = f;
        CL_PT(pthread_mutex_lock(&pool->mu));
    }
    atomic_fetch_sub_explicit(&pool->alive, 1, memory_order_relaxed);
    return NULL;
}
/* [end worker] */

struct cl_pool *cl_pool_new(const struct cl_pool_opts *opts)
{
    if (opts->workers < 1 || opts->workers > CL_POOL_MAX_WORKERS) {
        errno = EINVAL;
        return NULL;
    }
    struct cl_pool *pool = calloc(1, sizeof *pool);
    struct slot *slots = calloc((size_t)opts->workers, sizeof *slots);
    if (pool == NULL || slots == NULL) {
        free(pool);
        free(slots);
        errno = ENOMEM;
        return NULL;
    }
    pool->max = opts->workers;
    pool->slots = slots;
    pool->efd = -1;
    if (opts->completions && (pool->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        int e = errno;
        free(slots);
        free(pool);
        errno = e;
        return NULL;
    }
    CL_PT(pthread_mutex_init(&pool->mu, NULL));
    for (int i = 0; i < pool->max; i++) {
        slots[i].pool = pool;
        CL_PT(pthread_cond_init(&slots[i].wake, NULL));
    }
    return pool;
}

/* [snippet submit] */
struct cl_pool_future *cl_pool_submit(struct cl_pool *pool, cl_pool_fn *fn, void *arg)
{
    struct cl_pool_future *f = future_new(pool, fn, arg);
    if (f == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    CL_PT(pthread_mutex_lock(&pool->mu));
    if (pool->stopping) {
        CL_PT(pthread_mutex_unlock(&pool->mu));
        atomic_store(&f->refs, 1);
        cl_pool_release(f);
        errno = ESHUTDOWN;
        return NULL;
    }
    if (pool->tail != NULL)
        pool->tail->next = f;
    else
        pool->head = f;
    pool->tail = f;
    atomic_store_explicit(&pool->queued, ++pool->counts.queued, memory_order_relaxed);
    atomic_store_explicit(&pool->submitted, ++pool->counts.submitted, memory_order_relaxed);
    int rc = 0;
    struct slot *wake = pool->idle; /* the worker that went idle last */
    if (wake != NULL) {
        pool->idle = wake->next_idle;
        wake->woken = true;
    } else if (pool->started < pool->max) { /* none idle: one more thread, up to the cap */
        struct slot *s = &pool->slots[pool->started];
        if ((rc = pthread_create(&s->thread, NULL, worker_main, s)) == 0) {
            pool->started++;
            atomic_fetch_add_explicit(&pool->alive, 1, memory_order_relaxed);
        }
    }
    if (rc != 0 && pool->started == 0) { /* no thread at all to run it: take it back */
        pool->head = pool->tail = NULL;
        atomic_store_explicit(&pool->queued, --pool->counts.queued, memory_order_relaxed);
        atomic_store_explicit(&pool->submitted, --pool->counts.submitted, memory_order_relaxed);
        CL_PT(pthread_mutex_unlock(&pool->mu));
        atomic_store(&f->refs, 1);
        cl_pool_release(f);
        errno = rc;
        return NULL;
    }
    CL_PT(pthread_mutex_unlock(&pool->mu));
    if (wake != NULL) /* after the unlock, so it does not wake only to wait for mu */
        CL_PT(pthread_cond_signal(&wake->wake));
    return f;
}
/* [end submit] */

int cl_pool_completion_fd(const struct cl_pool *pool)
{
    return pool->efd;
}

struct cl_pool_future *cl_pool_take_done(struct cl_pool *pool)
{
    CL_PT(pthread_mutex_lock(&pool->mu));
    struct cl_pool_future *f = pool->done_head;
    if (f != NULL) {
        pool->done_head = f->done_next;
        if (pool->done_head == NULL)
            pool->done_tail = NULL;
    }
    CL_PT(pthread_mutex_unlock(&pool->mu));
    return f;
}

void cl_pool_shutdown(struct cl_pool *pool, bool cancel_pending)
{
    CL_PT(pthread_mutex_lock(&pool->mu));
    pool->stopping = true;
    struct cl_pool_future *pending = NULL;
    if (cancel_pending) { /* take the whole queue; no worker will see it */
        pending = pool->head;
        pool->head = pool->tail = NULL;
        pool->counts.queued = 0;
        atomic_store_explicit(&pool->queued, 0, memory_order_relaxed);
    }
    struct slot *idle = pool->idle; /* wake every idle worker: it finds nothing, ends */
    pool->idle = NULL;
    for (struct slot *s = idle; s != NULL; s = s->next_idle)
        s->woken = true;
    CL_PT(pthread_mutex_unlock(&pool->mu));
    for (struct slot *s = idle, *next; s != NULL; s = next) {
        next = s->next_idle; /* read before the signal: the worker may run on at once */
        CL_PT(pthread_cond_signal(&s->wake));
    }
    while (pending != NULL) {
        struct cl_pool_future *f = pending;
        pending = f->next;
        cl_pool_cancel(f); /* false if the caller cancelled it first: fine */
        CL_PT(pthread_mutex_lock(&pool->mu));
        bool wrote = retire_locked(pool, f);
        CL_PT(pthread_mutex_unlock(&pool->mu));
        if (wrote)
            signal_completion(pool);
        cl_pool_release(f);
    }
    for (int i = 0; i < pool->started; i++) /* the running tasks finish first */
        CL_PT(pthread_join(pool->slots[i].thread, NULL));
    for (struct cl_pool_future *f; (f = cl_pool_take_done(pool)) != NULL;)
        cl_pool_release(f);
    if (pool->efd >= 0)
        CL_SYS(close(pool->efd));
    for (int i = 0; i < pool->max; i++)
        CL_PT(pthread_cond_destroy(&pool->slots[i].wake));
    CL_PT(pthread_mutex_destroy(&pool->mu));
    free(pool->slots);
    free(pool);
}

struct cl_pool_stats cl_pool_stats(const struct cl_pool *pool)
{
    return (struct cl_pool_stats){
        .submitted = atomic_load_explicit(&pool->submitted, memory_order_relaxed),
        .ok = atomic_load_explicit(&pool->ok, memory_order_relaxed),
        .failed = atomic_load_explicit(&pool->failed, memory_order_relaxed),
        .cancelled = atomic_load_explicit(&pool->cancelled, memory_order_relaxed),
        .threads = atomic_load_explicit(&pool->alive, memory_order_relaxed),
        .idle = atomic_load_explicit(&pool->nidle, memory_order_relaxed),
        .queued = atomic_load_explicit(&pool->queued, memory_order_relaxed),
    };
}

/* ------------------------------------------------------------ map and as_completed */

struct cl_pool_iter {
    size_t n, yielded;
    struct cl_pool_future **fs; /* a reference to each */
    uint64_t deadline_ns;       /* CL_FOREVER: none */
    bool ordered;               /* map: input order; as_completed: as they settle */
    /* as_completed: indices of settled futures, in the order they settled */
    pthread_mutex_t mu;
    pthread_cond_t ready_cv;
    size_t *ready, nready;
    struct callback *nodes; /* one per future, in its callback list until it fires */
    struct waiting *who;    /* node i's (iterator, index) */
};

struct waiting {
    struct cl_pool_iter *it;
    size_t index;
};

static uint64_t remaining(const struct cl_pool_iter *it)
{
    if (it->deadline_ns == CL_FOREVER)
        return CL_FOREVER;
    uint64_t now = cl_now_ns();
    return now >= it->deadline_ns ? 0 : it->deadline_ns - now;
}

static uint64_t deadline_after(uint64_t timeout_ns)
{
    return timeout_ns == CL_FOREVER ? CL_FOREVER : cl_now_ns() + timeout_ns;
}

static struct cl_pool_iter *iter_new(size_t n, uint64_t timeout_ns, bool ordered)
{
    struct cl_pool_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return NULL;
    it->fs = calloc(n ? n : 1, sizeof(struct cl_pool_future *));
    if (it->fs == NULL) {
        free(it);
        return NULL;
    }
    it->n = n;
    it->ordered = ordered;
    it->deadline_ns = deadline_after(timeout_ns);
    return it;
}

struct cl_pool_iter *cl_pool_map(struct cl_pool *pool, cl_pool_fn *fn, void *args, size_t stride,
                                 size_t n, uint64_t timeout_ns)
{
    struct cl_pool_iter *it = iter_new(n, timeout_ns, true);
    if (it == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        it->fs[i] = cl_pool_submit(pool, fn, (char *)args + i * stride);
        if (it->fs[i] == NULL) {
            int e = errno;
            it->n = i;
            cl_pool_iter_end(it);
            errno = e;
            return NULL;
        }
    }
    return it;
}

/* A future of an as_completed iterator has settled: queue its index. */
static void became_ready(struct cl_pool_future *f, void *arg)
{
    (void)f;
    struct waiting *w = arg;
    struct cl_pool_iter *it = w->it;
    CL_PT(pthread_mutex_lock(&it->mu));
    it->ready[it->nready++] = w->index;
    CL_PT(pthread_mutex_unlock(&it->mu));
    CL_PT(pthread_cond_signal(&it->ready_cv));
}

struct cl_pool_iter *cl_pool_as_completed(struct cl_pool_future *const *fs, size_t n,
                                          uint64_t timeout_ns)
{
    struct cl_pool_iter *it = iter_new(n, timeout_ns, false);
    size_t slots = n ? n : 1;
    if (it == NULL || (it->ready = calloc(slots, sizeof *it->ready)) == NULL ||
        (it->nodes = calloc(slots, sizeof *it->nodes)) == NULL ||
        (it->who = calloc(slots, sizeof *it->who)) == NULL) {
        if (it != NULL) {
            free(it->ready);
            free(it->nodes);
            free(it->fs);
        }
        free(it);
        errno = ENOMEM;
        return NULL;
    }
    CL_PT(pthread_mutex_init(&it->mu, NULL));
    CL_PT(cl_cond_init_monotonic(&it->ready_cv));
    for (size_t i = 0; i < n; i++) {
        struct cl_pool_future *f = fs[i];
        atomic_fetch_add(&f->refs, 1);
        it->fs[i] = f;
        it->who[i] = (struct waiting){it, i};
        it->nodes[i] = (struct callback){.fn = became_ready, .arg = &it->who[i]};
        CL_PT(pthread_mutex_lock(&f->mu));
        bool done = settled(atomic_load_explicit(&f->state, memory_order_relaxed));
        if (!done) {
            it->nodes[i].next = f->callbacks;
            f->callbacks = &it->nodes[i];
        }
        CL_PT(pthread_mutex_unlock(&f->mu));
        if (done)
            became_ready(f, &it->who[i]);
    }
    return it;
}

enum cl_pool_status cl_pool_next(struct cl_pool_iter *it, size_t *index, uint64_t *value, int *err)
{
    if (it->yielded == it->n)
        return CL_POOL_END;
    size_t i;
    if (it->ordered) { /* the next in input order, however long the ones after took */
        i = it->yielded;
        enum cl_pool_status st = cl_pool_get(it->fs[i], remaining(it), value, err);
        if (st == CL_POOL_TIMEOUT)
            return st;
        it->yielded++;
        *index = i;
        return st;
    }
    CL_PT(pthread_mutex_lock(&it->mu));
    while (it->nready == it->yielded) {
        uint64_t left = remaining(it);
        if (left == 0)
            break;
        if (left == CL_FOREVER) {
            CL_PT(pthread_cond_wait(&it->ready_cv, &it->mu));
            continue;
        }
        struct timespec deadline = cl_deadline_ns(left);
        int rc = pthread_cond_timedwait(&it->ready_cv, &it->mu, &deadline);
        if (rc != ETIMEDOUT)
            CL_PT(rc);
    }
    bool got = it->nready > it->yielded;
    i = got ? it->ready[it->yielded] : 0;
    CL_PT(pthread_mutex_unlock(&it->mu));
    if (!got)
        return CL_POOL_TIMEOUT;
    it->yielded++;
    *index = i;
    return cl_pool_get(it->fs[i], 0, value, err);
}

struct cl_pool_future *cl_pool_iter_future(const struct cl_pool_iter *it, size_t i)
{
    return i < it->n ? it->fs[i] : NULL;
}

/* Take an iterator's node out of f's callbacks, or wait until it has run. */
static void unhook(struct cl_pool_future *f, struct callback *node)
{
    CL_PT(pthread_mutex_lock(&f->mu));
    bool found = false;
    for (struct callback **p = &f->callbacks; *p != NULL; p = &(*p)->next)
        if (*p == node) {
            *p = node->next;
            found = true;
            break;
        }
    while (!found && f->notifying)
        CL_PT(pthread_cond_wait(&f->settled, &f->mu));
    CL_PT(pthread_mutex_unlock(&f->mu));
}

void cl_pool_iter_end(struct cl_pool_iter *it)
{
    for (size_t i = 0; i < it->n; i++) {
        if (it->ordered)
            cl_pool_cancel(it->fs[i]); /* a no-op for the started and the finished */
        else
            unhook(it->fs[i], &it->nodes[i]);
        cl_pool_release(it->fs[i]);
    }
    if (!it->ordered) {
        CL_PT(pthread_cond_destroy(&it->ready_cv));
        CL_PT(pthread_mutex_destroy(&it->mu));
    }
    free(it->ready);
    free(it->nodes);
    free(it->who);
    free(it->fs);
    free(it);
}

const char *cl_pool_status_str(enum cl_pool_status s)
{
    static const char *const words[] = {"pending",   "running", "ok", "failed",
                                        "cancelled", "timeout", "end"};
    return (unsigned)s < sizeof words / sizeof words[0] ? words[s] : "?";
}
