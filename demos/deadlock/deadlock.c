/* deadlock: threads that wait for each other forever, the watchdog that catches
 * them and names the cycle, and the standard cures with what each costs.
 *
 * Every variant is one thread's whole job. The bank variants move money between
 * accounts, each with its own lock; the philosophers share forks; lockdep runs an
 * AB/BA schedule that never overlaps and lets the checker find the inversion.
 * The locks are lib/'s instrumented cl_mutex, which records who holds and who
 * waits for each lock, so the watchdog's report can print the wait-for cycle.
 * cl_tick() counts completed operations only: retries are not progress. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conclab.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h> /* RUNNING_ON_VALGRIND: a macro, no library */
#else
#define RUNNING_ON_VALGRIND 0
#endif

enum { ACCOUNTS, PHILOSOPHERS, HOLD_US, DURATION, WORK_NS }; /* the chapter's own flags */

#define OPENING       1000       /* each account's opening balance */
#define TIMED_WAIT_NS 1000000ull /* timed: give up on the second lock after 1 ms */

struct account {
    _Alignas(64) struct cl_mutex lock;
    int64_t balance;
    char name[16];      /* "A", "B", ... or "acct 42" */
    char wait_text[32]; /* "waits for A": the watchdog prints it */
};

/* What each variant's threads share; setup() resets it, check() frees it. */
static struct account *bank;
static int naccounts;
static struct cl_mutex bank_lock; /* global-lock */
static struct cl_mutex forks_storage[256];
static char fork_names[256][16], fork_waits[256][32];
static int nforks;
static sem_t seats;             /* philosophers-waiter: N-1 seats at the table */
static struct cl_mutex one;     /* self, errorcheck, recursive */
static struct cl_mutex la, lb;  /* lockdep's A and B */
static sem_t handoff;           /* lockdep: the second order starts after the first ends */
static uint64_t shared_count;   /* errorcheck, recursive, lockdep: under the lock */
static pthread_barrier_t phase; /* trylock-livelock: between its two phases */

struct tally {
    _Alignas(64) uint64_t done, retries, timeouts, edeadlk, to_self; /* one thread's own */
    uint64_t ref_done, ref_retries; /* trylock-livelock's jittered phase */
};
static struct tally *tallies;

static struct cl_mutex **all_locks; /* for the watchdog's report */
static size_t nall;

/* How each variant is set up and judged. */
enum family { BANK, PHILO, ONE_LOCK, LOCKDEP };
struct how {
    enum family family;
    int hold_us;   /* pause between the first and the second lock, unless --hold-us */
    bool two_lock; /* with 2 accounts, even threads go A -> B and odd ones B -> A */
    int kind;      /* ONE_LOCK: the pthread mutex type */
};

static const struct how *how_of(const struct cl_run *run)
{
    return run->variant->data;
}

static int hold_us(const struct cl_worker *w)
{
    long long opt = w->run->opts->param[HOLD_US];
    return opt >= 0 ? (int)opt : how_of(w->run)->hold_us;
}

/* The pause between taking the first lock and the second: the window in which
 * the other thread takes the second one. */
static void pause_between(const struct cl_worker *w)
{
    int us = hold_us(w);
    if (us > 0)
        cl_sleep_ns((uint64_t)us * 1000);
}

/* [snippet take] */
/* Take a lock that may block, saying so to the watchdog and the trace. In the
 * trace, a thread is either holding and running (hold) or blocked (wait), even
 * when it blocks with a lock in hand, so the timeline shows where it is stuck. */
static void take(struct cl_worker *w, struct cl_mutex *m, const char *wait_text)
{
    cl_span_close(w, CL_SPAN_HOLD);
    cl_status(w, wait_text);
    cl_span_open(w, CL_SPAN_WAIT);
    CL_PT(cl_mutex_lock(m));
    cl_span_close(w, CL_SPAN_WAIT);
    cl_status(w, NULL);
    cl_span_open(w, CL_SPAN_HOLD);
}

static void drop(struct cl_mutex *m)
{
    CL_PT(cl_mutex_unlock(m));
}
/* [end take] */

/* --- the bank -------------------------------------------------------------- */

struct pair {
    struct account *from, *to;
};

/* A random transfer, which may be to the same account (1 in N). With two
 * accounts, the two-lock variants use the fixed AB/BA pattern instead. */
