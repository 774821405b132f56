/* race: lost updates, and the ways to stop losing them.
 *
 * Every variant is one thread's whole job: `iters` increments of a shared count
 * (or withdrawals from a shared account, or pushes onto a shared vector). lib/
 * starts the threads together, times them, and calls check() once they are
 * joined. cl_tick() only counts progress for the watchdog. In the race-free
 * loops, cl_compiler_barrier() keeps -O2 from folding the loop into a single add,
 * so each iteration really stores. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conclab.h"

enum { WINDOW_US, THRESHOLD, RESERVE }; /* the chapter's own flags */

/* Where each variant's result is: which counter to read, the bank account, or
 * the shared vector. */
enum kind {
    RACY_COUNT,
    LOCKED_COUNT,
    ATOMIC_COUNT,
    SHARDED_COUNT,
    PACKED_COUNT,
    SLOPPY_COUNT,
    BANK,
    VECTOR
};

/* An AddressSanitizer build may let vector-append reallocate under its writers:
 * ASan stops the program at the first write to freed memory and says where. */
#ifdef __SANITIZE_ADDRESS__
#define UNDER_ASAN true
#else
#define UNDER_ASAN false
#endif

#define MAX_VECTOR_ITEMS  100000000ull /* vector-append keeps every item: 800 MB at most */
#define TSAN_VECTOR_ITERS 50000        /* vector-append's pushes per thread under TSan */

/* [snippet state] */
/* volatile makes every access a real load or store, as in unoptimised code, so
 * the race shows up at -O2. It does not make them atomic or ordered. */
static volatile uint64_t racy_counter; /* none, window */
static uint64_t counter;               /* mutex, spinlock: only touched under a lock */
static _Atomic uint64_t atomic_counter;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_spinlock_t counter_spin;

struct padded {
    _Alignas(64) uint64_t n; /* one counter per cache line */
};
static struct padded *shards;    /* sharded: one line per thread */
static uint64_t *packed;         /* false-sharing: eight threads per line */
static volatile int64_t balance; /* the bank account of check-then-act */
static pthread_mutex_t account_lock = PTHREAD_MUTEX_INITIALIZER;
static struct padded *paid_out; /* withdrawals each thread was granted */
/* [end state] */

/* [snippet none] */
static void inc_none(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        racy_counter++; /* load, add, store: another thread can store in between */
        cl_tick(w);
    }
}
/* [end none] */

/* [snippet split-atomic] */
static void inc_split_atomic(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        uint64_t seen = atomic_load_explicit(&atomic_counter, memory_order_relaxed);
        /* another thread's increment can land here, and is overwritten below */
        atomic_store_explicit(&atomic_counter, seen + 1, memory_order_relaxed);
        cl_tick(w);
    }
}
/* [end split-atomic] */

/* [snippet window] */
static void inc_window(struct cl_worker *w)
{
    uint64_t window_ns = (uint64_t)cl_param(w->run, WINDOW_US) * 1000;
    for (uint64_t i = 0; i < w->iters; i++) {
        uint64_t seen = racy_counter; /* read */
        uint64_t t = cl_span_begin(w);
        cl_sleep_ns(window_ns); /* every other thread reads the same value meanwhile */
        cl_span_end(w, CL_SPAN_WAIT, t);
        racy_counter = seen + 1; /* write back: their increments vanish */
        cl_tick(w);
    }
}
/* [end window] */

/* [snippet mutex] */
static void inc_mutex(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        CL_PT(pthread_mutex_lock(&counter_lock));
        counter++; /* only one thread at a time gets here */
        CL_PT(pthread_mutex_unlock(&counter_lock));
        cl_tick(w);
    }
}
/* [end mutex] */

/* [snippet spinlock] */
static void inc_spinlock(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        CL_PT(pthread_spin_lock(&counter_spin)); /* waits by burning CPU, never sleeps */
        counter++;
        CL_PT(pthread_spin_unlock(&counter_spin));
        cl_tick(w);
    }
}
/* [end spinlock] */

/* [snippet atomic] */
static void inc_atomic(struct cl_worker *w)
{
    for (uint64_t i = 0; i < w->iters; i++) {
        /* one indivisible read-modify-write (a lock-prefixed add on x86) */
        atomic_fetch_add_explicit(&atomic_counter, 1, memory_order_relaxed);
        cl_tick(w);
    }
}
/* [end atomic] */

