/* cl_sync: the Event's level and timeout, the bounded semaphore's refusal, and
 * the reader-writer locks: readers inside together (a rendezvous inside the read
 * section, which a lock that serialises readers fails), writers alone, and
 * cl_rwlock's first-come-first-served order. Every wait that a broken lock could
 * make endless has a timeout. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "conclab.h"

#define SAFETY_S 20.0

static void until(atomic_bool *flag)
{
    double t0 = now_s();
    while (!atomic_load(flag)) {
        assert_true(now_s() - t0 < SAFETY_S);
        cl_sleep_ns(100000);
    }
}

/* --- Event ------------------------------------------------------------------ */

static void test_event_set_before_wait_is_not_lost(void **state)
{
    (void)state;
    struct cl_event e;
    assert_int_equal(cl_event_init(&e), 0);
    assert_false(cl_event_is_set(&e));
    cl_event_set(&e);
    cl_event_set(&e); /* a level: two sets are one */
    double t0 = now_s();
    assert_true(cl_event_wait(&e, 5));
    assert_true(now_s() - t0 < 1);
    assert_true(cl_event_wait(&e, 0)); /* stays set: every later wait passes */
    cl_event_clear(&e);
    assert_false(cl_event_is_set(&e));
    cl_event_destroy(&e);
}

static void test_event_wait_times_out(void **state)
{
    (void)state;
    struct cl_event e;
    assert_int_equal(cl_event_init(&e), 0);
    double t0 = now_s();
    assert_false(cl_event_wait(&e, 0.1));
    double took = now_s() - t0;
    assert_true(took >= 0.1);
    assert_true(took < SAFETY_S);
    cl_event_destroy(&e);
}

#define WAITERS 6

struct waiter {
    pthread_t tid;
    struct cl_event *e;
    atomic_int *inside;
    bool got;
};

static void *event_waiter(void *arg)
{
    struct waiter *w = arg;
    atomic_fetch_add(w->inside, 1);
    w->got = cl_event_wait(w->e, SAFETY_S);
    return NULL;
}

static void test_event_set_wakes_every_waiter(void **state)
{
    (void)state;
    struct cl_event e;
    atomic_int inside = 0;
    assert_int_equal(cl_event_init(&e), 0);
    struct waiter w[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (struct waiter){.e = &e, .inside = &inside};
        CL_PT(pthread_create(&w[i].tid, NULL, event_waiter, &w[i]));
    }
    while (atomic_load(&inside) < WAITERS)
        cl_sleep_ns(100000);
    cl_sleep_ns(20000000); /* most are asleep in the wait now; the others see the flag */
    double t0 = now_s();
    cl_event_set(&e);
    for (int i = 0; i < WAITERS; i++) {
        CL_PT(pthread_join(w[i].tid, NULL));
        assert_true(w[i].got);
    }
    assert_true(now_s() - t0 < SAFETY_S / 2);
    cl_event_destroy(&e);
}

/* --- Bounded semaphore -------------------------------------------------------- */

static void test_bsem_refuses_a_release_beyond_its_bound(void **state)
{
    (void)state;
    struct cl_bsem s;
    assert_int_equal(cl_bsem_init(&s, 2), 0);
    assert_int_equal(cl_bsem_release(&s), EOVERFLOW); /* nothing taken yet */
    assert_int_equal(cl_bsem_value(&s), 2);
    cl_bsem_acquire(&s);
    assert_int_equal(cl_bsem_release(&s), 0);
    assert_int_equal(cl_bsem_release(&s), EOVERFLOW); /* the same permit twice */
    assert_int_equal(cl_bsem_value(&s), 2);
    /* the refused release posted nothing: still exactly two permits */
    assert_true(cl_bsem_try_acquire(&s));
    assert_true(cl_bsem_try_acquire(&s));
    assert_false(cl_bsem_try_acquire(&s));
    assert_int_equal(cl_bsem_value(&s), 0);
    assert_int_equal(cl_bsem_release(&s), 0);
    assert_int_equal(cl_bsem_release(&s), 0);
    cl_bsem_destroy(&s);
}

static void test_bsem_timed_acquire_times_out(void **state)
{
    (void)state;
    struct cl_bsem s;
    assert_int_equal(cl_bsem_init(&s, 1), 0);
    assert_int_equal(cl_bsem_timed_acquire(&s, 1), 0);
    double t0 = now_s();
    assert_int_equal(cl_bsem_timed_acquire(&s, 0.1), ETIMEDOUT);
    assert_true(now_s() - t0 >= 0.09); /* CLOCK_REALTIME may step: a little slack */
    assert_int_equal(cl_bsem_value(&s), 0);
    assert_int_equal(cl_bsem_release(&s), 0);
    cl_bsem_destroy(&s);
}