static struct pair pick(struct cl_worker *w)
{
    if (how_of(w->run)->two_lock && naccounts == 2)
        return w->id % 2 == 0 ? (struct pair){&bank[0], &bank[1]}
                              : (struct pair){&bank[1], &bank[0]};
    uint64_t r = cl_rand(w);
    return (struct pair){&bank[r % (uint64_t)naccounts], &bank[(r >> 32) % (uint64_t)naccounts]};
}

/* --work-ns: busy work with the accounts locked, as a real transfer would do
 * (validate, log, ...). It spins rather than sleeps: nanoseconds matter here. */
static void work_inside(const struct cl_worker *w)
{
    long long ns = w->run->opts->param[WORK_NS];
    if (ns > 0)
        for (uint64_t end = cl_now_ns() + (uint64_t)ns; cl_now_ns() < end;)
            ;
}

static void move(struct cl_worker *w, struct pair p)
{
    work_inside(w);
    int64_t amount = 1 + (int64_t)(cl_rand(w) % 10);
    tallies[w->id].to_self += p.from == p.to;
    p.from->balance -= amount;
    p.to->balance += amount;
}

static void done_one(struct cl_worker *w)
{
    cl_span_close(w, CL_SPAN_HOLD);
    tallies[w->id].done++;
    cl_tick(w);
}

/* [snippet abba] */
static void transfer_abba(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w); /* T1: A -> B, T2: B -> A */
        take(w, &p.from->lock, p.from->wait_text);
        pause_between(w);                      /* meanwhile T2 takes B ... */
        take(w, &p.to->lock, p.to->wait_text); /* ... and waits for A: neither moves */
        move(w, p);
        drop(&p.to->lock);
        drop(&p.from->lock);
        done_one(w);
    }
}
/* [end abba] */

/* [snippet ordered] */
static void transfer_by_address(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w);
        /* every thread takes the lower address first: no cycle can form */
        struct account *first = p.from < p.to ? p.from : p.to;
        struct account *second = p.from < p.to ? p.to : p.from;
        take(w, &first->lock, first->wait_text);
        pause_between(w);
        if (second != first) /* a transfer to itself takes one lock */
            take(w, &second->lock, second->wait_text);
        move(w, p);
        if (second != first)
            drop(&second->lock);
        drop(&first->lock);
        done_one(w);
    }
}
/* [end ordered] */

/* [snippet backoff] */
/* After a failed try: sleep a random time, doubling its range each attempt, so
 * two threads that collided once are unlikely to collide again. */
static void backoff(struct cl_worker *w, int attempt)
{
    uint64_t base_ns = (uint64_t)(hold_us(w) > 0 ? hold_us(w) : 1) * 1000;
    uint64_t range = base_ns << (attempt < 6 ? attempt : 6);
    cl_sleep_ns(cl_rand(w) % range);
}
/* [end backoff] */

/* [snippet trylock] */
static void transfer_trylock(struct cl_worker *w, uint64_t n, bool jitter, uint64_t deadline_ns)
{
    struct tally *t = &tallies[w->id];
    for (uint64_t i = 0; i < n && cl_now_ns() < deadline_ns; i++) {
        struct pair p = pick(w);
        for (int attempt = 0;; attempt++) {
            take(w, &p.from->lock, p.from->wait_text);
            if (p.to == p.from)
                break;
            pause_between(w);
            if (cl_mutex_trylock(&p.to->lock) == 0) /* never waits for the second lock */
                break;
            drop(&p.from->lock); /* busy: give back the first lock and start again */
            cl_span_close(w, CL_SPAN_HOLD);
            t->retries++;
            if (jitter)
                backoff(w, attempt);
            if (cl_now_ns() >= deadline_ns)
                return;
        }
        move(w, p);
        if (p.to != p.from)
            drop(&p.to->lock);
        drop(&p.from->lock);
        done_one(w);
    }
}
/* [end trylock] */

static void trylock_jitter(struct cl_worker *w)
{
    transfer_trylock(w, w->iters, true, UINT64_MAX);
}

/* [snippet trylock-livelock] */
static void trylock_livelock(struct cl_worker *w)
{
    struct tally *t = &tallies[w->id];
    uint64_t ms = (uint64_t)w->run->opts->param[DURATION];
    /* phase 1: retry at once, every thread in step with the others */
    transfer_trylock(w, w->iters, false, cl_now_ns() + ms * 1000000);
    uint64_t done = t->done, retries = t->retries;
    /* phase 2, the reference: the same flags with jitter, 50 transfers each */
    pthread_barrier_wait(&phase);
    transfer_trylock(w, 50, true, UINT64_MAX);
    t->ref_done = t->done - done;
    t->ref_retries = t->retries - retries;
    t->done = done;
    t->retries = retries;
}
/* [end trylock-livelock] */

