/* async, locks on one thread: lost updates across an await and the lock that
 * stops them, a lock held over slow work, and a semaphore. The primitives are
 * lib's (lib/cl_async.h): asyncio's, on the loop's one thread. */
#include "async.h"

/* n tasks of one kind, gathered (the gather keeps them). */
struct cl_future *gather_of(struct cl_loop *loop, cl_task_fn *fn, size_t size, const char *name,
                            int n, void (*init)(struct cl_task *, int))
{
    struct cl_future *futs[16] = {0};
    if (n > 16)
        cl_fatal("gather_of: %d tasks, at most 16", n);
    for (int i = 0; i < n; i++) {
        struct cl_task *t = cl_task_new(loop, fn, size, name);
        init(t, i);
        futs[i] = &t->fut;
    }
    struct cl_future *all = cl_gather_new(loop, futs, (size_t)n, 0);
    for (int i = 0; i < n; i++)
        cl_future_unref(futs[i]);
    return all;
}

/* ---- race-across-await and async-lock: 3 tasks x 5 increments --------------------- */

static long counter;
static struct cl_alock counter_lock;

/* [snippet race-across-await] */
struct incrementer {
    struct cl_task task;
    int i;
    long seen;
};

static int unlocked_run(struct cl_task *t)
{
    struct incrementer *k = (struct incrementer *)t;
    CL_BEGIN(t);
    for (k->i = 0; k->i < 5; k->i++) {
        k->seen = counter;       /* read */
        CL_SLEEP(t, ns_of(0.1)); /* await asyncio.sleep(0.1): the others run */
        counter = k->seen + 1;   /* write back what was read: theirs are lost */
    }
    CL_END(t);
}
/* [end race-across-await] */

/* [snippet async-lock] */
static int locked_run(struct cl_task *t)
{
    struct incrementer *k = (struct incrementer *)t;
    CL_BEGIN(t);
    for (k->i = 0; k->i < 5; k->i++) {
        CL_LOCK(t, &counter_lock); /* async with lock: */
        k->seen = counter;
        CL_SLEEP(t, ns_of(0.1)); /* the others wait for the lock, not for the sleep */
        counter = k->seen + 1;
        cl_alock_release(&counter_lock);
    }
    CL_END(t);
}
/* [end async-lock] */

static void no_init(struct cl_task *t, int i)
{
    (void)t;
    (void)i;
}

static void race(struct cl_run *run, cl_task_fn *fn)
{
    struct cl_loop *loop = loop_open(run);
    cl_alock_init(&counter_lock, loop, "the counter's lock");
    struct cl_future *all =
        gather_of(loop, fn, sizeof(struct incrementer), "incrementer", 3, no_init);
    loop_run_until(loop, all);
    cl_future_unref(all);
    loop_close(loop);
}

void run_race_across_await(struct cl_run *run)
{
    race(run, unlocked_run);
}

void run_async_lock(struct cl_run *run)
{
    race(run, locked_run);
}

static void judge_race(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = counter == 15;
    res->ops = 15;
    cl_metric_int(res, "final", counter);
    cl_metric_int(res, "lost", 15 - counter);
    cl_verdict(res,
               "15 increments by 3 tasks on one thread, no threads at all: the counter "
               "says %ld (%ld lost)",
               counter, 15 - counter);
}

const struct family race_f = {judge_race};

/* ---- lock-over-compute: a cache, 8 requests for 4 keys, 0.3 units to compute one ---------- */

#define KEYS 4

static struct {
    struct cl_alock one, per_key[KEYS];
    bool per; /* a lock per key, or one for all */
    bool have[KEYS];
    intptr_t value[KEYS];
    int computes;
    bool wrong; /* a request got a wrong value */
} cache;

/* [snippet cache] */
struct request {
    struct cl_task task;
    int key;
    struct cl_alock *lock;
};