/* [snippet sharded] */
static void inc_sharded(struct cl_worker *w)
{
    uint64_t *mine = &shards[w->id].n; /* a cache line no other thread touches */
    for (uint64_t i = 0; i < w->iters; i++) {
        (*mine)++;
        cl_compiler_barrier();
        cl_tick(w);
    }
}

static uint64_t read_sharded(int threads)
{
    uint64_t sum = 0; /* after the joins, so every shard is final */
    for (int t = 0; t < threads; t++)
        sum += shards[t].n;
    return sum;
}
/* [end sharded] */

/* [snippet false-sharing] */
static void inc_false_sharing(struct cl_worker *w)
{
    uint64_t *mine = &packed[w->id]; /* private, but its cache line is not */
    for (uint64_t i = 0; i < w->iters; i++) {
        (*mine)++;
        cl_compiler_barrier();
        cl_tick(w);
    }
}
/* [end false-sharing] */

static uint64_t read_packed(int threads)
{
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++)
        sum += packed[t];
    return sum;
}

/* [snippet sloppy] */
static uint64_t global_count; /* only touched under global_lock */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t flushes; /* trips to the global, for the check */

static void flush(uint64_t n)
{
    CL_PT(pthread_mutex_lock(&global_lock));
    global_count += n;
    flushes++;
    CL_PT(pthread_mutex_unlock(&global_lock));
}

static void inc_sloppy(struct cl_worker *w)
{
    uint64_t threshold = (uint64_t)cl_param(w->run, THRESHOLD);
    uint64_t local = 0; /* this thread's increments not yet in the global */
    for (uint64_t i = 0; i < w->iters; i++) {
        if (++local == threshold) { /* every S increments, one trip to the shared lock */
            flush(local);
            local = 0;
        }
        cl_tick(w);
    }
    if (local > 0)
        flush(local); /* the remainder: once every thread has, the global is exact */
}
/* [end sloppy] */

/* [snippet check-then-act] */
static void withdraw_unlocked(struct cl_worker *w)
{
    uint64_t granted = 0;
    for (uint64_t i = 0; i < w->iters; i++) {
        if (balance >= 1) { /* check ... */
            balance -= 1;   /* ... then act, on a balance that may have changed */
            granted++;
        }
        cl_tick(w);
    }
    paid_out[w->id].n = granted;
}
/* [end check-then-act] */

/* [snippet check-then-act-locked] */
static void withdraw_locked(struct cl_worker *w)
{
    uint64_t granted = 0;
    for (uint64_t i = 0; i < w->iters; i++) {
        CL_PT(pthread_mutex_lock(&account_lock));
        if (balance >= 1) { /* the check and the act are one step now */
            balance -= 1;
            granted++;
        }
        CL_PT(pthread_mutex_unlock(&account_lock));
        cl_tick(w);
    }
    paid_out[w->id].n = granted;
}
/* [end check-then-act-locked] */

/* [snippet vector-append] */
struct vector {
    uint64_t *volatile items; /* room for every item, reserved before the run */
    volatile size_t len;      /* slots in use: the one thing the threads race on */
    size_t cap;               /* slots allocated */
    bool grows;               /* --reserve below the items: realloc (ASan builds only) */
};
static struct vector vec;

#define EMPTY_SLOT UINT64_MAX /* never written: no item has this tag */

/* Which thread pushed an item, and its number in that thread: unique. */
static uint64_t tag(int thread, uint64_t i)
{
    return (uint64_t)thread << 48 | i;
}

static void push_growing(struct cl_worker *w);

static void push_back(struct cl_worker *w)
{
    if (vec.grows) { /* --reserve below the items: see push_growing */
        push_growing(w);
        return;
    }
    for (uint64_t i = 0; i < w->iters; i++) {
        size_t n = vec.len;           /* read the length */
        vec.items[n] = tag(w->id, i); /* another thread may be writing slot n too */
        vec.len = n + 1;              /* and may have pushed past n meanwhile: len goes back */
        cl_tick(w);
    }
}
/* [end vector-append] */

/* [snippet vector-grow] */
/* Double the array, as a growable vector does when it is full. realloc moves it
 * and frees the old one, which other threads may still be writing to. */
static void grow(void)
{
    size_t cap = vec.cap > 0 ? 2 * vec.cap : 16;
    uint64_t *items = realloc(vec.items, cap * sizeof *items);
    if (items == NULL)
        cl_die(__FILE__, __LINE__, "realloc", ENOMEM);
    for (size_t s = vec.cap; s < cap; s++)
        items[s] = EMPTY_SLOT;
    vec.items = items;
    vec.cap = cap;
}