/* [snippet timed] */
static void transfer_timed(struct cl_worker *w)
{
    struct tally *t = &tallies[w->id];
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w);
        for (int attempt = 0;; attempt++) {
            take(w, &p.from->lock, p.from->wait_text);
            if (p.to == p.from)
                break;
            pause_between(w);
            cl_status(w, p.to->wait_text);
            int rc = cl_mutex_timedlock(&p.to->lock, TIMED_WAIT_NS); /* waits 1 ms at most */
            cl_status(w, NULL);
            if (rc == 0)
                break;
            if (rc != ETIMEDOUT)
                CL_PT(rc);
            drop(&p.from->lock); /* gave up: release, back off, start again */
            cl_span_close(w, CL_SPAN_HOLD);
            t->timeouts++;
            backoff(w, attempt);
        }
        move(w, p);
        if (p.to != p.from)
            drop(&p.to->lock);
        drop(&p.from->lock);
        done_one(w);
    }
}
/* [end timed] */

/* [snippet global-lock] */
static void transfer_global(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w);
        take(w, &bank_lock, "waits for the bank lock"); /* one lock: nothing to order */
        move(w, p);
        drop(&bank_lock);
        done_one(w);
    }
}
/* [end global-lock] */

/* [snippet transfer] */
static void transfer_naive(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w);
        take(w, &p.from->lock, p.from->wait_text); /* lock from ... */
        pause_between(w);
        take(w, &p.to->lock, p.to->wait_text); /* ... then to; transfer(a, a) waits for itself */
        move(w, p);
        drop(&p.to->lock);
        drop(&p.from->lock);
        done_one(w);
    }
}
/* [end transfer] */

/* [snippet transfer-ordered] */
static void transfer_by_id(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w);
        if (p.from == p.to) { /* transfer(a, a): one lock */
            take(w, &p.from->lock, p.from->wait_text);
            move(w, p); /* (nothing moves, but it is counted) */
            drop(&p.from->lock);
            done_one(w);
            continue;
        }
        /* lower account id first (the array index), whichever way the money goes */
        struct account *first = p.from < p.to ? p.from : p.to;
        struct account *second = p.from < p.to ? p.to : p.from;
        take(w, &first->lock, first->wait_text);
        pause_between(w);
        take(w, &second->lock, second->wait_text);
        move(w, p);
        drop(&second->lock);
        drop(&first->lock);
        done_one(w);
    }
}
/* [end transfer-ordered] */

/* --- dining philosophers --------------------------------------------------- */

static uint64_t philo_deadline(const struct cl_worker *w)
{
    return cl_now_ns() + (uint64_t)w->run->opts->param[DURATION] * 1000000;
}

/* [snippet eat] */
static void eat(struct cl_worker *w, int first, int second)
{
    take(w, &forks_storage[first], fork_waits[first]);
    pause_between(w); /* the neighbour picks up its first fork meanwhile */
    take(w, &forks_storage[second], fork_waits[second]);
    tallies[w->id].done++; /* a meal */
    drop(&forks_storage[second]);
    drop(&forks_storage[first]);
    cl_span_close(w, CL_SPAN_HOLD);
    cl_tick(w);
    pause_between(w); /* think a while, forks down */
}
/* [end eat] */

/* [snippet philosophers] */
static void philosopher_naive(struct cl_worker *w)
{
    int left = w->id, right = (w->id + 1) % nforks;
    for (uint64_t i = 0; i < w->iters; i++) /* no deadline: it deadlocks first */
        eat(w, left, right);                /* everyone holds a left fork, waits for a right one */
}
/* [end philosophers] */

/* [snippet philosophers-ordered] */
static void philosopher_ordered(struct cl_worker *w)
{
    int left = w->id, right = (w->id + 1) % nforks;
    int low = left < right ? left : right, high = left < right ? right : left;
    uint64_t deadline = philo_deadline(w);
    for (uint64_t i = 0; i < w->iters && cl_now_ns() < deadline; i++)
        eat(w, low, high); /* the last philosopher reaches for fork 0 first: no ring */
}
/* [end philosophers-ordered] */

