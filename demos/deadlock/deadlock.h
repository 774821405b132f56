/* deadlock: what the lessons (deadlock.c) and the hooks that set up and judge
 * each run (judge.c) share. */
#ifndef DEADLOCK_H
#define DEADLOCK_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conclab.h"

enum { ACCOUNTS, PHILOSOPHERS, HOLD_US, DURATION, WORK_NS }; /* the chapter's own flags */

/* Which family a variant belongs to: how it is set up and judged. */
enum kind { BANK, BANK_TRYLOCK, BANK_LIVELOCK, BANK_TIMED, PHILO, ONE_LOCK, LOCKDEP, LEAKED };

#define OPENING          1000       /* each account's opening balance */
#define TIMED_WAIT_NS    1000000ull /* timed: give up on the second lock after 1 ms */
#define MAX_PHILOSOPHERS 256        /* --philosophers, and the forks kept for them */

struct account {
    _Alignas(64) struct cl_mutex lock;
    int64_t balance;
    char name[16];      /* "A", "B", ... or "acct 42" */
    char wait_text[32]; /* "waits for A": the watchdog prints it */
};

/* One thread's own counts, on a cache line of its own. */
struct tally {
    _Alignas(64) uint64_t done, retries, timeouts, edeadlk, to_self;
    uint64_t ref_done, ref_retries; /* trylock-livelock's jittered phase */
};

/* A variant's settings beyond its kind. */
struct how {
    int hold_us;    /* --hold-us when not given: the pause between the two locks */
    bool two_lock;  /* with 2 accounts, even threads go A -> B and odd ones B -> A */
    int mutex_type; /* ONE_LOCK: PTHREAD_MUTEX_DEFAULT, _ERRORCHECK or _RECURSIVE */
};

/* What each variant's threads share; setup() makes it, teardown() frees it. */
extern struct account *bank;
extern int naccounts;
extern struct cl_mutex bank_lock; /* global-lock */
extern struct cl_mutex forks[MAX_PHILOSOPHERS];
extern char fork_waits[MAX_PHILOSOPHERS][32];
extern int nforks;
extern sem_t seats;              /* philosophers-waiter: N-1 seats at the table */
extern struct cl_mutex relocked; /* self, errorcheck, recursive */
extern struct cl_mutex la, lb;   /* lockdep's A and B */
extern sem_t handoff;            /* lockdep, leaked-lock: the others start after T1 */
extern struct cl_mutex ledger;   /* leaked-lock: L, over ledger_balance */
extern int64_t ledger_balance;   /* leaked-lock's one account */
extern uint64_t shared_count;    /* errorcheck, recursive, lockdep: under the lock */
extern pthread_barrier_t phase;  /* trylock-livelock: between its two phases */
extern struct tally *tallies;

static inline const struct how *how_of(const struct cl_run *run)
{
    return run->variant->data;
}

static inline bool is_bank(const struct cl_run *run)
{
    return run->variant->kind <= BANK_TIMED;
}

/* The hooks, in judge.c. */
int prepare(struct cl_run *run, char *err, size_t errlen);
void setup(const struct cl_run *run);
void report(int fd, const struct cl_run *run);
void check(const struct cl_run *run, struct cl_result *res);
void teardown(const struct cl_run *run);

#endif