static int request_run(struct cl_task *t)
{
    struct request *r = (struct request *)t;
    CL_BEGIN(t);
    if (cache.have[r->key]) /* a hit: no lock */
        CL_RETURN(t, cache.value[r->key]);
    r->lock = cache.per ? &cache.per_key[r->key] : &cache.one;
    CL_LOCK(t, r->lock);
    if (!cache.have[r->key]) { /* check again: another task may have computed it */
        cache.computes++;
        CL_SLEEP(t, ns_of(0.3)); /* await compute(key), the lock held */
        cache.value[r->key] = (intptr_t)r->key * r->key;
        cache.have[r->key] = true;
    }
    cl_alock_release(r->lock);
    CL_RETURN(t, cache.value[r->key]);
    CL_END(t);
}
/* [end cache] */

static struct {
    double units[2];
    int computes[2];
} cached;

static void init_request(struct cl_task *t, int i)
{
    ((struct request *)t)->key = i % KEYS;
}

void run_lock_over_compute(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    cl_alock_init(&cache.one, loop, "the cache's lock");
    for (int k = 0; k < KEYS; k++)
        cl_alock_init(&cache.per_key[k], loop, "a key's lock");
    for (int pass = 0; pass < 2; pass++) {
        cache.per = pass == 1;
        memset(cache.have, 0, sizeof cache.have);
        cache.computes = 0;
        uint64_t t0 = cl_now_ns();
        struct cl_future *futs[2 * KEYS];
        for (int i = 0; i < 2 * KEYS; i++) {
            struct cl_task *t = cl_task_new(loop, request_run, sizeof(struct request), "request");
            init_request(t, i);
            futs[i] = &t->fut;
        }
        struct cl_future *all = cl_gather_new(loop, futs, (size_t)2 * KEYS, 0);
        loop_run_until(loop, all);
        cached.units[pass] = units_since(t0);
        cached.computes[pass] = cache.computes;
        for (int i = 0; i < 2 * KEYS; i++) {
            cache.wrong |= futs[i]->value != (intptr_t)(i % KEYS) * (i % KEYS);
            cl_future_unref(futs[i]);
        }
        cl_future_unref(all);
    }
    loop_close(loop);
}

static void judge_lock_over_compute(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = !cache.wrong && cached.computes[0] == KEYS && cached.computes[1] == KEYS;
    res->ops = (uint64_t)4 * KEYS;
    cl_metric_real(res, "one_lock_units", cached.units[0]);
    cl_metric_real(res, "per_key_units", cached.units[1]);
    cl_verdict(res,
               "8 requests for 4 keys, each computed once: %.2f units under one lock (the "
               "computes in turn), %.2f with a lock per key",
               cached.units[0], cached.units[1]);
}

const struct family lock_over_compute_f = {judge_lock_over_compute};

/* ---- semaphore: Semaphore(2), 6 tasks of 1 unit -------------------------------------------- */

static struct {
    struct cl_asem sem;
    int inside, most;
    double units;
} limited;

/* [snippet semaphore] */
static int limited_run(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_SEM_ACQUIRE(t, &limited.sem); /* async with semaphore: */
    if (++limited.inside > limited.most)
        limited.most = limited.inside;
    CL_SLEEP(t, unit_ns); /* await asyncio.sleep(1) */
    limited.inside--;
    cl_asem_release(&limited.sem);
    CL_END(t);
}
/* [end semaphore] */

void run_semaphore(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    cl_asem_init(&limited.sem, loop, 2, 0, "a permit");
    uint64_t t0 = cl_now_ns();
    struct cl_future *all =
        gather_of(loop, limited_run, sizeof(struct cl_task), "limited", 6, no_init);
    loop_run_until(loop, all);
    limited.units = units_since(t0);
    cl_future_unref(all);
    loop_close(loop);
}

static void judge_semaphore(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = limited.most == 2 && limited.units >= 3; /* never faster than 3 waves */
    res->ops = 6;
    cl_metric_int(res, "most_inside", limited.most);
    cl_metric_real(res, "makespan_units", limited.units);
    cl_verdict(res, "6 tasks of 1 unit, at most %d inside at once: %.2f units (3 waves of 2)",
               limited.most, limited.units);
}

const struct family semaphore_f = {judge_semaphore};