/* [snippet philosophers-waiter] */
static void philosopher_waiter(struct cl_worker *w)
{
    int left = w->id, right = (w->id + 1) % nforks;
    uint64_t deadline = philo_deadline(w);
    for (uint64_t i = 0; i < w->iters && cl_now_ns() < deadline; i++) {
        cl_status(w, "waits for a seat");
        CL_PT(sem_wait(&seats) == 0 ? 0 : errno); /* N-1 seats: one philosopher always eats */
        cl_status(w, NULL);
        eat(w, left, right);
        CL_PT(sem_post(&seats) == 0 ? 0 : errno);
    }
}
/* [end philosophers-waiter] */

/* --- one lock, taken twice ------------------------------------------------- */

/* [snippet self] */
static void relock_default(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, &one, "waits for M");
        take(w, &one, "waits for M, which it holds itself"); /* a default mutex: forever */
        shared_count++;
        drop(&one);
        drop(&one);
        cl_tick(w);
    }
}
/* [end self] */

/* [snippet errorcheck] */
static void relock_errorcheck(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, &one, "waits for M");
        int rc = cl_mutex_lock(&one); /* PTHREAD_MUTEX_ERRORCHECK: refuses, at once */
        if (rc == EDEADLK)
            tallies[w->id].edeadlk++;
        else
            CL_PT(rc);
        shared_count++;
        drop(&one);
        cl_tick(w);
    }
}
/* [end errorcheck] */

/* [snippet recursive] */
static void relock_recursive(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, &one, "waits for M");
        take(w, &one, "waits for M"); /* PTHREAD_MUTEX_RECURSIVE: a count goes up */
        shared_count++;
        drop(&one); /* ... and down: the lock is free when it reaches zero */
        drop(&one);
        cl_tick(w);
    }
}
/* [end recursive] */

/* --- the lock-order checker ----------------------------------------------- */

/* [snippet lockdep] */
static void lockdep_abba(struct cl_worker *w)
{
    bool first = w->id == 0;
    if (!first) /* wait until T1 is done: the two orders never overlap */
        CL_PT(sem_wait(&handoff) == 0 ? 0 : errno);
    struct cl_mutex *outer = first ? &la : &lb, *inner = first ? &lb : &la;
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, outer, "waits for the outer lock");
        take(w, inner, "waits for the inner lock"); /* T1: A then B; the others: B then A */
        shared_count++;
        drop(inner);
        drop(outer);
        cl_tick(w);
    }
    if (first)
        for (int t = 1; t < w->run->threads; t++)
            CL_PT(sem_post(&handoff) == 0 ? 0 : errno);
}
/* [end lockdep] */

/* --- the declaration ------------------------------------------------------- */

static const struct how two_lock = {BANK, 100, true, 0}, bank_how = {BANK, 0, false, 0},
                        philo = {PHILO, 100, false, 0},
                        relock_plain = {ONE_LOCK, 0, false, PTHREAD_MUTEX_DEFAULT},
                        relock_check = {ONE_LOCK, 0, false, PTHREAD_MUTEX_ERRORCHECK},
                        relock_rec = {ONE_LOCK, 0, false, PTHREAD_MUTEX_RECURSIVE},
                        lockdep_how = {LOCKDEP, 0, false, 0};

#define HANGS_LO (CL_HANGS | CL_LOCK_ORDER)

