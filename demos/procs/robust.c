/* procs: robust and not-robust. A vault in shared memory holds two balances
 * whose sum is fixed; moving money between them takes the vault's
 * process-shared mutex. A locker (this program, spawned) takes the lock, does
 * half of a transfer and is killed there: the lock held, the sum wrong. The
 * parent then takes the lock itself, --iters times over.
 *
 * Each thread tells the kernel where its list of held robust mutexes is (glibc
 * keeps it); when the thread dies, the kernel marks each one's owner dead and
 * wakes a waiter, whose lock call returns EOWNERDEAD. A plain mutex stays
 * locked by a thread that no longer exists. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "procs.h"

#define TOTAL  1000
#define AMOUNT 10

/* [snippet vault] */
struct vault {
    pthread_mutex_t lock;   /* PTHREAD_PROCESS_SHARED; robust in `robust` */
    int64_t a, b;           /* a + b == TOTAL whenever the lock is free */
    _Atomic uint32_t taken; /* a futex word: the locker holds the lock */
};
/* [end vault] */

static struct vault *vault;
static const char *vault_name;
static uint64_t recovered, owner_dead, repaired;
static _Atomic pid_t victim;
static bool lost_locker;

/* [snippet locker] */
/* The locker: take the lock, move half of a transfer, and wait to be killed. */
int locker_main(int argc, char **argv)
{
    worker_start(argc, argv, 2);
    struct vault *v = shm_attach(argv[1], sizeof *v);
    if (v == NULL || pthread_mutex_lock(&v->lock) != 0)
        return 1;
    v->a -= AMOUNT; /* ... and b += AMOUNT would follow: it never does */
    atomic_store(&v->taken, 1);
    futex_wake(&v->taken, 1);
    for (;;)
        pause();
}
/* [end locker] */

/* Start a locker and wait until it holds the lock; false if it died first. */
static bool start_locker(struct cl_run *run, pid_t *pid)
{
    atomic_store(&vault->taken, 0);
    *pid = spawn_worker(run, "locker", (const char *const[]){vault_name, NULL}, NULL);
    cl_status(&run->workers[0], "waits for the locker to take the vault's lock");
    while (atomic_load(&vault->taken) == 0) {
        int status;
        if (cl_child_reaped(*pid, &status))
            return false;
        futex_wait(&vault->taken, 0, 10ull * 1000 * 1000);
    }
    return true;
}

/* pthread_mutex_lock, as trylock and then timed steps of 100 ms: the same wait,
 * in calls gcc 12's ThreadSanitizer follows. Its runtime delivers a signal only
 * between the calls it intercepts (a lock that never returns would hold Ctrl-C
 * back for ever), and of the calls that can take a lock it repairs its own view
 * after EOWNERDEAD only in lock and trylock. The owner is dead before this
 * runs, so trylock already says EOWNERDEAD where the mutex is robust. */
static int lock_vault(void)
{
    int rc = pthread_mutex_trylock(&vault->lock);
    while (rc == EBUSY) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t); /* timedlock counts on CLOCK_REALTIME */
        t.tv_nsec += 100L * 1000 * 1000;
        if (t.tv_nsec >= 1000L * 1000 * 1000) {
            t.tv_sec++;
            t.tv_nsec -= 1000L * 1000 * 1000;
        }
        rc = pthread_mutex_timedlock(&vault->lock, &t);
        if (rc == ETIMEDOUT)
            rc = EBUSY;
    }
    return rc;
}

/* [snippet recover] */
/* Take the lock after its owner died: a robust mutex says so with EOWNERDEAD,
 * and stays unusable until the data is repaired and the mutex marked consistent. */
static void lock_after_crash(struct cl_run *run)
{
    cl_status(&run->workers[0], "waits for the vault's lock, whose owner was killed");
    int rc = lock_vault(); /* not-robust: waits here for ever */
    cl_status(&run->workers[0], NULL);
    if (rc == EOWNERDEAD) {
        owner_dead++;
        if (vault->a + vault->b != TOTAL) { /* the dead owner's half transfer */
            vault->b = TOTAL - vault->a;    /* complete it */
            repaired++;
        }
        CL_PT(pthread_mutex_consistent(&vault->lock));
        recovered++;
    } else {
        CL_PT(rc);
    }
    CL_PT(pthread_mutex_unlock(&vault->lock));
}
/* [end recover] */

void robust_run(struct cl_run *run)
{
    for (uint64_t i = 0; i < run->iters; i++) {
        pid_t pid;
        if (!start_locker(run, &pid)) {
            lost_locker = true;
            return;
        }
        atomic_store(&victim, pid);
        CL_SYS(kill(pid, SIGKILL)); /* a crash in the middle of the transfer */
        cl_child_wait(pid);
        lock_after_crash(run);
        cl_tick(&run->workers[0]);
    }
}

static void setup(const struct cl_run *run)
{
    vault = shm_make(run, "vault", sizeof *vault, &vault_name);
    pthread_mutexattr_t attr;
    CL_PT(pthread_mutexattr_init(&attr));
    CL_PT(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED));
    if (run->variant->kind == K_ROBUST)
        CL_PT(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST));
    CL_PT(pthread_mutex_init(&vault->lock, &attr));
    CL_PT(pthread_mutexattr_destroy(&attr));
    vault->a = TOTAL;
    vault->b = 0;
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    int64_t sum = vault->a + vault->b;
    res->ops = recovered;
    res->exact = !lost_locker && recovered == run->iters && sum == TOTAL &&
                 vault->a == TOTAL - (int64_t)run->iters * AMOUNT;
    cl_metric_int(res, "owner_dead", (long long)owner_dead);
    cl_metric_int(res, "repaired", (long long)repaired);
    cl_metric_int(res, "sum", sum);
    if (lost_locker)
        cl_verdict(res, "a locker ended before it took the lock");
    else if (res->exact)
        cl_verdict(res,
                   "%llu lockers killed holding the lock: EOWNERDEAD each time, the half "
                   "transfer completed, the sum still %d",
                   (unsigned long long)recovered, TOTAL);
    else
        cl_verdict(res, "recovered %llu of %llu times; the sum is %lld, not %d",
                   (unsigned long long)recovered, (unsigned long long)run->iters, (long long)sum,
                   TOTAL);
}

static void report(int fd, const struct cl_run *run)
{
    (void)run;
    pid_t pid = atomic_load(&victim);
    if (pid != 0)
        dprintf(fd,
                "  the parent waits for the vault's lock; its owner, locker %d, was killed "
                "holding it, and a mutex that is not robust stays locked by a dead owner\n",
                (int)pid);
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    pthread_mutex_destroy(&vault->lock);
    shm_remove(vault, sizeof *vault, vault_name);
}

const struct family robust_family = {
    .setup = setup, .check = check, .report = report, .teardown = teardown};