#define HOLDERS 8
#define PERMITS 3

struct pool {
    struct cl_bsem s;
    atomic_int holders, high;
};

static void *pool_user(void *arg)
{
    struct pool *p = arg;
    for (int i = 0; i < 200; i++) {
        cl_bsem_acquire(&p->s);
        int h = atomic_fetch_add(&p->holders, 1) + 1;
        int hi = atomic_load(&p->high);
        while (h > hi && !atomic_compare_exchange_weak(&p->high, &hi, h))
            ;
        cl_busy_ns(2000);
        atomic_fetch_sub(&p->holders, 1);
        assert_int_equal(cl_bsem_release(&p->s), 0);
    }
    return NULL;
}

static void test_bsem_admits_at_most_its_bound(void **state)
{
    (void)state;
    struct pool p = {0};
    assert_int_equal(cl_bsem_init(&p.s, PERMITS), 0);
    pthread_t t[HOLDERS];
    for (int i = 0; i < HOLDERS; i++)
        CL_PT(pthread_create(&t[i], NULL, pool_user, &p));
    for (int i = 0; i < HOLDERS; i++)
        CL_PT(pthread_join(t[i], NULL));
    assert_true(atomic_load(&p.high) <= PERMITS);
    assert_true(atomic_load(&p.high) >= 1);
    assert_int_equal(cl_bsem_value(&p.s), PERMITS);
    assert_int_equal(cl_bsem_release(&p.s), EOVERFLOW);
    cl_bsem_destroy(&p.s);
}

/* Timed acquires that give up while releases hand permits over: a permit handed
 * to a waiter that timed out meanwhile must be neither lost nor doubled. */
static void *timed_user(void *arg)
{
    struct pool *p = arg;
    for (int i = 0; i < 3000; i++) {
        if (cl_bsem_timed_acquire(&p->s, 0.00005) != 0)
            continue;
        int h = atomic_fetch_add(&p->holders, 1) + 1;
        int hi = atomic_load(&p->high);
        while (h > hi && !atomic_compare_exchange_weak(&p->high, &hi, h))
            ;
        cl_busy_ns(500);
        atomic_fetch_sub(&p->holders, 1);
        assert_int_equal(cl_bsem_release(&p->s), 0);
    }
    return NULL;
}

static void test_bsem_timeouts_racing_releases_keep_the_count(void **state)
{
    (void)state;
    struct pool p = {0};
    assert_int_equal(cl_bsem_init(&p.s, 1), 0);
    pthread_t t[HOLDERS];
    for (int i = 0; i < HOLDERS; i++)
        CL_PT(pthread_create(&t[i], NULL, timed_user, &p));
    for (int i = 0; i < HOLDERS; i++)
        CL_PT(pthread_join(t[i], NULL));
    assert_int_equal(atomic_load(&p.high), 1);
    assert_int_equal(cl_bsem_value(&p.s), 1); /* exactly the one permit, free again */
    assert_true(cl_bsem_try_acquire(&p.s));
    assert_false(cl_bsem_try_acquire(&p.s));
    assert_int_equal(cl_bsem_release(&p.s), 0);
    assert_int_equal(cl_bsem_release(&p.s), EOVERFLOW);
    cl_bsem_destroy(&p.s);
}

/* --- Reader-writer locks: one interface over every lock the chapter uses ------ */

enum lock_kind { LIB_FAIR, GLIBC_READER, GLIBC_WRITER_NP, GLIBC_WRITER_NONREC, PLAIN_MUTEX };

struct any_lock {
    enum lock_kind kind;
    struct cl_rwlock fair;
    pthread_rwlock_t rw;
    pthread_mutex_t mu;
};

static void lock_init(struct any_lock *l, enum lock_kind kind)
{
    l->kind = kind;
    if (kind == LIB_FAIR) {
        assert_int_equal(cl_rwlock_init(&l->fair), 0);
    } else if (kind == PLAIN_MUTEX) {
        CL_PT(pthread_mutex_init(&l->mu, NULL));
    } else {
        pthread_rwlockattr_t a;
        CL_PT(pthread_rwlockattr_init(&a));
        static const int kinds[] = {
            [GLIBC_READER] = PTHREAD_RWLOCK_PREFER_READER_NP,
            [GLIBC_WRITER_NP] = PTHREAD_RWLOCK_PREFER_WRITER_NP,
            [GLIBC_WRITER_NONREC] = PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP,
        };
        CL_PT(pthread_rwlockattr_setkind_np(&a, kinds[kind]));
        CL_PT(pthread_rwlock_init(&l->rw, &a));
        CL_PT(pthread_rwlockattr_destroy(&a));
    }
}