static const struct cl_variant variants[] = {
    {"abba", HANGS_LO, "T1 locks A then B, T2 locks B then A, with a pause: deadlock",
     transfer_abba, 2, 1000, 1000000, &two_lock},
    {"ordered", CL_CORRECT, "the same two locks, always taken in address order",
     transfer_by_address, 2, 200, 20000, &two_lock},
    {"trylock", CL_CORRECT, "take A, try B; if busy, release A and back off a random time",
     trylock_jitter, 2, 200, 20000, &two_lock},
    {"trylock-livelock", CL_CORRECT,
     "the same with no back-off: both retry in step for --duration ms (livelock)", trylock_livelock,
     2, 1000000, 0, &two_lock},
    {"timed", CL_CORRECT, "take A, timedlock B for 1 ms; on a timeout release A and retry",
     transfer_timed, 2, 200, 20000, &two_lock},
    {"self", CL_HANGS, "lock a default mutex twice in one thread: self-deadlock", relock_default, 1,
     1, 0, &relock_plain},
    {"errorcheck", CL_CORRECT, "an error-checking mutex: the relock returns EDEADLK",
     relock_errorcheck, 1, 1000, 0, &relock_check},
    {"recursive", CL_CORRECT, "a recursive mutex (Python's RLock): the relock just counts",
     relock_recursive, 2, 1000000, 0, &relock_rec},
    {"global-lock", CL_CORRECT, "one lock for all the accounts: the baseline", transfer_global, 2,
     1000000, 0, &bank_how},
    {"transfer", HANGS_LO, "random transfers that lock from, then to: deadlock", transfer_naive, 2,
     1000000, 0, &bank_how},
    {"transfer-ordered", CL_CORRECT, "lock the lower account id first; transfer(a, a) locks once",
     transfer_by_id, 2, 1000000, 0, &bank_how},
    {"philosophers", HANGS_LO, "--philosophers N, each takes the left fork, then the right",
     philosopher_naive, 5, 1000000, 0, &philo},
    {"philosophers-ordered", CL_CORRECT, "resource hierarchy: the lower-numbered fork first",
     philosopher_ordered, 5, 1000000, 0, &philo},
    {"philosophers-waiter", CL_CORRECT | CL_LOCK_ORDER,
     "a semaphore with N-1 seats; forks still taken left, then right", philosopher_waiter, 5,
     1000000, 0, &philo},
    {"lockdep", CL_LOCK_ORDER, "AB/BA that never overlaps: the lock-order checker names it",
     lockdep_abba, 2, 1000, 1000000, &lockdep_how},
};

static const struct cl_param params[] = {
    {"accounts", "bank variants: how many accounts, each with its own lock", 2, 2, 100000},
    {"philosophers", "philosopher variants: how many philosophers (and forks)", 5, 2, 256},
    {"hold-us",
     "pause between the first and second lock, in us (-1: 100 for the two-lock and "
     "philosopher variants, 0 for the bank)",
     -1, -1, 100000},
    {"duration", "trylock-livelock and the fixed philosophers stop after this many ms", 500, 1,
     60000},
    {"work-ns", "bank variants: busy work inside each transfer, with its locks held, in ns", 0, 0,
     1000000},
};

/* --- hooks ----------------------------------------------------------------- */

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct how *how = how_of(run);
    const char *v = run->variant->name;
    if (how->family == PHILO) {
        int n = (int)run->opts->param[PHILOSOPHERS];
        if (run->opts->threads != 0 && run->opts->threads != n) {
            snprintf(err, errlen,
                     "deadlock: --threads: %s runs one thread per philosopher; use "
                     "--philosophers N (2 to 256)",
                     v);
            return 1;
        }
        run->threads = n;
    }
    if ((run->variant->tags & CL_HANGS) && how->family != ONE_LOCK && run->threads < 2) {
        snprintf(err, errlen, "deadlock: --threads: %s needs at least 2 threads for a cycle", v);
        return 1;
    }
    if (how->family == LOCKDEP && run->threads < 2) {
        snprintf(err, errlen, "deadlock: --threads: lockdep needs at least 2 threads (2 to %d)",
                 CL_MAX_THREADS);
        return 1;
    }
    /* No run may last for minutes: with a pause or work inside every transfer,
     * cap the transfers so that, even one at a time, they take about 10 s at most. */
    long long hold = run->opts->param[HOLD_US] >= 0 ? run->opts->param[HOLD_US] : how->hold_us;
    uint64_t per_op_ns = (uint64_t)hold * 1000 + (uint64_t)run->opts->param[WORK_NS];
    if (how->family == BANK && per_op_ns > 0) {
        uint64_t most = 10000000000ull / per_op_ns / (uint64_t)run->threads;
        if (run->iters > most)
            run->iters = most > 0 ? most : 1;
    }
    return 0;
}

static void add_lock(struct cl_mutex *m)
{
    all_locks[nall++] = m;
}