static _Atomic bool first_slot_taken;

static bool others_finished(const struct cl_worker *w)
{
    for (int t = 0; t < w->run->threads; t++)
        if (t != w->id && !atomic_load(&w->run->workers[t].finished))
            return false;
    return true;
}

/* The same pushes into a vector that grows: a use-after-free, so only an
 * AddressSanitizer build runs it (prepare). The interleaving that shows it every
 * time: T1 takes its first slot and is preempted before it fills it, until
 * another thread has filled the array and grown it; T1's write then lands in the
 * freed array. (Left to chance, two threads that find the vector full at once
 * both realloc it, and free the same array twice: the same bug, another report.) */
static void push_growing(struct cl_worker *w)
{
    while (w->id != 0 && !atomic_load(&first_slot_taken))
        cl_sleep_ns(10000); /* the others start once T1 holds its slot */
    for (uint64_t i = 0; i < w->iters; i++) {
        size_t n = vec.len;
        if (n >= vec.cap) /* full: grow it */
            grow();
        uint64_t *slot = &vec.items[n]; /* take slot n */
        vec.len = n + 1;
        if (w->id == 0 && i == 0) { /* T1, preempted here until the array moves */
            atomic_store(&first_slot_taken, true);
            while (vec.items == slot - n && !others_finished(w))
                cl_sleep_ns(10000);
        }
        *slot = tag(w->id, i); /* fill it: T1 writes to the freed array */
        cl_tick(w);
    }
}
/* [end vector-grow] */

/* The final count of a counting variant, after the joins. */
static uint64_t final_count(const struct cl_run *run)
{
    switch (run->variant->kind) {
    case RACY_COUNT:
        return racy_counter;
    case LOCKED_COUNT:
        return counter;
    case ATOMIC_COUNT:
        return atomic_load(&atomic_counter);
    case SHARDED_COUNT:
        return read_sharded(run->threads);
    case SLOPPY_COUNT:
        return global_count;
    default:
        return read_packed(run->threads);
    }
}

#define N 1000000 /* default increments per thread: the whole run takes well under 1 s */
/* The two broken loops run 4 times longer (30 ms or so): on a busy machine a shorter run
 * often ends before the second thread gets a core, and loses nothing. */
#define N_BROKEN (4 * N)

static const struct cl_variant variants[] = {
    {"none", CL_RACY, "counter++ from every thread, no synchronisation", .kind = RACY_COUNT,
     .worker = inc_none, .threads = 2, .iters = N_BROKEN},
    {"split-atomic", CL_WRONG, "atomic load, then atomic store: no data race, still lost",
     .kind = ATOMIC_COUNT, .worker = inc_split_atomic, .threads = 2, .iters = N_BROKEN},
    {"window", CL_RACY, "read, sleep --window-us, write: the guides' lost update",
     .kind = RACY_COUNT, .worker = inc_window, .threads = 10, .iters = 100, .max_iters = 1000},
    {"vector-append", CL_RACY, "push onto a shared array with room reserved: items overwritten",
     .kind = VECTOR, .worker = push_back, .threads = 2, .iters = N},
    {"mutex", CL_CORRECT, "a pthread mutex around the increment", .kind = LOCKED_COUNT,
     .worker = inc_mutex, .threads = 2, .iters = N},
    {"spinlock", CL_CORRECT, "a pthread spinlock around the increment", .kind = LOCKED_COUNT,
     .worker = inc_spinlock, .threads = 2, .iters = N},
    {"atomic", CL_CORRECT, "atomic fetch-and-add", .kind = ATOMIC_COUNT, .worker = inc_atomic,
     .threads = 2, .iters = N},
    {"sharded", CL_CORRECT, "a counter per thread on its own cache line, summed at the end",
     .kind = SHARDED_COUNT, .worker = inc_sharded, .threads = 2, .iters = N},
    {"sloppy", CL_CORRECT, "OSTEP's approximate counter: a local count, flushed every --threshold",
     .kind = SLOPPY_COUNT, .worker = inc_sloppy, .threads = 2, .iters = N},
    {"false-sharing", CL_CORRECT, "a counter per thread, all packed into one cache line",
     .kind = PACKED_COUNT, .worker = inc_false_sharing, .threads = 2, .iters = N},
    {"check-then-act", CL_RACY, "if (balance >= 1) balance -= 1, unlocked: overdraws", .kind = BANK,
     .worker = withdraw_unlocked, .threads = 2, .iters = N},
    {"check-then-act-locked", CL_CORRECT, "the same check and act under one mutex", .kind = BANK,
     .worker = withdraw_locked, .threads = 2, .iters = N},
};

