/* sync: what the lessons (prims.c, rwlock.c, dcl.c) and the declaration with its
 * hooks (sync.c) share. */
#ifndef SYNC_H
#define SYNC_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conclab.h"

enum { HOLD_US, LOCK, READS, DURATION, WORK_NS }; /* the chapter's own flags */

/* Which family a variant belongs to: how it is set up and judged. */
enum kind {
    POOL,        /* semaphore-pool, over-release, bounded */
    LOST_WAKEUP, /* lost-wakeup, join-state */
    EVENTS,      /* event-handshake, event-no-ack */
    SEM_MUTEX,   /* semaphore-mutex-deadlock, semaphore-mutex-fixed */
    RW_MIX,      /* rwlock-reader-pref, -writer-pref, -fair, rwlock-mutex */
    RW_STARVE,   /* rwlock-starve */
    RW_RECURSE,  /* rwlock-recursive-read */
    LAZY_INIT,   /* dcl-broken, dcl-atomic, once */
    GUN,         /* starting-gun */
    STATE_WAIT,  /* state-machine */
    TIMED_BUF,   /* cond-timed-signal */
    COSTS,       /* primitive-costs */
};

/* The locks the reader-writer variants choose from (--lock's order). */
enum rw_policy { RW_READER_PREF, RW_WRITER_NP, RW_WRITER_PREF, RW_FAIR, RW_MUTEX };

/* A variant's settings beyond its kind. */
struct how {
    int permits;         /* POOL: the semaphore's initial value */
    bool stray_release;  /* POOL: one release more than was acquired */
    bool bounded;        /* POOL: lib's bounded semaphore, not sem_t */
    bool fixed;          /* LOST_WAKEUP, SEM_MUTEX: the cure; EVENTS: with the ack */
    enum rw_policy lock; /* RW_MIX: the lock */
    int lazy;            /* LAZY_INIT: 0 broken, 1 acquire/release, 2 pthread_once */
};

static inline const struct how *how_of(const struct cl_run *run)
{
    return run->variant->data;
}

#define POOL_PERMITS     3
#define GIVE_UP_NS       100000000ull /* rwlock-starve: a reader's wait for its successor */
#define MAX_WAIT_LOGS    65536        /* writer waits kept per thread */
#define MAX_COST_THREADS 64           /* primitive-costs: --threads at most */
#define STATES           5            /* state-machine: the service's states after 0 */
#define BUF_CAP          2            /* cond-timed-signal: the buffer's slots */
#define TIMED_WAIT_NS    5000000ull   /* cond-timed-signal: every timed wait, 5 ms */
#define TIMED_PAUSE_NS   50000000ull  /* ... shorter than the producer's pause, 50 ms */

/* The primitives primitive-costs times, in its metrics' order. */
enum prim {
    P_MUTEX,
    P_SEM,
    P_BSEM,
    P_EVENT,
    P_RW_READ,
    P_RW_WRITE,
    P_FAIR_READ,
    P_FAIR_WRITE,
    NPRIMS
};

/* One reader-writer lock of any policy. */
struct rw {
    enum rw_policy policy;
    pthread_rwlock_t rw;
    struct cl_rwlock fair;
    pthread_mutex_t mu;
};
void rw_init(struct rw *l, enum rw_policy p);
void rw_destroy(struct rw *l);
void rw_rdlock(struct rw *l);
void rw_rdunlock(struct rw *l);
void rw_wrlock(struct rw *l);
void rw_wrunlock(struct rw *l);

/* One thread's own counts, on a cache line of its own. */
struct tally {
    _Alignas(64) uint64_t reads, writes, torn, refused, consumed, skipped;
    uint64_t *waits; /* RW_MIX: each write's wait for the lock, ns */
    uint64_t nwaits, censored;
    double call_ns;         /* LAZY_INIT: per get() after initialisation */
    double prim_ns[NPRIMS]; /* COSTS: ns per acquire and release */
};

/* What the threads of a run share; setup() makes it, teardown() frees it. */
struct shared {
    /* POOL */
    sem_t pool;
    struct cl_bsem bpool;
    atomic_int holders, high;
    /* LOST_WAKEUP */
    pthread_mutex_t m;
    pthread_cond_t cv;
    bool done;
    sem_t signalled;
    atomic_uint_fast64_t signal_ns, wait_ns;
    /* EVENTS */
    struct cl_event ready, acked;
    _Atomic uint64_t slot;         /* the item handed over (a producer may overwrite it) */
    atomic_uint_fast64_t produced; /* items published */
    atomic_bool producer_waits, producer_done;
    /* SEM_MUTEX */
    struct cl_mutex buf_lock;
    sem_t items, consumer_in;
    uint64_t buffered;
    /* RW_MIX, RW_STARVE */
    struct rw lock;
    struct cl_rwlock fair;         /* COSTS */
    uint64_t a, b;                 /* equal whenever no writer is inside */
    atomic_int inside, max_inside; /* readers in the read section */
    sem_t *turn;                   /* RW_STARVE: each reader's go */
    pthread_mutex_t baton_mu;      /* RW_STARVE: counts the readers who got in */
    pthread_cond_t baton_cv;
    uint64_t entered;
    atomic_bool writer_done;
    _Atomic pid_t writer_tid; /* RW_RECURSE */
    /* LAZY_INIT */
    atomic_int inits;
    atomic_bool go;
    double mutex_call_ns, floor_ns;
    /* GUN */
    sem_t next_round, arrived, woke;
    struct cl_event start;
    pthread_barrier_t gate; /* GUN, STATE_WAIT: every thread */
    _Atomic uint64_t *wake_ns;
    uint64_t fired_ns;
    double *skew_us[2], *first_us[2]; /* per round: [0] the event, [1] the barrier */
    /* STATE_WAIT: S.m guards these */
    int state, asleep_on[STATES + 1];
    pthread_cond_t state_cv[STATES + 1]; /* [0]: the one for all states */
    uint64_t *wakeups[2], total_wakeups; /* per waiter: [0] one condition, [1] per state */
    /* TIMED_BUF: S.m and S.cv guard these */
    uint64_t buf[BUF_CAP];
    int head, count;
    uint64_t sink;
    struct tally *tallies;
};

extern struct shared S;

void pool_stray_release(const struct cl_run *run);
void pool_worker(struct cl_worker *w);
void join_worker(struct cl_worker *w);
void event_worker(struct cl_worker *w);
void sem_mutex_worker(struct cl_worker *w);
void rw_mix_worker(struct cl_worker *w);
void rw_starve_worker(struct cl_worker *w);
void rw_recursive_worker(struct cl_worker *w);
void lazy_worker(struct cl_worker *w);
void gun_thread(struct cl_worker *w);
void state_thread(struct cl_worker *w);
void timed_buffer_thread(struct cl_worker *w);
void costs_worker(struct cl_worker *w);

#endif