static void setup(const struct cl_run *run)
{
    const struct how *how = how_of(run);
    shared_count = 0;
    tallies = cl_xaligned_calloc(64, (size_t)run->threads, sizeof *tallies);
    naccounts = (int)run->opts->param[ACCOUNTS];
    nforks = (int)run->opts->param[PHILOSOPHERS];
    nall = 0;
    all_locks = cl_xcalloc((size_t)naccounts + 260, sizeof(struct cl_mutex *));
    switch (how->family) {
    case BANK:
        bank = cl_xaligned_calloc(64, (size_t)naccounts, sizeof *bank);
        for (int i = 0; i < naccounts; i++) {
            struct account *a = &bank[i];
            if (i < 26)
                snprintf(a->name, sizeof a->name, "%c", 'A' + i);
            else
                snprintf(a->name, sizeof a->name, "acct %d", i);
            snprintf(a->wait_text, sizeof a->wait_text, "waits for %s", a->name);
            cl_mutex_init(&a->lock, a->name, PTHREAD_MUTEX_DEFAULT);
            a->balance = OPENING;
            add_lock(&a->lock);
        }
        cl_mutex_init(&bank_lock, "bank", PTHREAD_MUTEX_DEFAULT);
        add_lock(&bank_lock);
        CL_PT(pthread_barrier_init(&phase, NULL, (unsigned)run->threads));
        break;
    case PHILO:
        for (int i = 0; i < nforks; i++) {
            snprintf(fork_names[i], sizeof fork_names[i], "fork %d", i);
            snprintf(fork_waits[i], sizeof fork_waits[i], "waits for fork %d", i);
            cl_mutex_init(&forks_storage[i], fork_names[i], PTHREAD_MUTEX_DEFAULT);
            add_lock(&forks_storage[i]);
        }
        CL_PT(sem_init(&seats, 0, (unsigned)nforks - 1) == 0 ? 0 : errno);
        break;
    case ONE_LOCK:
        cl_mutex_init(&one, "M", how->kind);
        add_lock(&one);
        break;
    case LOCKDEP:
        cl_lockdep_reset(STDERR_FILENO);
        cl_mutex_init(&la, "A", PTHREAD_MUTEX_DEFAULT);
        cl_mutex_init(&lb, "B", PTHREAD_MUTEX_DEFAULT);
        la.lockdep_class = cl_lockdep_class("A");
        lb.lockdep_class = cl_lockdep_class("B");
        add_lock(&la);
        add_lock(&lb);
        CL_PT(sem_init(&handoff, 0, 0) == 0 ? 0 : errno);
        break;
    }
}

/* The watchdog's chapter report: who holds and who waits for each lock, and the
 * wait-for cycle. Runs while the workers are stuck: reads atomics only. */
static void report(int fd, const struct cl_run *run)
{
    cl_mutex_report(fd, run->threads, all_locks, nall);
}

/* --- per-acquisition costs, timed in the main thread after the run --------- */

#define COST_ROUNDS 5

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over rounds of ns per lock/unlock pair of `inner` while `outer` (may be
 * NULL) is held; lockdep classes apply when the cl_mutexes have them. */
static double cost_cl(struct cl_mutex *outer, struct cl_mutex *inner, uint64_t n)
{
    double r[COST_ROUNDS];
    for (int k = 0; k < COST_ROUNDS; k++) {
        if (outer != NULL)
            CL_PT(cl_mutex_lock(outer));
        uint64_t t0 = cl_now_ns();
        for (uint64_t i = 0; i < n; i++) {
            CL_PT(cl_mutex_lock(inner));
            cl_compiler_barrier();
            CL_PT(cl_mutex_unlock(inner));
        }
        r[k] = (double)(cl_now_ns() - t0) / (double)n;
        if (outer != NULL)
            CL_PT(cl_mutex_unlock(outer));
    }
    qsort(r, COST_ROUNDS, sizeof r[0], cmp_double);
    return r[COST_ROUNDS / 2];
}

static double cost_pthread(int kind, uint64_t n)
{
    pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER, m;
    pthread_mutexattr_t attr;
    CL_PT(pthread_mutexattr_init(&attr));
    CL_PT(pthread_mutexattr_settype(&attr, kind));
    CL_PT(pthread_mutex_init(&m, &attr));
    CL_PT(pthread_mutexattr_destroy(&attr));
    double r[COST_ROUNDS];
    for (int k = 0; k < COST_ROUNDS; k++) {
        CL_PT(pthread_mutex_lock(&outer)); /* the same nesting as the lockdep case */
        uint64_t t0 = cl_now_ns();
        for (uint64_t i = 0; i < n; i++) {
            CL_PT(pthread_mutex_lock(&m));
            cl_compiler_barrier();
            CL_PT(pthread_mutex_unlock(&m));
        }
        r[k] = (double)(cl_now_ns() - t0) / (double)n;
        CL_PT(pthread_mutex_unlock(&outer));
    }
    CL_PT(pthread_mutex_destroy(&m));
    qsort(r, COST_ROUNDS, sizeof r[0], cmp_double);
    return r[COST_ROUNDS / 2];
}