static const struct cl_param params[] = {
    [WINDOW_US] = {"window-us",
                   "the window variant's sleep between read and write, in "
                   "microseconds",
                   .def = 100, .min = 1, .max = 100000},
    [THRESHOLD] = {"threshold", "sloppy: increments a thread counts locally before it flushes",
                   .def = 1024, .min = 1, .max = 1000000000},
    [RESERVE] = {"reserve",
                 "vector-append: slots reserved before the run; fewer than the items grow "
                 "it with realloc, unlocked (AddressSanitizer builds only)",
                 .max = (long long)MAX_VECTOR_ITEMS, .unset = "one per item (threads x iters)"},
};

static int prepare(struct cl_run *run, char *err, size_t errlen)
{
    uint64_t items = (uint64_t)run->threads * run->iters;
    if (run->variant->kind != VECTOR)
        return 0;
    if (items > MAX_VECTOR_ITEMS) {
        snprintf(err, errlen,
                 "race: --threads x --iters: vector-append keeps every item in memory "
                 "(allowed: %llu items at most; got %llu)",
                 MAX_VECTOR_ITEMS, (unsigned long long)items);
        return 1;
    }
    /* TSan compares each racy slot with every one reported before it: at the
     * default size that takes minutes. Its finding needs only a few. */
    if (cl_under_tsan() && run->iters > TSAN_VECTOR_ITERS) {
        run->iters = TSAN_VECTOR_ITERS;
        items = (uint64_t)run->threads * run->iters;
    }
    if (!cl_param_given(run, RESERVE))
        run->param[RESERVE] = (long long)items;
    if ((uint64_t)cl_param(run, RESERVE) < items && !UNDER_ASAN) {
        snprintf(err, errlen,
                 "race: --reserve: below threads x iters (%llu) the vector reallocates "
                 "while other threads write to it, a use-after-free; allowed only in an "
                 "AddressSanitizer build",
                 (unsigned long long)items);
        return 1;
    }
    return 0;
}

/* The account starts with half of what all threads together try to withdraw. */
static int64_t opening_balance(const struct cl_run *run)
{
    return (int64_t)((uint64_t)run->threads * run->iters / 2);
}

static void setup(const struct cl_run *run)
{
    racy_counter = 0;
    counter = 0;
    atomic_store(&atomic_counter, 0);
    CL_PT(pthread_spin_init(&counter_spin, PTHREAD_PROCESS_PRIVATE));
    /* calloc aligns to 16 bytes only: a shard could then straddle two cache lines */
    shards = cl_xaligned_calloc(_Alignof(struct padded), (size_t)run->threads, sizeof *shards);
    packed = cl_xaligned_calloc(64, (size_t)run->threads, sizeof *packed);
    paid_out = cl_xaligned_calloc(_Alignof(struct padded), (size_t)run->threads, sizeof *paid_out);
    balance = opening_balance(run);
    global_count = 0;
    flushes = 0;
    vec = (struct vector){0};
    atomic_store(&first_slot_taken, false);
    if (run->variant->kind == VECTOR) {
        vec.cap = (size_t)cl_param(run, RESERVE);
        vec.grows = vec.cap < (size_t)run->threads * run->iters;
        vec.items = vec.cap > 0 ? cl_xcalloc(vec.cap, sizeof(uint64_t)) : NULL;
        if (vec.cap > 0)
            memset(vec.items, 0xff, vec.cap * sizeof(uint64_t)); /* every slot EMPTY_SLOT */
    }
}

static void check_bank(const struct cl_run *run, struct cl_result *res)
{
    uint64_t granted = 0;
    for (int t = 0; t < run->threads; t++)
        granted += paid_out[t].n;
    int64_t opening = opening_balance(run);
    uint64_t excess = granted > (uint64_t)opening ? granted - (uint64_t)opening : 0;
    char a[32];
    res->exact = granted == (uint64_t)opening && balance == 0;
    cl_metric_int(res, "opening", opening);
    cl_metric_int(res, "paid_out", (long long)granted);
    cl_metric_int(res, "balance", balance);
    cl_metric_int(res, "overdrawn", (long long)excess);
    if (res->exact)
        cl_verdict(res, "paid out exactly the opening balance of %s; never overdrawn",
                   cl_fmt_count((uint64_t)opening, a));
    else {
        char b[32];
        cl_verdict(res, "overdrawn: paid out %s more than the opening %s (final balance %lld)",
                   cl_fmt_count(excess, a), cl_fmt_count((uint64_t)opening, b), (long long)balance);
    }
}

