/* deadlock: the hooks that set up, report on and judge each run, and the
 * per-acquisition costs some verdicts quote. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deadlock.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h> /* RUNNING_ON_VALGRIND: a macro, no library */
#else
#define RUNNING_ON_VALGRIND 0
#endif

struct account *bank;
int naccounts;
struct cl_mutex bank_lock;
struct cl_mutex forks[MAX_PHILOSOPHERS];
static char fork_names[MAX_PHILOSOPHERS][16];
char fork_waits[MAX_PHILOSOPHERS][32];
int nforks;
sem_t seats;
struct cl_mutex relocked;
struct cl_mutex la, lb;
sem_t handoff;
struct cl_mutex ledger;
int64_t ledger_balance;
uint64_t shared_count;
pthread_barrier_t phase;
struct tally *tallies;

static struct cl_mutex **all_locks; /* for the watchdog's report */
static size_t nall;

int prepare(struct cl_run *run, char *err, size_t errlen)
{
    const struct how *how = how_of(run);
    enum kind kind = run->variant->kind;
    const char *v = run->variant->name;
    if (!cl_param_given(run, HOLD_US))
        run->param[HOLD_US] = how->hold_us;
    if (kind == PHILO) {
        int n = (int)cl_param(run, PHILOSOPHERS);
        if (run->opts->threads != 0 && run->opts->threads != n) {
            snprintf(err, errlen,
                     "deadlock: --threads: %s runs one thread per philosopher; use "
                     "--philosophers N (2 to 256)",
                     v);
            return 1;
        }
        run->threads = n;
    }
    if (kind == LEAKED && run->threads < 2) {
        snprintf(err, errlen,
                 "deadlock: --threads: leaked-lock needs at least 2 threads, one to leak "
                 "the lock and one to wait for it (2 to %d)",
                 cl_max_threads(run->chapter));
        return 1;
    }
    if ((run->variant->tags & CL_HANGS) && kind != ONE_LOCK && run->threads < 2) {
        snprintf(err, errlen, "deadlock: --threads: %s needs at least 2 threads for a cycle", v);
        return 1;
    }
    if (kind == LOCKDEP && run->threads < 2) {
        snprintf(err, errlen, "deadlock: --threads: lockdep needs at least 2 threads (2 to %d)",
                 cl_max_threads(run->chapter));
        return 1;
    }
    /* No run may last for minutes: with a pause or work inside every transfer,
     * cap the transfers so that, even one at a time, they take about 10 s at most. */
    uint64_t per_op_ns = (uint64_t)cl_param(run, HOLD_US) * 1000 + (uint64_t)cl_param(run, WORK_NS);
    if (is_bank(run) && per_op_ns > 0) {
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

void setup(const struct cl_run *run)
{
    const struct how *how = how_of(run);
    shared_count = 0;
    tallies = cl_xaligned_calloc(64, (size_t)run->threads, sizeof *tallies);
    naccounts = (int)cl_param(run, ACCOUNTS);
    nforks = (int)cl_param(run, PHILOSOPHERS);
    nall = 0;
    /* every account and the bank lock, or every fork, or the one or two others */
    all_locks = cl_xcalloc((size_t)naccounts + MAX_PHILOSOPHERS + 2, sizeof(struct cl_mutex *));
    switch ((enum kind)run->variant->kind) {
    case BANK:
    case BANK_TRYLOCK:
    case BANK_LIVELOCK:
    case BANK_TIMED:
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
            cl_mutex_init(&forks[i], fork_names[i], PTHREAD_MUTEX_DEFAULT);
            add_lock(&forks[i]);
        }
        CL_SYS(sem_init(&seats, 0, (unsigned)nforks - 1));
        break;
    case ONE_LOCK:
        cl_mutex_init(&relocked, "M", how->mutex_type);
        add_lock(&relocked);
        break;
    case LOCKDEP:
        cl_lockdep_reset(STDERR_FILENO);
        cl_mutex_init(&la, "A", PTHREAD_MUTEX_DEFAULT);
        cl_mutex_init(&lb, "B", PTHREAD_MUTEX_DEFAULT);
        cl_mutex_set_lockdep(&la, cl_lockdep_class("A"));
        cl_mutex_set_lockdep(&lb, cl_lockdep_class("B"));
        add_lock(&la);
        add_lock(&lb);
        CL_SYS(sem_init(&handoff, 0, 0));
        break;
    case LEAKED:
        cl_mutex_init(&ledger, "L", PTHREAD_MUTEX_DEFAULT);
        ledger_balance = OPENING;
        add_lock(&ledger);
        CL_SYS(sem_init(&handoff, 0, 0));
        break;
    }
}

/* The watchdog's chapter report: who holds and who waits for each lock, the
 * wait-for cycle, and any lock whose holder has exited. Runs while the workers
 * are stuck: reads atomics only. */
void report(int fd, const struct cl_run *run)
{
    cl_mutex_report(fd, run->threads, all_locks, nall);
    for (size_t i = 0; i < nall; i++) {
        int holder = cl_mutex_holder(all_locks[i]);
        if (holder >= 0 && holder < run->threads &&
            atomic_load_explicit(&run->workers[holder].finished, memory_order_acquire))
            dprintf(fd, "  lock %s held by T%d, which has exited: nobody can unlock it now\n",
                    all_locks[i]->name, holder + 1);
    }
}

/* --- per-acquisition costs, timed in the main thread after the run --------- */

#define COST_ROUNDS 5

/* One lock/unlock pair, for the timing loop below. */
struct lock_ops {
    void (*lock)(void *m);
    void (*unlock)(void *m);
};

static void pt_lock(void *m)
{
    CL_PT(pthread_mutex_lock(m));
}

static void pt_unlock(void *m)
{
    CL_PT(pthread_mutex_unlock(m));
}

static void cl_lock(void *m)
{
    CL_PT(cl_mutex_lock(m));
}

static void cl_unlock(void *m)
{
    CL_PT(cl_mutex_unlock(m));
}

static const struct lock_ops pthread_ops = {pt_lock, pt_unlock}, cl_ops = {cl_lock, cl_unlock};

/* Median over rounds of ns per lock/unlock pair of `inner` while `outer` is
 * held, the nesting of the lockdep run (B taken under A). */
static double lock_cost(const struct lock_ops *ops, void *outer, void *inner, uint64_t n)
{
    double r[COST_ROUNDS];
    for (int k = 0; k < COST_ROUNDS; k++) {
        ops->lock(outer);
        uint64_t t0 = cl_now_ns();
        for (uint64_t i = 0; i < n; i++) {
            ops->lock(inner);
            cl_compiler_barrier();
            ops->unlock(inner);
        }
        r[k] = (double)(cl_now_ns() - t0) / (double)n;
        ops->unlock(outer);
    }
    return cl_median(r, COST_ROUNDS);
}

/* The same for a fresh pthread mutex of a type (default or recursive). */
static double pthread_cost(int type, uint64_t n)
{
    pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER, m;
    pthread_mutexattr_t attr;
    CL_PT(pthread_mutexattr_init(&attr));
    CL_PT(pthread_mutexattr_settype(&attr, type));
    CL_PT(pthread_mutex_init(&m, &attr));
    CL_PT(pthread_mutexattr_destroy(&attr));
    double ns = lock_cost(&pthread_ops, &outer, &m, n);
    CL_PT(pthread_mutex_destroy(&m));
    return ns;
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
    enum kind kind = run->variant->kind;
    if (kind == BANK_TRYLOCK || kind == BANK_LIVELOCK) {
        cl_metric_int(res, "retries", (long long)s->retries);
        cl_metric_real(res, "retries_per_op",
                       s->done ? (double)s->retries / (double)s->done : (double)s->retries);
    }
    if (kind == BANK_TIMED)
        cl_metric_int(res, "timeouts", (long long)s->timeouts);
    if (kind == BANK_LIVELOCK) {
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
                   cl_fmt_count(s->retries, b), cl_param(run, DURATION), ratio, ref,
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
    if (how_of(run)->mutex_type == PTHREAD_MUTEX_ERRORCHECK) {
        res->exact = res->exact && s->edeadlk == expected;
        cl_metric_int(res, "edeadlk", (long long)s->edeadlk);
        cl_verdict(res, "every relock (%s) returned EDEADLK (%s) instead of hanging",
                   cl_fmt_count(expected, a), strerror(EDEADLK));
        return;
    }
    /* recursive: its cost per acquire/release against a plain mutex */
    double plain = pthread_cost(PTHREAD_MUTEX_DEFAULT, cost_iters());
    double rec = pthread_cost(PTHREAD_MUTEX_RECURSIVE, cost_iters());
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
    double plain = pthread_cost(PTHREAD_MUTEX_DEFAULT, cost_iters());
    double checked = lock_cost(&cl_ops, &la, &lb, cost_iters());
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

void check(const struct cl_run *run, struct cl_result *res)
{
    struct tally s;
    sum_tallies(run, &s);
    if (is_bank(run))
        check_bank(run, res, &s);
    else if (run->variant->kind == PHILO)
        check_philo(run, res, &s);
    else if (run->variant->kind == ONE_LOCK)
        check_one_lock(run, res, &s);
    else if (run->variant->kind == LOCKDEP)
        check_lockdep(run, res);
    /* leaked-lock never gets here: it hangs */
}

void teardown(const struct cl_run *run)
{
    if (is_bank(run)) {
        for (int i = 0; i < naccounts; i++)
            cl_mutex_destroy(&bank[i].lock);
        cl_mutex_destroy(&bank_lock);
        CL_PT(pthread_barrier_destroy(&phase));
        free(bank);
    } else if (run->variant->kind == PHILO) {
        for (int i = 0; i < nforks; i++)
            cl_mutex_destroy(&forks[i]);
        CL_SYS(sem_destroy(&seats));
    } else if (run->variant->kind == ONE_LOCK) {
        cl_mutex_destroy(&relocked);
    } else if (run->variant->kind == LEAKED) {
        CL_SYS(sem_destroy(&handoff)); /* not L: destroying a locked mutex is undefined */
    } else {
        cl_mutex_destroy(&la);
        cl_mutex_destroy(&lb);
        CL_SYS(sem_destroy(&handoff));
    }
    free(tallies);
    free(all_locks);
}
