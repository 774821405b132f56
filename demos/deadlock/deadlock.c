/* deadlock: threads that wait for each other forever, the watchdog that catches
 * them and names the cycle, and the standard cures with what each costs.
 *
 * Every variant is one thread's whole job. The bank variants move money between
 * accounts, each with its own lock; the philosophers share forks; lockdep runs an
 * AB/BA schedule that never overlaps and lets the checker find the inversion.
 * The locks are lib/'s instrumented cl_mutex, which records who holds and who
 * waits for each lock, so the watchdog's report can print the wait-for cycle.
 * cl_tick() counts completed operations only: retries are not progress. The
 * hooks that set up and judge each run are in judge.c. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>

#include "deadlock.h"

static int hold_us(const struct cl_worker *w)
{
    return (int)cl_param(w->run, HOLD_US);
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
    cl_busy_ns((uint64_t)cl_param(w->run, WORK_NS));
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
static void transfer_from_then_to(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w); /* abba: T1 A -> B, T2 B -> A; transfer: at random */
        take(w, &p.from->lock, p.from->wait_text);
        pause_between(w);                      /* meanwhile T2 takes B ... */
        take(w, &p.to->lock, p.to->wait_text); /* ... and waits for A: neither moves */
        move(w, p);                            /* (transfer(a, a) waits for itself above) */
        drop(&p.to->lock);
        drop(&p.from->lock);
        done_one(w);
    }
}
/* [end abba] */

/* [snippet ordered] */
static void transfer_ordered(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        struct pair p = pick(w);
        /* every thread takes the lower account first (the array's order), whichever
         * way the money goes: no cycle can form */
        struct account *first = p.from < p.to ? p.from : p.to;
        struct account *second = p.from < p.to ? p.to : p.from;
        take(w, &first->lock, first->wait_text);
        pause_between(w);
        if (second != first) /* transfer(a, a) takes one lock */
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
    uint64_t ms = (uint64_t)cl_param(w->run, DURATION);
    /* phase 1: retry at once, every thread in step with the others */
    transfer_trylock(w, w->iters, false, cl_now_ns() + ms * 1000000);
    uint64_t done = t->done, retries = t->retries;
    /* phase 2, the reference: the same flags with jitter, 50 transfers each */
    cl_pthread_barrier_wait(&phase);
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

/* --- dining philosophers --------------------------------------------------- */

static uint64_t philo_deadline(const struct cl_worker *w)
{
    return cl_now_ns() + (uint64_t)cl_param(w->run, DURATION) * 1000000;
}

/* [snippet eat] */
static void eat(struct cl_worker *w, int first, int second)
{
    take(w, &forks[first], fork_waits[first]);
    pause_between(w); /* the neighbour picks up its first fork meanwhile */
    take(w, &forks[second], fork_waits[second]);
    tallies[w->id].done++; /* a meal */
    drop(&forks[second]);
    drop(&forks[first]);
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
        CL_SYS_RETRY(sem_wait(&seats)); /* N-1 seats: one philosopher always eats */
        cl_status(w, NULL);
        eat(w, left, right);
        CL_SYS(sem_post(&seats));
    }
}
/* [end philosophers-waiter] */

/* --- one lock, taken twice ------------------------------------------------- */

/* [snippet self] */
static void relock_default(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, &relocked, "waits for M");
        take(w, &relocked, "waits for M, which it holds itself"); /* a default mutex: forever */
        shared_count++;
        drop(&relocked);
        drop(&relocked);
        cl_tick(w);
    }
}
/* [end self] */

/* [snippet errorcheck] */
static void relock_errorcheck(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, &relocked, "waits for M");
        int rc = cl_mutex_lock(&relocked); /* PTHREAD_MUTEX_ERRORCHECK: refuses, at once */
        if (rc == EDEADLK)
            tallies[w->id].edeadlk++;
        else
            CL_PT(rc);
        shared_count++;
        drop(&relocked);
        cl_tick(w);
    }
}
/* [end errorcheck] */

/* [snippet recursive] */
static void relock_recursive(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        take(w, &relocked, "waits for M");
        take(w, &relocked, "waits for M"); /* PTHREAD_MUTEX_RECURSIVE: a count goes up */
        shared_count++;
        drop(&relocked); /* ... and down: the lock is free when it reaches zero */
        drop(&relocked);
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
        CL_SYS_RETRY(sem_wait(&handoff));
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
            CL_SYS(sem_post(&handoff));
}
/* [end lockdep] */

/* --- a lock leaked on an error path ----------------------------------------- */

/* [snippet leaked-lock] */
/* Withdraw from the one account, under L; -1 when it lacks the money. */
static int withdraw(struct cl_worker *w, int64_t amount)
{
    take(w, &ledger, "waits for L");
    if (ledger_balance < amount)
        return -1; /* the error path returns early, and L stays locked */
    ledger_balance -= amount;
    drop(&ledger);
    return 0;
}

static void withdraw_leaky(struct cl_worker *w)
{
    if (w->id > 0) /* the others come to the account after T1's first withdrawal */
        CL_SYS_RETRY(sem_wait(&handoff));
    int64_t amount = w->id == 0 ? OPENING + 1 : 1; /* T1 asks for more than there is */
    for (uint64_t i = 0; i < w->iters; i++) {
        int refused = withdraw(w, amount);
        if (i == 0 && w->id == 0)
            for (int t = 1; t < w->run->threads; t++)
                CL_SYS(sem_post(&handoff));
        if (refused)
            break; /* T1 gives up, and its thread exits: nobody will unlock L now */
        cl_span_close(w, CL_SPAN_HOLD);
        cl_tick(w);
    }
}
/* [end leaked-lock] */

