/* barrier: naive-reuse, the reusable barrier that fails in The Little Book of
 * Semaphores ("reusable barrier non-solution #2", section 3.6 of edition 2.1.5):
 * a mutex, a count, and ONE turnstile for every phase. The last to arrive opens
 * the turnstile, each thread through it lets the next one through, and the last
 * to leave closes it again. Nothing stops a thread that has left from arriving
 * at the next phase before the others have left this one.
 *
 * A thread that runs a lap ahead does not by itself hang the program: the
 * turnstile's tokens only let the threads run out of step, and of all the
 * interleavings of 2 threads and 4 phases some finish. It hangs only once a
 * thread has finished while another still needs a token. The order below ends
 * in one whatever the scheduler does next; every point where it holds a thread
 * back is one where a scheduler may preempt it. With n threads, T1 and the
 * others (T2..Tn), and the turnstile's value as tok:
 *
 *   barrier 1: T1 arrives first (count 1) and waits at the turnstile.
 *     The others arrive; the last makes count n and opens it (tok 1). Each is
 *     then preempted before it reaches the turnstile.
 *   T1 passes barrier 1 (tok 1), leaves (count n - 1), computes phase 2 and
 *     arrives at barrier 2: count is n again, so it opens the turnstile once
 *     more (tok 2). It passes barrier 2 while the others have not passed
 *     barrier 1: it has lapped them. It leaves (count n - 1) and is preempted.
 *   The others pass barrier 1 and leave; the last makes count 0 and takes a
 *     token (tok 1). Each is preempted before phase 2.
 *   T1 computes phase 3 and arrives at barrier 3: count 1, and the token left
 *     over lets it through alone. It leaves, count 0, takes that token (tok 0),
 *     and has finished its 3 phases: its thread exits.
 *   The others compute phase 2 and arrive at barrier 2: count reaches n - 1,
 *     never n, since T1 will not arrive again; tok is 0 and only the n-th
 *     arrival would open the turnstile. They wait there for ever.
 *
 * From that last state no interleaving finishes. With more phases one could: T1
 * would arrive again, and the threads could drift back into step. Hence exactly
 * 3 phases. tests/models/naive_barrier.py explores every interleaving, free and
 * with these holds, for 2 to 4 threads, and checks each of these claims. The
 * order is also free of data races on the grid: while T1 runs ahead, the others
 * compute nothing, so the stencil's reads and writes stay ordered by the
 * semaphores and these hand-offs. */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "barrier.h"

/* [snippet naive-reuse] */
static struct {
    pthread_mutex_t mutex;
    sem_t turnstile; /* 0: closed */
    int count;       /* threads between arriving and leaving: under the mutex */
    int n;           /* the parties */
} nb = {.mutex = PTHREAD_MUTEX_INITIALIZER};

enum point { ARRIVING, ARRIVED, LEFT };
static void at(struct cl_worker *w, enum point p);

bool naive_wait(struct cl_worker *w)
{
    at(w, ARRIVING);
    CL_PT(pthread_mutex_lock(&nb.mutex));
    if (++nb.count == nb.n) /* the last to arrive opens the turnstile */
        CL_SYS(sem_post(&nb.turnstile));
    CL_PT(pthread_mutex_unlock(&nb.mutex));
    at(w, ARRIVED);
    cl_status(w, "waits at the turnstile");
    CL_SYS_RETRY(sem_wait(&nb.turnstile)); /* one thread at a time ... */
    CL_SYS(sem_post(&nb.turnstile));       /* ... each lets the next one through */
    cl_status(w, NULL);
    CL_PT(pthread_mutex_lock(&nb.mutex));
    if (--nb.count == 0) /* the last to leave closes it again */
        CL_SYS_RETRY(sem_wait(&nb.turnstile));
    CL_PT(pthread_mutex_unlock(&nb.mutex));
    at(w, LEFT);
    return true;
}
/* [end naive-reuse] */

/* How far each thread got, for the order above and for the watchdog. */
static struct record {
    _Alignas(64) _Atomic int arrived; /* barriers arrived at */
    _Atomic int left;                 /* barriers passed and left */
} * rec;

/* The first lap seen: who passed which barrier while whom had not passed the one before. */
static _Atomic int lap_by, lap_barrier, lap_behind; /* thread ids + 1; 0: none yet */