static void lock_destroy(struct any_lock *l)
{
    if (l->kind == LIB_FAIR)
        cl_rwlock_destroy(&l->fair);
    else if (l->kind == PLAIN_MUTEX)
        pthread_mutex_destroy(&l->mu);
    else
        pthread_rwlock_destroy(&l->rw);
}

static void rd(struct any_lock *l, bool lock)
{
    if (l->kind == LIB_FAIR)
        lock ? cl_rwlock_rdlock(&l->fair) : cl_rwlock_rdunlock(&l->fair);
    else if (l->kind == PLAIN_MUTEX)
        CL_PT(lock ? pthread_mutex_lock(&l->mu) : pthread_mutex_unlock(&l->mu));
    else
        CL_PT(lock ? pthread_rwlock_rdlock(&l->rw) : pthread_rwlock_unlock(&l->rw));
}

static void wr(struct any_lock *l, bool lock)
{
    if (l->kind == LIB_FAIR)
        lock ? cl_rwlock_wrlock(&l->fair) : cl_rwlock_wrunlock(&l->fair);
    else if (l->kind == PLAIN_MUTEX)
        CL_PT(lock ? pthread_mutex_lock(&l->mu) : pthread_mutex_unlock(&l->mu));
    else
        CL_PT(lock ? pthread_rwlock_wrlock(&l->rw) : pthread_rwlock_unlock(&l->rw));
}

struct meet {
    struct any_lock *l;
    struct cl_barrier *b;
    double timeout_s;
    int rc;
};

/* A reader that, inside the read section, waits for the other reader to be
 * inside too: only a lock that admits both at once lets the barrier pass. */
static void *rendezvous_reader(void *arg)
{
    struct meet *m = arg;
    rd(m->l, true);
    m->rc = cl_barrier_wait(m->b, m->timeout_s);
    rd(m->l, false);
    return NULL;
}

static bool readers_meet(enum lock_kind kind, double timeout_s)
{
    struct any_lock l;
    struct cl_barrier b;
    lock_init(&l, kind);
    assert_int_equal(cl_barrier_init(&b, 2, NULL, NULL), 0);
    struct meet m[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        m[i] = (struct meet){.l = &l, .b = &b, .timeout_s = timeout_s};
        CL_PT(pthread_create(&t[i], NULL, rendezvous_reader, &m[i]));
    }
    bool met = true;
    for (int i = 0; i < 2; i++) {
        CL_PT(pthread_join(t[i], NULL));
        met = met && m[i].rc >= 0;
    }
    cl_barrier_destroy(&b);
    lock_destroy(&l);
    return met;
}

static void test_readers_are_inside_together(void **state)
{
    (void)state;
    assert_true(readers_meet(LIB_FAIR, SAFETY_S));
    assert_true(readers_meet(GLIBC_READER, SAFETY_S));
    assert_true(readers_meet(GLIBC_WRITER_NP, SAFETY_S));
    assert_true(readers_meet(GLIBC_WRITER_NONREC, SAFETY_S));
}

static void test_a_lock_that_serialises_readers_fails_the_rendezvous(void **state)
{
    (void)state;
    assert_false(readers_meet(PLAIN_MUTEX, 0.2));
}

#define RW_THREADS 4
#define RW_ROUNDS  3000

struct shared_pair {
    struct any_lock *l;
    long a, b; /* equal whenever no writer is inside */
    atomic_long torn;
};

static void *mixed_user(void *arg)
{
    struct shared_pair *p = arg;
    for (int i = 0; i < RW_ROUNDS; i++) {
        if (i % 4 == 0) {
            wr(p->l, true);
            p->a++;
            p->b++;
            wr(p->l, false);
        } else {
            rd(p->l, true);
            if (p->a != p->b)
                atomic_fetch_add(&p->torn, 1);
            rd(p->l, false);
        }
    }
    return NULL;
}

