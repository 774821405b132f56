/* sync: initialise once, on first use, from many threads. Double-checked locking
 * with a plain pointer (a data race), with an acquire load and a release store,
 * and with pthread_once; and what each check costs once the object exists. */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "sync.h"

struct config {
    uint64_t value;
};

static struct config storage;
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static struct config *plain_instance;
static _Atomic(struct config *) atomic_instance;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t floor_word = 42;

#define CONFIG_VALUE 42

static struct config *make(void)
{
    atomic_fetch_add(&S.inits, 1);
    storage.value = CONFIG_VALUE; /* the object's fields, then the pointer to it */
    return &storage;
}

/* [snippet dcl-broken] */
__attribute__((noinline)) static struct config *get_broken(void)
{
    if (plain_instance == NULL) { /* a plain read, racing with the write below */
        CL_PT(pthread_mutex_lock(&init_mu));
        if (plain_instance == NULL)
            plain_instance = make();
        CL_PT(pthread_mutex_unlock(&init_mu));
    }
    return plain_instance;
}
/* [end dcl-broken] */

/* [snippet dcl-atomic] */
__attribute__((noinline)) static struct config *get_atomic(void)
{
    struct config *c = atomic_load_explicit(&atomic_instance, memory_order_acquire);
    if (c == NULL) {
        CL_PT(pthread_mutex_lock(&init_mu));
        c = atomic_load_explicit(&atomic_instance, memory_order_relaxed);
        if (c == NULL) {
            c = make();
            /* publishes the fields written before it to every acquire load that sees it */
            atomic_store_explicit(&atomic_instance, c, memory_order_release);
        }
        CL_PT(pthread_mutex_unlock(&init_mu));
    }
    return c;
}
/* [end dcl-atomic] */

/* [snippet once] */
static void init_once(void)
{
    atomic_instance = make();
}

__attribute__((noinline)) static struct config *get_once(void)
{
    CL_PT(pthread_once(&once, init_once));
    return atomic_load_explicit(&atomic_instance, memory_order_relaxed);
}
/* [end once] */

/* The comparisons: a mutex on every call, and the bare acquire load. */
__attribute__((noinline)) static struct config *get_locked(void)
{
    CL_PT(pthread_mutex_lock(&init_mu));
    struct config *c = &storage;
    CL_PT(pthread_mutex_unlock(&init_mu));
    return c;
}

__attribute__((noinline)) static uint64_t load_floor(void)
{
    return atomic_load_explicit(&floor_word, memory_order_acquire);
}

typedef struct config *(*getter)(void);

/* ns per call of get over n calls; the sum of the values read goes to *sum.
 * Inlined where get is a constant, so that the call is direct, as in real code. */
static inline __attribute__((always_inline)) double time_calls(struct cl_worker *w, getter get,
                                                               uint64_t n, uint64_t *sum)
{
    uint64_t s = 0, t0 = cl_now_ns();
    for (uint64_t done = 0; done < n;) {
        uint64_t chunk = n - done < 4096 ? n - done : 4096;
        for (uint64_t i = 0; i < chunk; i++)
            s += get()->value;
        done += chunk;
        if (w != NULL)
            atomic_store_explicit(&w->progress, done, memory_order_relaxed);
    }
    *sum = s;
    return (double)(cl_now_ns() - t0) / (double)(n > 0 ? n : 1);
}

void lazy_worker(struct cl_worker *w)
{
    static const getter getters[] = {get_broken, get_atomic, get_once};
    getter get = getters[how_of(w->run)->lazy];
    struct tally *t = &S.tallies[w->id];
    if (w->id == 0) {
        (void)get()->value; /* T1 initialises first ... */
        atomic_store_explicit(&S.go, true, memory_order_relaxed);
    } else {
        /* ... and the others see the pointer through no lock of theirs: a relaxed
         * flag orders nothing, so only the check itself can synchronise */
        while (!atomic_load_explicit(&S.go, memory_order_relaxed))
            sched_yield();
    }
    uint64_t sum;
    switch (how_of(w->run)->lazy) {
    case 0:
        t->call_ns = time_calls(w, get_broken, w->iters, &sum);
        break;
    case 1:
        t->call_ns = time_calls(w, get_atomic, w->iters, &sum);
        break;
    default:
        t->call_ns = time_calls(w, get_once, w->iters, &sum);
        break;
    }
    t->torn = w->iters - sum / CONFIG_VALUE; /* calls that read an unset value */
    if (w->id == 0) {
        uint64_t n = w->iters < 1000000 ? w->iters : 1000000, s = 0;
        S.mutex_call_ns = time_calls(NULL, get_locked, n, &sum);
        uint64_t f = cl_now_ns();
        for (uint64_t i = 0; i < n; i++)
            s += load_floor();
        S.floor_ns = (double)(cl_now_ns() - f) / (double)(n > 0 ? n : 1);
        S.sink = s + sum; /* used: the calls cannot be dropped */
    }
}
