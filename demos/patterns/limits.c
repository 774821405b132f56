/* Rate limits, judged by the backend's own clock: how many requests it read in
 * the run, and the most it read in any window.
 *
 *   token-bucket        tokens at `rate` up to `burst`; a caller short of a token
 *                       reserves the next one and sleeps outside the lock
 *   bucket-early-stamp  the guides' bucket: it stamps the time before it sleeps,
 *                       so the next caller is credited the sleep again
 *   fixed-window        rate x window requests per window, counted from zero at
 *                       each edge: twice that can pass across an edge
 *   semaphore-not-rate  at most --limit in flight: the rate follows the latency
 *   min-interval        the guides' scraper limiter, calls 1/rate apart, with
 *                       every retry of a 500 going through it too
 *   retry-bypass        the same, its retries skipping the limiter: the backend
 *                       reads more than the rate */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "patterns.h"

struct limiter {
    pthread_mutex_t mu;
    double rate, burst;    /* tokens per ns, and the most held */
    double tokens;         /* the bucket's; below 0: reserved ahead */
    uint64_t last_ns;      /* when tokens was brought up to date */
    uint64_t window_ns;    /* the fixed window's */
    uint64_t epoch_ns;     /* where its windows are counted from */
    uint64_t window, used; /* the current window, and what it has let through */
    uint64_t per_window;
    uint64_t interval_ns, next_ns; /* min-interval: the gap, and the next free time */
};

struct limiter_ops {
    uint64_t (*acquire)(struct limiter *l); /* when the caller was let through */
    unsigned limited_attempts;              /* attempts of a call that wait for the limiter */
    bool no_burst;                          /* min-interval: one call at a time, no burst */
};

#define MAX_ATTEMPTS 4 /* a call's attempts: the first and 3 retries of a 500 */

/* [snippet token-bucket] */
static uint64_t bucket_acquire(struct limiter *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    uint64_t now = cl_now_ns();
    l->tokens += (double)(now - l->last_ns) * l->rate;
    if (l->tokens > l->burst)
        l->tokens = l->burst;
    l->last_ns = now;
    l->tokens -= 1; /* take one, or reserve the next: below 0 is a queue */
    double wait_ns = l->tokens < 0 ? -l->tokens / l->rate : 0;
    CL_PT(pthread_mutex_unlock(&l->mu));
    cl_sleep_ns((uint64_t)wait_ns); /* outside the lock: later callers reserve behind us */
    return now + (uint64_t)wait_ns; /* when the token was due */
}
/* [end token-bucket] */

/* [snippet early-stamp] */
/* The guides' bucket: last_ns is stamped before the sleep, and the sleep then
 * ends with tokens = 0. The next caller is credited the time slept as if no
 * token had been spent in it: two calls pass per 1/rate. */
static uint64_t early_stamp_acquire(struct limiter *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    uint64_t now = cl_now_ns();
    l->tokens += (double)(now - l->last_ns) * l->rate;
    if (l->tokens > l->burst)
        l->tokens = l->burst;
    l->last_ns = now; /* stamped here, before the sleep */
    if (l->tokens < 1) {
        cl_sleep_ns((uint64_t)((1 - l->tokens) / l->rate)); /* holding the lock, as theirs */
        l->tokens = 0;
    } else {
        l->tokens -= 1;
    }
    CL_PT(pthread_mutex_unlock(&l->mu));
    return cl_now_ns();
}
/* [end early-stamp] */

/* [snippet fixed-window] */
static uint64_t window_acquire(struct limiter *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    uint64_t now;
    for (;;) {
        now = cl_now_ns();
        uint64_t w = (now - l->epoch_ns) / l->window_ns;
        if (w != l->window) { /* a new window: the count starts again from zero */
            l->window = w;
            l->used = 0;
        }
        if (l->used < l->per_window)
            break;
        uint64_t next = l->epoch_ns + (w + 1) * l->window_ns;
        CL_PT(pthread_mutex_unlock(&l->mu));
        cl_sleep_ns(next - now);
        CL_PT(pthread_mutex_lock(&l->mu));
    }
    l->used++;
    CL_PT(pthread_mutex_unlock(&l->mu));
    return now;
}
/* [end fixed-window] */

/* [snippet min-interval] */
static uint64_t interval_acquire(struct limiter *l)
{
    CL_PT(pthread_mutex_lock(&l->mu));
    uint64_t now = cl_now_ns(), at = l->next_ns > now ? l->next_ns : now;
    l->next_ns = at + l->interval_ns; /* the next caller goes one interval later */
    CL_PT(pthread_mutex_unlock(&l->mu));
    if (at > now)
        cl_sleep_ns(at - now);
    return at;
}
/* [end min-interval] */

const struct limiter_ops token_bucket_ops = {bucket_acquire, MAX_ATTEMPTS, false};
const struct limiter_ops early_stamp_ops = {early_stamp_acquire, MAX_ATTEMPTS, false};
const struct limiter_ops fixed_window_ops = {window_acquire, MAX_ATTEMPTS, false};
const struct limiter_ops min_interval_ops = {interval_acquire, MAX_ATTEMPTS, true};
const struct limiter_ops retry_bypass_ops = {interval_acquire, 1, true}; /* the first only */