static void test_writers_are_alone(void **state)
{
    (void)state;
    for (enum lock_kind k = LIB_FAIR; k <= GLIBC_WRITER_NONREC; k++) {
        struct any_lock l;
        lock_init(&l, k);
        struct shared_pair p = {.l = &l};
        pthread_t t[RW_THREADS];
        for (int i = 0; i < RW_THREADS; i++)
            CL_PT(pthread_create(&t[i], NULL, mixed_user, &p));
        for (int i = 0; i < RW_THREADS; i++)
            CL_PT(pthread_join(t[i], NULL));
        assert_int_equal(p.a, RW_THREADS * RW_ROUNDS / 4);
        assert_int_equal(p.b, p.a);
        assert_int_equal(atomic_load(&p.torn), 0);
        lock_destroy(&l);
    }
}

/* --- cl_rwlock's order: a reader behind a waiting writer waits for it --------- */

struct fifo {
    struct cl_rwlock l;
    atomic_bool writer_in, writer_out, reader_in, reader_in_during_write;
};

static void *fifo_writer(void *arg)
{
    struct fifo *f = arg;
    cl_rwlock_wrlock(&f->l);
    atomic_store(&f->writer_in, true);
    cl_sleep_ns(30000000); /* a reader who barged in would be seen meanwhile */
    atomic_store(&f->reader_in_during_write, atomic_load(&f->reader_in));
    atomic_store(&f->writer_out, true);
    cl_rwlock_wrunlock(&f->l);
    return NULL;
}

static void *fifo_reader(void *arg)
{
    struct fifo *f = arg;
    cl_rwlock_rdlock(&f->l);
    atomic_store(&f->reader_in, true);
    cl_rwlock_rdunlock(&f->l);
    return NULL;
}

static void await_waiting(struct cl_rwlock *l, unsigned n)
{
    double t0 = now_s();
    while (cl_rwlock_waiting(l) < n) {
        assert_true(now_s() - t0 < SAFETY_S);
        cl_sleep_ns(100000);
    }
}

static void test_rwlock_serves_in_arrival_order(void **state)
{
    (void)state;
    struct fifo f = {0};
    assert_int_equal(cl_rwlock_init(&f.l), 0);
    cl_rwlock_rdlock(&f.l); /* the first reader holds */
    pthread_t w, r;
    CL_PT(pthread_create(&w, NULL, fifo_writer, &f));
    await_waiting(&f.l, 1);
    CL_PT(pthread_create(&r, NULL, fifo_reader, &f));
    await_waiting(&f.l, 2);
    cl_sleep_ns(20000000);
    /* a reader-preferring lock would have let the second reader share ours */
    assert_false(atomic_load(&f.reader_in));
    assert_false(atomic_load(&f.writer_in));
    cl_rwlock_rdunlock(&f.l);
    CL_PT(pthread_join(w, NULL));
    CL_PT(pthread_join(r, NULL));
    assert_true(atomic_load(&f.writer_out));
    assert_false(atomic_load(&f.reader_in_during_write));
    assert_true(atomic_load(&f.reader_in));
    assert_int_equal(cl_rwlock_waiting(&f.l), 0);
    cl_rwlock_destroy(&f.l);
}

static void test_rwlock_writer_waits_for_readers_ahead(void **state)
{
    (void)state;
    struct fifo f = {0};
    assert_int_equal(cl_rwlock_init(&f.l), 0);
    cl_rwlock_rdlock(&f.l);
    cl_rwlock_rdlock(&f.l); /* two readers in */
    pthread_t w;
    CL_PT(pthread_create(&w, NULL, fifo_writer, &f));
    await_waiting(&f.l, 1);
    cl_rwlock_rdunlock(&f.l);
    cl_sleep_ns(20000000);
    assert_false(atomic_load(&f.writer_in)); /* one reader is still inside */
    cl_rwlock_rdunlock(&f.l);
    until(&f.writer_out);
    CL_PT(pthread_join(w, NULL));
    cl_rwlock_destroy(&f.l);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_set_before_wait_is_not_lost),
        cmocka_unit_test(test_event_wait_times_out),
        cmocka_unit_test(test_event_set_wakes_every_waiter),
        cmocka_unit_test(test_bsem_refuses_a_release_beyond_its_bound),
        cmocka_unit_test(test_bsem_timed_acquire_times_out),
        cmocka_unit_test(test_bsem_admits_at_most_its_bound),
        cmocka_unit_test(test_bsem_timeouts_racing_releases_keep_the_count),
        cmocka_unit_test(test_readers_are_inside_together),
        cmocka_unit_test(test_a_lock_that_serialises_readers_fails_the_rendezvous),
        cmocka_unit_test(test_writers_are_alone),
        cmocka_unit_test(test_rwlock_serves_in_arrival_order),
        cmocka_unit_test(test_rwlock_writer_waits_for_readers_ahead),
    };
    return UNIT_MAIN("sync", tests);
}