static void note_lap(const struct cl_worker *w, int barrier)
{
    for (int t = 0; t < nb.n; t++) {
        int expected = 0;
        if (t != w->id && atomic_load(&rec[t].left) < barrier - 1 &&
            atomic_compare_exchange_strong(&lap_by, &expected, w->id + 1)) {
            atomic_store(&lap_barrier, barrier);
            atomic_store(&lap_behind, t + 1);
        }
    }
}

/* Preempted, in effect: the thread waits here until the others have got far enough. */
static void hold_until_left(struct cl_worker *w, int thread, int barriers)
{
    cl_status(w, "held back, as a preempted thread would be");
    while (atomic_load(&rec[thread].left) < barriers)
        cl_sleep_ns(20000);
    cl_status(w, NULL);
}

static void at(struct cl_worker *w, enum point p)
{
    struct record *me = &rec[w->id];
    bool t1 = w->id == 0;
    if (p == ARRIVING && !t1 && atomic_load(&me->arrived) == 0) {
        cl_status(w, "held back, as a preempted thread would be");
        while (atomic_load(&rec[0].arrived) == 0) /* T1 arrives at barrier 1 first */
            cl_sleep_ns(20000);
        cl_status(w, NULL);
    } else if (p == ARRIVED) {
        int barrier = atomic_fetch_add(&me->arrived, 1) + 1;
        if (!t1 && barrier == 1)
            hold_until_left(w, 0, 2); /* until T1 has passed barrier 2 */
    } else if (p == LEFT) {
        int barrier = atomic_fetch_add(&me->left, 1) + 1;
        note_lap(w, barrier);
        if (t1 && barrier == 2)
            for (int t = 1; t < nb.n; t++)
                hold_until_left(w, t, 1); /* until every other thread has left barrier 1 */
        if (!t1 && barrier == 1)
            hold_until_left(w, 0, NAIVE_STEPS); /* until T1 has finished */
    }
}

void naive_init(int threads)
{
    nb.count = 0;
    nb.n = threads;
    CL_SYS(sem_init(&nb.turnstile, 0, 0));
    rec = cl_xaligned_calloc(64, (size_t)threads, sizeof *rec);
    atomic_store(&lap_by, 0);
}

void naive_fini(void)
{
    CL_SYS(sem_destroy(&nb.turnstile));
    free(rec);
}

/* Who ran ahead, who is left behind, and the barrier's state, from atomics and
 * the turnstile's value (sem_getvalue takes no lock). */
void naive_report(int fd, const struct cl_run *run)
{
    int inside = 0, tokens = 0, gone = 0;
    for (int t = 0; t < nb.n; t++) {
        inside += atomic_load(&rec[t].arrived) - atomic_load(&rec[t].left);
        gone += atomic_load(&run->workers[t].finished);
    }
    CL_SYS(sem_getvalue(&nb.turnstile, &tokens));
    dprintf(fd, "  naive barrier: %d of %d threads arrived, turnstile %d%s\n", inside, nb.n, tokens,
            tokens == 0 ? " (closed)" : "");
    if (atomic_load(&lap_by) > 0)
        dprintf(fd,
                "  T%d passed barrier %d while T%d had not yet passed barrier %d: a lap ahead\n",
                atomic_load(&lap_by), atomic_load(&lap_barrier), atomic_load(&lap_behind),
                atomic_load(&lap_barrier) - 1);
    for (int t = 0, listed = 0; t < nb.n; t++)
        if (!atomic_load(&run->workers[t].finished)) {
            if (listed++ == 0)
                dprintf(fd, "  => left behind at barrier %d:", atomic_load(&rec[t].arrived));
            dprintf(fd, "%s T%d", listed > 1 ? "," : "", t + 1);
        }
    if (gone > 0) {
        dprintf(fd, "; it opens when all %d have arrived, and", nb.n);
        for (int t = 0, listed = 0; t < nb.n; t++)
            if (atomic_load(&run->workers[t].finished))
                dprintf(fd, "%s T%d", listed++ ? "," : "", t + 1);
        dprintf(fd, " finished, never to arrive again");
    }
    dprintf(fd, "\n");
}