static struct {
    struct backend b;
    struct limiter l;
    const struct limiter_ops *ops;
    uint64_t end_ns, duration_ns, base_ns;
    _Atomic uint64_t sent, ok, other, retries, bypassed;
    uint64_t send_ns[ARRIVALS_MAX]; /* by tag: when the limiter let it through */
    pthread_mutex_t sem_mu;         /* semaphore-not-rate: a counting semaphore */
    pthread_cond_t sem_cv;
    int sem_free;
} lim;

static void count_reply(enum call_result r, int status)
{
    if (r == CALL_OK && status == 200)
        atomic_fetch_add(&lim.ok, 1);
    else
        atomic_fetch_add(&lim.other, 1);
}

/* [snippet limited-call] */
/* One call: each attempt the limiter covers waits for it; a 500 is retried
 * after base x 2^k. */
static void limited_call(struct cl_worker *w, struct client *c)
{
    for (unsigned attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        uint64_t let = cl_now_ns();
        if (attempt <= lim.ops->limited_attempts) {
            cl_status(w, "waits for the limiter");
            let = lim.ops->acquire(&lim.l);
            cl_status(w, NULL);
        } else {
            atomic_fetch_add(&lim.bypassed, 1); /* the guides' retry: straight out */
        }
        if (cl_now_ns() >= lim.end_ns)
            return; /* a token granted after the end is not spent */
        int status = 0;
        uint64_t tag = atomic_fetch_add(&lim.sent, 1) + 1;
        char target[64];
        snprintf(target, sizeof target, "/item?tag=%llu", (unsigned long long)tag);
        if (tag < ARRIVALS_MAX)
            lim.send_ns[tag] = let;
        enum call_result r = client_get(c, target, &status);
        if (r == CALL_OK && status == 500 && attempt < MAX_ATTEMPTS) {
            atomic_fetch_add(&lim.retries, 1);
            cl_sleep_ns(lim.base_ns << (attempt - 1));
            continue;
        }
        count_reply(r, status);
        return;
    }
}
/* [end limited-call] */

static void limited_client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, lim.b.port);
    while (cl_now_ns() < lim.end_ns) {
        limited_call(w, &c);
        cl_tick(w);
    }
    client_close(&c);
}

static void start(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    if (run->variant->kind == SEMAPHORE_RATE) { /* the latency falls tenfold halfway */
        f.latency2_ns = f.latency_ns / 10;
        f.switch_ns = (uint64_t)cl_param(run, DURATION_MS) * 1000000 / 2;
    }
    lim.sent = lim.ok = lim.other = lim.retries = lim.bypassed = 0;
    lim.base_ns = (uint64_t)cl_param(run, BASE_MS) * 1000000;
    lim.duration_ns = (uint64_t)cl_param(run, DURATION_MS) * 1000000;
    backend_start(run, &lim.b, &f);
}

void run_limiter(struct cl_run *run)
{
    start(run);
    lim.ops = run->variant->data;
    double rate = (double)cl_param(run, RATE);
    lim.l = (struct limiter){.rate = rate / 1e9, .burst = (double)cl_param(run, BURST)};
    CL_PT(pthread_mutex_init(&lim.l.mu, NULL));
    lim.l.window_ns = (uint64_t)cl_param(run, WINDOW_MS) * 1000000;
    lim.l.interval_ns = (uint64_t)(1e9 / rate);
    lim.l.next_ns = 0;
    lim.l.per_window = (uint64_t)(rate * (double)lim.l.window_ns / 1e9 + 0.5);
    uint64_t now = cl_now_ns();
    /* Both have been up a while with no traffic: the bucket is full, and the
     * window is three quarters through, its whole allowance unspent. */
    lim.l.tokens = lim.l.burst;
    lim.l.last_ns = now;
    lim.l.epoch_ns = now - lim.l.window_ns * 3 / 4;
    lim.l.window = 0;
    lim.end_ns = now + lim.duration_ns;
    backend_go(&lim.b);
    cl_run_workers(run, limited_client);
    backend_stop(&lim.b);
    CL_PT(pthread_mutex_destroy(&lim.l.mu));
}

/* [snippet semaphore] */
static void semaphore_client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, lim.b.port);
    while (cl_now_ns() < lim.end_ns) {
        CL_PT(pthread_mutex_lock(&lim.sem_mu));
        while (lim.sem_free == 0)
            CL_PT(pthread_cond_wait(&lim.sem_cv, &lim.sem_mu));
        lim.sem_free--; /* a slot: at most --limit requests in flight, at any speed */
        CL_PT(pthread_mutex_unlock(&lim.sem_mu));
        int status = 0;
        atomic_fetch_add(&lim.sent, 1);
        enum call_result r = client_get(&c, "/item?tag=1", &status);
        count_reply(r, status);
        CL_PT(pthread_mutex_lock(&lim.sem_mu));
        lim.sem_free++;
        CL_PT(pthread_cond_signal(&lim.sem_cv));
        CL_PT(pthread_mutex_unlock(&lim.sem_mu));
        cl_tick(w);
    }
    client_close(&c);
}
/* [end semaphore] */