/* --- the declaration ------------------------------------------------------- */

static const struct how two_lock = {.hold_us = 100, .two_lock = true}, bank_how = {0},
                        philo = {.hold_us = 100},
                        relock_plain = {.mutex_type = PTHREAD_MUTEX_DEFAULT},
                        relock_check = {.mutex_type = PTHREAD_MUTEX_ERRORCHECK},
                        relock_rec = {.mutex_type = PTHREAD_MUTEX_RECURSIVE};

static const struct cl_variant variants[] = {
    {"abba", CL_HANGS | CL_LOCK_ORDER,
     "T1 locks A then B, T2 locks B then A, with a pause: deadlock", .kind = BANK,
     .worker = transfer_from_then_to, .threads = 2, .iters = 1000, .max_iters = 1000000,
     .data = &two_lock},
    {"ordered", CL_CORRECT, "the same two locks, always taken in the accounts' order", .kind = BANK,
     .worker = transfer_ordered, .threads = 2, .iters = 200, .max_iters = 20000, .data = &two_lock},
    {"trylock", CL_CORRECT, "take A, try B; if busy, release A and back off a random time",
     .kind = BANK_TRYLOCK, .worker = trylock_jitter, .threads = 2, .iters = 200, .max_iters = 20000,
     .data = &two_lock},
    {"trylock-livelock", CL_CORRECT,
     "the same with no back-off: both retry in step for --duration ms (livelock)",
     .kind = BANK_LIVELOCK, .worker = trylock_livelock, .threads = 2, .iters = 1000000,
     .data = &two_lock},
    {"timed", CL_CORRECT, "take A, timedlock B for 1 ms; on a timeout release A and retry",
     .kind = BANK_TIMED, .worker = transfer_timed, .threads = 2, .iters = 200, .max_iters = 20000,
     .data = &two_lock},
    {"self", CL_HANGS, "lock a default mutex twice in one thread: self-deadlock", .kind = ONE_LOCK,
     .worker = relock_default, .threads = 1, .iters = 1, .data = &relock_plain},
    {"errorcheck", CL_CORRECT, "an error-checking mutex: the relock returns EDEADLK",
     .kind = ONE_LOCK, .worker = relock_errorcheck, .threads = 1, .iters = 1000,
     .data = &relock_check},
    {"recursive", CL_CORRECT, "a recursive mutex (Python's RLock): the relock just counts",
     .kind = ONE_LOCK, .worker = relock_recursive, .threads = 2, .iters = 1000000,
     .data = &relock_rec},
    {"global-lock", CL_CORRECT, "one lock for all the accounts: the baseline", .kind = BANK,
     .worker = transfer_global, .threads = 2, .iters = 1000000, .data = &bank_how},
    {"transfer", CL_HANGS | CL_LOCK_ORDER, "random transfers that lock from, then to: deadlock",
     .kind = BANK, .worker = transfer_from_then_to, .threads = 2, .iters = 1000000,
     .data = &bank_how},
    {"transfer-ordered", CL_CORRECT, "lock the lower account first; transfer(a, a) locks once",
     .kind = BANK, .worker = transfer_ordered, .threads = 2, .iters = 1000000, .data = &bank_how},
    {"philosophers", CL_HANGS | CL_LOCK_ORDER,
     "--philosophers N, each takes the left fork, then the right", .kind = PHILO,
     .worker = philosopher_naive, .threads = 5, .iters = 1000000, .data = &philo},
    {"philosophers-ordered", CL_CORRECT, "resource hierarchy: the lower-numbered fork first",
     .kind = PHILO, .worker = philosopher_ordered, .threads = 5, .iters = 1000000, .data = &philo},
    {"philosophers-waiter", CL_CORRECT | CL_LOCK_ORDER,
     "a semaphore with N-1 seats; forks still taken left, then right", .kind = PHILO,
     .worker = philosopher_waiter, .threads = 5, .iters = 1000000, .data = &philo},
    {"lockdep", CL_LOCK_ORDER, "AB/BA that never overlaps: the lock-order checker names it",
     .kind = LOCKDEP, .worker = lockdep_abba, .threads = 2, .iters = 1000, .max_iters = 1000000,
     .data = &bank_how},
    {"leaked-lock", CL_HANGS, "T1 returns on an error path still holding L, and exits",
     .kind = LEAKED, .worker = withdraw_leaky, .threads = 2, .iters = 1000, .data = &bank_how},
};

static const struct cl_param params[] = {
    [ACCOUNTS] = {"accounts", "bank variants: how many accounts, each with its own lock", .def = 2,
                  .min = 2, .max = 100000},
    [PHILOSOPHERS] = {"philosophers", "philosopher variants: how many philosophers (and forks)",
                      .def = 5, .min = 2, .max = MAX_PHILOSOPHERS},
    [HOLD_US] = {"hold-us", "pause between the first and second lock, in us", .max = 100000,
                 .unset = "100 for the two-lock and philosopher variants, 0 for the bank"},
    [DURATION] = {"duration", "trylock-livelock and the fixed philosophers stop after this many ms",
                  .def = 500, .min = 1, .max = 60000},
    [WORK_NS] = {"work-ns",
                 "bank variants: busy work inside each transfer, with its locks held, "
                 "in ns",
                 .max = 1000000},
};

static const struct cl_chapter deadlock = {
    .name = "deadlock",
    .summary = "deadlock: threads that wait for each other, and the cures",
    .look_for = "threads that wait for each other never finish: the watchdog names the "
                "wait-for cycle; each cure breaks one of the four conditions, at a cost (an "
                "operation is one transfer, one meal, or one lock and relock)",
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
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    return cl_main(&deadlock, argc, argv);
}