/* Sized so the timing takes ~0.05 s optimised; under TSan or Valgrind, where
 * the figure means nothing anyway, just enough to exercise the code. */
static uint64_t cost_iters(void)
{
    return RUNNING_ON_VALGRIND ? 1000 : cl_under_tsan() ? 20000 : 200000;
}

/* --- checks ---------------------------------------------------------------- */

static void sum_tallies(const struct cl_run *run, struct tally *sum)
{
    *sum = (struct tally){0};
    for (int t = 0; t < run->threads; t++) {
        sum->done += tallies[t].done;
        sum->retries += tallies[t].retries;
        sum->timeouts += tallies[t].timeouts;
        sum->edeadlk += tallies[t].edeadlk;
        sum->to_self += tallies[t].to_self;
        sum->ref_done += tallies[t].ref_done;
        sum->ref_retries += tallies[t].ref_retries;
    }
}

static void check_bank(const struct cl_run *run, struct cl_result *res, const struct tally *s)
{
    int64_t total = 0;
    for (int i = 0; i < naccounts; i++)
        total += bank[i].balance;
    int64_t expected = (int64_t)naccounts * OPENING;
    char a[32], b[32];
    res->ops = s->done;
    res->exact = total == expected;
    cl_metric_int(res, "accounts", naccounts);
    cl_metric_int(res, "transfers", (long long)s->done);
    cl_metric_int(res, "to_self", (long long)s->to_self); /* transfer(a, a) */
    cl_metric_int(res, "money", total);
    cl_metric_int(res, "expected", expected);
    const char *name = run->variant->name;
    if (strncmp(name, "trylock", 7) == 0) {
        cl_metric_int(res, "retries", (long long)s->retries);
        cl_metric_real(res, "retries_per_op",
                       s->done ? (double)s->retries / (double)s->done : (double)s->retries);
    }
    if (strcmp(name, "timed") == 0)
        cl_metric_int(res, "timeouts", (long long)s->timeouts);
    if (strcmp(name, "trylock-livelock") == 0) {
        double ratio = (double)s->retries / (double)(s->done ? s->done : 1);
        double ref = (double)s->ref_retries / (double)(s->ref_done ? s->ref_done : 1);
        cl_metric_int(res, "ref_transfers", (long long)s->ref_done);
        cl_metric_real(res, "ref_retries_per_op", ref);
        bool livelock = s->done == 0 || ratio > 10 * (ref > 0.1 ? ref : 0.1);
        cl_metric_int(res, "livelock", livelock);
        cl_verdict(res,
                   "%s: %s transfers and %s retries in %lld ms (%.1f retries per transfer), "
                   "against %.2f with jitter; money %s",
                   livelock ? "livelock" : "no livelock this run", cl_fmt_count(s->done, a),
                   cl_fmt_count(s->retries, b), (long long)run->opts->param[DURATION], ratio, ref,
                   res->exact ? "conserved" : "NOT conserved");
        return;
    }
    if (res->exact)
        cl_verdict(res, "%s transfers between %d accounts; money conserved (%s)%s",
                   cl_fmt_count(s->done, a), naccounts, cl_fmt_count((uint64_t)total, b),
                   s->retries    ? ", with retries"
                   : s->timeouts ? ", with timeouts"
                                 : "");
    else
        cl_verdict(res, "money NOT conserved: %lld instead of %lld", (long long)total,
                   (long long)expected);
}

static void check_philo(const struct cl_run *run, struct cl_result *res, const struct tally *s)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    char list[160] = "";
    size_t used = 0;
    for (int t = 0; t < run->threads; t++) {
        uint64_t m = tallies[t].done;
        lo = m < lo ? m : lo;
        hi = m > hi ? m : hi;
        if (t < 8 && used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%llu", t ? " " : "",
                                     (unsigned long long)m);
    }
    res->ops = s->done;
    res->exact = lo > 0; /* every philosopher ate */
    cl_metric_int(res, "meals", (long long)s->done);
    cl_metric_int(res, "min_meals", (long long)lo);
    cl_metric_int(res, "max_meals", (long long)hi);
    cl_metric_real(res, "spread", lo ? (double)hi / (double)lo : 0);
    char a[32];
    cl_verdict(res, "%s: %s meals; per philosopher %s%s (min %llu, max %llu, spread %.2fx)",
               lo > 0 ? "every philosopher ate" : "a philosopher STARVED", cl_fmt_count(s->done, a),
               list, run->threads > 8 ? " ..." : "", (unsigned long long)lo, (unsigned long long)hi,
               lo ? (double)hi / (double)lo : 0.0);
}