void run_semaphore_rate(struct cl_run *run)
{
    start(run);
    CL_PT(pthread_mutex_init(&lim.sem_mu, NULL));
    CL_PT(pthread_cond_init(&lim.sem_cv, NULL));
    lim.sem_free = (int)cl_param(run, LIMIT);
    lim.end_ns = cl_now_ns() + lim.duration_ns;
    backend_go(&lim.b);
    cl_run_workers(run, semaphore_client);
    backend_stop(&lim.b);
    CL_PT(pthread_cond_destroy(&lim.sem_cv));
    CL_PT(pthread_mutex_destroy(&lim.sem_mu));
}

/* The backend's verdict. The bucket's promise is exact at the clients: at most
 * burst + rate x T tokens in any T. The backend reads each request a little
 * after its token was due (a thread that oversleeps, then the network), so a
 * window at the backend may hold the tokens of a window longer by the largest
 * of those delays, measured per request: that, and 2 for rounding, is the slack
 * in a window; the whole run has none. */
static uint64_t max_delay_ns(const struct shared *sh)
{
    uint64_t n = arrivals_seen(sh), worst = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t tag = sh->arrivals[i].tag;
        if (tag > 0 && tag < ARRIVALS_MAX && sh->arrivals[i].t_ns > lim.send_ns[tag] &&
            sh->arrivals[i].t_ns - lim.send_ns[tag] > worst)
            worst = sh->arrivals[i].t_ns - lim.send_ns[tag];
    }
    return worst;
}

void judge_limiter(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = lim.b.sh;
    double rate = (double)cl_param(run, RATE);
    double burst = lim.ops->no_burst ? 1 : (double)cl_param(run, BURST);
    double d = (double)lim.duration_ns / 1e9, w = (double)lim.l.window_ns / 1e9;
    uint64_t read = atomic_load(&sh->counts.requests), sent = atomic_load(&lim.sent);
    uint64_t most = max_in_window(sh, lim.l.window_ns, NULL);
    double delay = (double)max_delay_ns(sh) / 1e9;
    double allowed_run = burst + rate * d, allowed_window = burst + rate * (w + delay);
    double achieved = ((double)read - burst) / d; /* past the first burst */
    /* every call answered 200 in the end (a 500 may remain after the last retry) */
    bool answered = atomic_load(&lim.other) <= atomic_load(&sh->errors);
    res->exact = read == sent && answered && lim.b.exit_status == 0 &&
                 (double)read <= allowed_run + 1 && (double)most <= allowed_window + 2;
    res->ops = read;
    cl_metric_int(res, "server_requests", (long long)read);
    cl_metric_real(res, "achieved_rate", achieved);
    cl_metric_real(res, "configured_rate", rate);
    cl_metric_int(res, "max_in_window", (long long)most);
    cl_metric_real(res, "allowed_in_window", allowed_window);
    cl_metric_real(res, "max_delay_ms", delay * 1e3);
    cl_metric_int(res, "retries", (long long)atomic_load(&lim.retries));
    cl_metric_int(res, "bypassed", (long long)atomic_load(&lim.bypassed));
    cl_verdict(
        res,
        "the backend read %llu requests in %.2f s: %.1f/s past the first burst, for a "
        "limit of %.0f/s; at most %llu in any %.2f s (the limit allows %.0f, delays included)",
        (unsigned long long)read, d, achieved, rate, (unsigned long long)most, w, allowed_window);
}

void judge_semaphore_rate(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = lim.b.sh;
    uint64_t half = lim.duration_ns / 2, t0 = atomic_load(&sh->t0_ns);
    uint64_t n = arrivals_seen(sh), first = 0, second = 0;
    for (uint64_t i = 0; i < n; i++)
        (sh->arrivals[i].t_ns - t0 < half ? &first : &second)[0]++;
    double h = (double)half / 1e9, r1 = (double)first / h, r2 = (double)second / h;
    uint64_t read = atomic_load(&sh->counts.requests), sent = atomic_load(&lim.sent);
    /* A rate limit would hold the rate when the latency falls; this one does not. */
    res->exact = read == sent && atomic_load(&lim.other) == 0 && r2 <= r1 * 1.1;
    res->ops = read;
    cl_metric_real(res, "rate_slow", r1);
    cl_metric_real(res, "rate_fast", r2);
    cl_metric_real(res, "rate_ratio", r1 > 0 ? r2 / r1 : 0);
    cl_verdict(res,
               "%lld in flight at most: %.0f requests/s at %lld ms of latency, %.0f/s at %.1f "
               "ms: the \"limit\" moved %.1fx with the backend's speed",
               cl_param(run, LIMIT), r1, cl_param(run, LATENCY_MS), r2,
               (double)cl_param(run, LATENCY_MS) / 10, r1 > 0 ? r2 / r1 : 0);
}

void limits_free(void)
{
    backend_free(&lim.b);
}