/* Every slot below the final length must hold a distinct item: those are kept.
 * The others were overwritten, or lie past a length that went back (stranded). */
static void check_vector(const struct cl_run *run, struct cl_result *res)
{
    uint64_t expected = (uint64_t)run->threads * run->iters, kept = 0, stranded = 0, bad = 0;
    size_t len = vec.len;
    uint8_t *seen = cl_xcalloc(expected, 1);
    for (size_t s = 0; s < vec.cap; s++) {
        uint64_t t = vec.items[s], thread = t >> 48, i = t & ((1ull << 48) - 1);
        if (t == EMPTY_SLOT) {
            bad += s < len; /* a hole inside the vector: never expected */
            continue;
        }
        if (thread >= (uint64_t)run->threads || i >= run->iters ||
            seen[thread * run->iters + i]++) {
            bad++; /* not an item, or one item twice */
            continue;
        }
        if (s < len)
            kept++;
        else
            stranded++;
    }
    free(seen);
    uint64_t lost = expected - kept;
    double pct = 100.0 * (double)lost / (double)expected;
    char a[32], b[32], c[32], d[32], e[32];
    res->exact = kept == expected && bad == 0;
    cl_metric_int(res, "length", (long long)len);
    cl_metric_int(res, "kept", (long long)kept);
    cl_metric_int(res, "expected", (long long)expected);
    cl_metric_int(res, "lost", (long long)lost);
    cl_metric_real(res, "lost_pct", pct);
    cl_metric_int(res, "overwritten", (long long)(lost - stranded));
    cl_metric_int(res, "stranded", (long long)stranded);
    cl_metric_int(res, "corrupt", (long long)bad);
    if (res->exact)
        cl_verdict(res, "exact: all %s items kept", cl_fmt_count(expected, a));
    else
        cl_verdict(res, "kept %s of %s items, lost %s (%.1f%%): %s overwritten, %s past the end%s",
                   cl_fmt_count(kept, a), cl_fmt_count(expected, b), cl_fmt_count(lost, c), pct,
                   cl_fmt_count(lost - stranded, d), cl_fmt_count(stranded, e),
                   bad > 0 ? "; and slots that hold no item" : "");
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    if (run->variant->kind == BANK)
        check_bank(run, res);
    else if (run->variant->kind == VECTOR)
        check_vector(run, res);
    else {
        uint64_t expected = (uint64_t)run->threads * run->iters;
        uint64_t final = final_count(run);
        uint64_t lost = expected > final ? expected - final : 0;
        double pct = 100.0 * (double)lost / (double)expected;
        char a[32], b[32], c[32];
        res->exact = final == expected;
        cl_metric_int(res, "final", (long long) final);
        cl_metric_int(res, "expected", (long long)expected);
        cl_metric_int(res, "lost", (long long)lost);
        cl_metric_real(res, "lost_pct", pct);
        if (run->variant->kind == SLOPPY_COUNT)
            cl_metric_int(res, "flushes", (long long)flushes);
        if (res->exact && run->variant->kind == SLOPPY_COUNT)
            cl_verdict(res, "exact: %s of %s increments counted, in %s trips to the lock",
                       cl_fmt_count(final, a), cl_fmt_count(expected, b), cl_fmt_count(flushes, c));
        else if (res->exact)
            cl_verdict(res, "exact: %s of %s increments counted", cl_fmt_count(final, a),
                       cl_fmt_count(expected, b));
        else
            cl_verdict(res, "lost %s of %s increments (%.1f%%)", cl_fmt_count(lost, a),
                       cl_fmt_count(expected, b), pct);
    }
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    free(shards);
    free(packed);
    free(paid_out);
    free(vec.items);
    CL_PT(pthread_spin_destroy(&counter_spin));
}

static const struct cl_chapter race = {
    .name = "race",
    .summary = "race conditions: lost updates, and the ways to stop losing them",
    .look_for = "threads x iters increments should give exactly threads x iters (an "
                "operation is one increment, or one withdrawal); watch which variants lose "
                "updates, and what the exact ones cost per operation",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 5,
    .pin_threads = true, /* so the racing threads really overlap */
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .teardown = teardown,
};

int main(int argc, char **argv)
{
    return cl_main(&race, argc, argv);
}