static void check_one_lock(const struct cl_run *run, struct cl_result *res, const struct tally *s)
{
    uint64_t expected = (uint64_t)run->threads * run->iters;
    char a[32];
    res->exact = shared_count == expected;
    cl_metric_int(res, "count", (long long)shared_count);
    if (how_of(run)->kind == PTHREAD_MUTEX_ERRORCHECK) {
        res->exact = res->exact && s->edeadlk == expected;
        cl_metric_int(res, "edeadlk", (long long)s->edeadlk);
        cl_verdict(res, "every relock (%s) returned EDEADLK (%s) instead of hanging",
                   cl_fmt_count(expected, a), strerror(EDEADLK));
        return;
    }
    /* recursive: its cost per acquire/release against a plain mutex */
    double plain = cost_pthread(PTHREAD_MUTEX_DEFAULT, cost_iters());
    double rec = cost_pthread(PTHREAD_MUTEX_RECURSIVE, cost_iters());
    cl_metric_real(res, "plain_ns", plain);
    cl_metric_real(res, "recursive_ns", rec);
    cl_metric_real(res, "recursive_over_plain", rec / plain);
    cl_verdict(res,
               "exact: %s nested increments; a recursive lock/unlock costs %.1f ns against %.1f "
               "ns plain (%.2fx)",
               cl_fmt_count(shared_count, a), rec, plain, rec / plain);
}

static void check_lockdep(const struct cl_run *run, struct cl_result *res)
{
    uint64_t expected = (uint64_t)run->threads * run->iters;
    size_t found = cl_lockdep_reports();
    res->exact = shared_count == expected;
    /* the checker's cost per acquisition, nested as in the run (B taken under A) */
    double plain = cost_pthread(PTHREAD_MUTEX_DEFAULT, cost_iters());
    double checked = cost_cl(&la, &lb, cost_iters());
    cl_metric_int(res, "count", (long long)shared_count);
    cl_metric_int(res, "inversions", (long long)found);
    cl_metric_real(res, "plain_ns", plain);
    cl_metric_real(res, "lockdep_ns", checked);
    cl_metric_real(res, "lockdep_over_plain", checked / plain);
    char what[64] = "an inversion";
    const char *order = strstr(cl_lockdep_first_report(), "lock order");
    if (order != NULL) /* "lock order A -> B inverted)": keep it, without the ')' */
        snprintf(what, sizeof what, "%.*s", (int)strcspn(order, ")"), order);
    if (found > 0)
        cl_verdict(res,
                   "no deadlock this run, but lockdep found it: %s; %.1f ns per checked "
                   "acquisition vs %.1f plain (%.2fx)",
                   what, checked, plain, checked / plain);
    else
        cl_verdict(res, "no inversion seen (one thread takes only one order)");
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    struct tally s;
    sum_tallies(run, &s);
    switch (how_of(run)->family) {
    case BANK:
        check_bank(run, res, &s);
        for (int i = 0; i < naccounts; i++)
            cl_mutex_destroy(&bank[i].lock);
        cl_mutex_destroy(&bank_lock);
        CL_PT(pthread_barrier_destroy(&phase));
        free(bank);
        break;
    case PHILO:
        check_philo(run, res, &s);
        for (int i = 0; i < nforks; i++)
            cl_mutex_destroy(&forks_storage[i]);
        sem_destroy(&seats);
        break;
    case ONE_LOCK:
        check_one_lock(run, res, &s);
        cl_mutex_destroy(&one);
        break;
    case LOCKDEP:
        check_lockdep(run, res);
        cl_mutex_destroy(&la);
        cl_mutex_destroy(&lb);
        sem_destroy(&handoff);
        break;
    }
    free(tallies);
    free(all_locks);
}

static const struct cl_chapter deadlock = {
    .name = "deadlock",
    .look_for = "threads that wait for each other never finish: the watchdog names the "
                "wait-for cycle; each cure breaks one of the four conditions, at a cost",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 2,
    .pin_threads = true, /* trylock spins on a busy lock: a core per thread */
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
};

int main(int argc, char **argv)
{
    return cl_main(&deadlock, argc, argv);
}
