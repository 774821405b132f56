/* Retries and the circuit breaker, against a backend that is down for a while.
 *
 *   retry-sync       every client backs off base x 2^k: they failed together, so
 *                    they come back together, wave after wave
 *   retry-jitter     full jitter, a uniform draw in [0, base x 2^k]: the waves
 *                    spread out
 *   circuit-breaker  closed -> open after 3 failed calls -> half-open after the
 *                    recovery time, admitting exactly --trials calls -> closed
 *
 * A client error (404) is never retried: the same request fails the same way.
 * A request's target carries a tag the backend writes down with its arrival, so
 * the backend's record says which attempt, which trial, which client. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patterns.h"

/* [snippet backoff] */
static uint64_t no_jitter(struct cl_worker *w, uint64_t ceiling_ns)
{
    (void)w;
    return ceiling_ns; /* every client that failed at t sleeps until t + ceiling */
}

static uint64_t full_jitter(struct cl_worker *w, uint64_t ceiling_ns)
{
    return cl_rand(w) % (ceiling_ns + 1); /* uniform in [0, ceiling] */
}
/* [end backoff] */

const struct backoff backoff_sync = {no_jitter}, backoff_jitter = {full_jitter};

#define MAX_ATTEMPTS 8
#define ATTEMPT_MASK 0xfu /* a tag's low bits: the attempt, from 1 */

static struct {
    struct backend b;
    const struct backoff *how;
    uint64_t base_ns, t0;
    uint64_t planned[256 * MAX_ATTEMPTS]; /* by client and attempt: when it meant to retry */
    _Atomic uint64_t attempts, succeeded, gave_up, client_errors, retried_4xx;
    _Atomic uint64_t last_done_ns;
} rt;

static bool is_retry(uint32_t tag)
{
    return (tag & ATTEMPT_MASK) >= 2;
}

/* [snippet retry] */
/* One logical call: retried on a 5xx or a lost connection, never on a 4xx. */
static int call_with_retry(struct cl_worker *w, struct client *c, const char *path)
{
    for (unsigned attempt = 1;; attempt++) {
        char target[96];
        snprintf(target, sizeof target, "%s?tag=%u", path, (unsigned)w->id << 4 | attempt);
        int status = 0;
        atomic_fetch_add(&rt.attempts, 1);
        enum call_result r = client_get(c, target, &status);
        cl_tick(w);
        if (r == CALL_OK && status < 500)
            return status; /* success, or the client's own error: done either way */
        if (attempt == MAX_ATTEMPTS)
            return -1;
        uint64_t ceiling = rt.base_ns << (attempt - 1); /* base x 2^k */
        uint64_t sleep_ns = rt.how->sleep_ns(w, ceiling);
        rt.planned[(size_t)w->id * MAX_ATTEMPTS + attempt] = cl_now_ns() + sleep_ns;
        cl_status(w, "backs off");
        cl_sleep_ns(sleep_ns);
        cl_status(w, NULL);
    }
}
/* [end retry] */

/* This client is done: the run's completion time is the last one's. */
static void note_done(void)
{
    uint64_t done = cl_now_ns() - rt.t0, last = atomic_load(&rt.last_done_ns);
    while (done > last && !atomic_compare_exchange_weak(&rt.last_done_ns, &last, done))
        ;
}

/* Each client against the backend with the run's faults, from t0 on. */
static void run_clients(struct cl_run *run, void (*client)(struct cl_worker *w))
{
    struct faults f;
    faults_from_flags(run, &f);
    rt.how = run->variant->data;
    rt.base_ns = (uint64_t)cl_param(run, BASE_MS) * 1000000;
    rt.last_done_ns = 0;
    backend_start(run, &rt.b, &f);
    backend_go(&rt.b);
    rt.t0 = cl_now_ns();
    cl_run_workers(run, client);
    backend_stop(&rt.b);
}

static void retry_client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, rt.b.port);
    int status = call_with_retry(w, &c, "/item");
    atomic_fetch_add(status == 200 ? &rt.succeeded : &rt.gave_up, 1);
    note_done();
    if (call_with_retry(w, &c, "/missing") == 404) /* a client error: one call, no retry */
        atomic_fetch_add(&rt.client_errors, 1);
    client_close(&c);
}

void run_retry(struct cl_run *run)
{
    rt.attempts = rt.succeeded = rt.gave_up = rt.client_errors = 0;
    memset(rt.planned, 0, sizeof rt.planned);
    run_clients(run, retry_client);
}

void judge_retry(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = rt.b.sh;
    uint64_t n = (uint64_t)run->threads, read = atomic_load(&sh->counts.requests);
    uint64_t window_ns = rt.base_ns / 4, peak = max_in_window(sh, window_ns, is_retry);
    /* The backoff's own promise is about when each client meant to retry: a
     * loaded machine that wakes sleepers late and together bunches what the
     * server reads, whatever the backoff. */
    uint64_t *plan = cl_xcalloc(sizeof rt.planned / sizeof rt.planned[0], sizeof *plan);
    size_t nplan = 0;
    for (size_t i = 0; i < sizeof rt.planned / sizeof rt.planned[0]; i++)
        if (rt.planned[i] != 0)
            plan[nplan++] = rt.planned[i];
    uint64_t planned_peak = most_within(plan, nplan, window_ns);
    free(plan);
    uint64_t retries = 0, seen = arrivals_seen(sh);
    for (uint64_t i = 0; i < seen; i++)
        retries += is_retry(sh->arrivals[i].tag);
    uint64_t c4xx = atomic_load(&sh->client_errors);
    /* Exact: every call succeeded once the backend was back, every 404 was asked
     * once, and the backend read every attempt. Retries spread out: no window of
     * a quarter of the base holds a planned retry of every client. */
    res->exact = atomic_load(&rt.succeeded) == n && c4xx == n &&
                 atomic_load(&rt.client_errors) == n && read == atomic_load(&rt.attempts) &&
                 answered_all(sh) && planned_peak < n;
    res->ops = read;
    cl_metric_int(res, "server_calls", (long long)read);
    cl_metric_int(res, "retries", (long long)retries);
    cl_metric_int(res, "peak_retries", (long long)peak);
    cl_metric_int(res, "planned_peak", (long long)planned_peak);
    cl_metric_int(res, "client_errors", (long long)c4xx);
    cl_metric_real(res, "completion_ms", (double)atomic_load(&rt.last_done_ns) / 1e6);
    cl_verdict(res,
               "%llu clients, %llu of their calls succeeded after %.0f ms; the backend read "
               "%llu calls (%llu retries), at most %llu retries within %.0f ms; %llu 404s, "
               "none retried",
               (unsigned long long)n, (unsigned long long)atomic_load(&rt.succeeded),
               (double)atomic_load(&rt.last_done_ns) / 1e6, (unsigned long long)read,
               (unsigned long long)retries, (unsigned long long)peak, (double)window_ns / 1e6,
               (unsigned long long)c4xx);
}

/* ---- optimistic concurrency: the published simulator's model ---- */

#define OCC_THINK_NS CL_MS(1) /* between reading the version and writing */
#define OCC_CAP      4        /* the backoff's ceiling: base x 2^4 */

static struct {
    _Atomic uint64_t calls, written, gave_up;
} oc;

/* [snippet occ-client] */
/* Read the version, work a moment, write if it is unchanged; on a conflict back
 * off and start again from the read. */
static void occ_client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, rt.b.port);
    for (unsigned attempt = 1; attempt <= 1000; attempt++) {
        int status = 0;
        atomic_fetch_add(&oc.calls, 2);
        if (client_get(&c, "/occ", &status) != CALL_OK || status != 200)
            break;
        unsigned long long seen = strtoull(c.body, NULL, 10);
        cl_sleep_ns(OCC_THINK_NS);
        char target[64];
        snprintf(target, sizeof target, "/occ?v=%llu", seen);
        if (client_get(&c, target, &status) == CALL_OK && status == 200) {
            atomic_fetch_add(&oc.written, 1);
            break;
        }
        cl_tick(w);
        unsigned k = attempt - 1 < OCC_CAP ? attempt - 1 : OCC_CAP;
        cl_sleep_ns(rt.how->sleep_ns(w, rt.base_ns << k));
    }
    note_done();
    client_close(&c);
}
/* [end occ-client] */

void run_occ(struct cl_run *run)
{
    oc.calls = oc.written = oc.gave_up = 0;
    run_clients(run, occ_client);
}

void judge_occ(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = rt.b.sh;
    uint64_t n = (uint64_t)run->threads, read = atomic_load(&sh->counts.requests);
    uint64_t version = atomic_load(&sh->version), conflicts = atomic_load(&sh->conflicts);
    /* Exact: every client wrote once, so the record's version is the client
     * count, and the server read every call the clients made. */
    res->exact = version == n && atomic_load(&oc.written) == n && read == atomic_load(&oc.calls) &&
                 answered_all(sh);
    res->ops = read;
    cl_metric_int(res, "server_calls", (long long)read);
    cl_metric_int(res, "conflicts", (long long)conflicts);
    cl_metric_real(res, "calls_per_client", (double)read / (double)n);
    cl_metric_real(res, "completion_ms", (double)atomic_load(&rt.last_done_ns) / 1e6);
    cl_verdict(res,
               "%llu clients each wrote the record once (version %llu): the server read %llu "
               "calls (%.1f per client), %llu writes refused, the last done after %.0f ms",
               (unsigned long long)n, (unsigned long long)version, (unsigned long long)read,
               (double)read / (double)n, (unsigned long long)conflicts,
               (double)atomic_load(&rt.last_done_ns) / 1e6);
}

/* ---- the circuit breaker ---- */

enum state { CLOSED, OPEN, HALF_OPEN };
static const char *const state_names[] = {"closed", "open", "half-open"};

#define THRESHOLD   3 /* failed logical calls in a row that open it */
#define MAX_CHANGES 256

struct breaker {
    pthread_mutex_t mu;
    enum state state;
    int failures;         /* failed logical calls in a row, while closed */
    uint64_t opened_ns;   /* when it last opened */
    uint64_t recovery_ns; /* how long it stays open */
    int trials, admitted; /* half-open: calls it lets through, and let through so far */
    int trial_ok;         /* of those, successes */
    uint32_t episode;     /* half-open periods so far */
    size_t nchanges;
    struct change {
        uint64_t t_ns;
        enum state to;
        uint32_t episode;
    } changes[MAX_CHANGES];
};

static struct {
    struct breaker br;
    uint64_t end_ns;
    _Atomic uint64_t calls, rejected, failed, sent;
} cb;

static void change(struct breaker *b, enum state to)
{
    b->state = to;
    if (b->nchanges < MAX_CHANGES)
        b->changes[b->nchanges++] = (struct change){cl_now_ns(), to, b->episode};
}

/* [snippet breaker] */
/* May this call go? *trial: it is one of half-open's trial calls, of *episode. */
static bool breaker_allow(struct breaker *b, bool *trial, uint32_t *episode)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    if (b->state == OPEN && cl_now_ns() - b->opened_ns >= b->recovery_ns) {
        b->episode++;
        b->admitted = b->trial_ok = 0;
        change(b, HALF_OPEN);
    }
    bool go = b->state == CLOSED || (b->state == HALF_OPEN && b->admitted < b->trials);
    *trial = go && b->state == HALF_OPEN;
    if (*trial)
        b->admitted++; /* counted here, the call that found it half-open included */
    *episode = b->episode;
    CL_PT(pthread_mutex_unlock(&b->mu));
    return go;
}

/* The outcome of one logical call, however many attempts it made. */
static void breaker_record(struct breaker *b, bool trial, uint32_t episode, bool ok)
{
    CL_PT(pthread_mutex_lock(&b->mu));
    if (trial && b->state == HALF_OPEN && episode == b->episode) {
        if (!ok) {
            b->opened_ns = cl_now_ns();
            change(b, OPEN);
        } else if (++b->trial_ok == b->trials) {
            b->failures = 0;
            change(b, CLOSED);
        }
    } else if (!trial && b->state == CLOSED) {
        b->failures = ok ? 0 : b->failures + 1;
        if (b->failures >= THRESHOLD) {
            b->opened_ns = cl_now_ns();
            change(b, OPEN);
        }
    }
    CL_PT(pthread_mutex_unlock(&b->mu));
}
/* [end breaker] */

#define TRIAL_BIT (1u << 4)

static bool is_trial(uint32_t tag)
{
    return (tag & TRIAL_BIT) != 0;
}

static void breaker_client(struct cl_worker *w)
{
    struct client c;
    client_init(&c, rt.b.port);
    while (cl_now_ns() < cb.end_ns) {
        bool trial;
        uint32_t episode;
        atomic_fetch_add(&cb.calls, 1);
        if (!breaker_allow(&cb.br, &trial, &episode)) {
            atomic_fetch_add(&cb.rejected, 1); /* failed fast, the backend spared */
        } else {
            bool ok = false;
            /* a closed breaker's call may retry once; a trial call may not */
            for (unsigned attempt = 1; attempt <= (trial ? 1u : 2u) && !ok; attempt++) {
                char target[96];
                snprintf(target, sizeof target, "/item?tag=%u",
                         episode << 8 | (trial ? TRIAL_BIT : 0) | attempt);
                int status = 0;
                atomic_fetch_add(&cb.sent, 1);
                ok = client_get(&c, target, &status) == CALL_OK && status == 200;
            }
            if (!ok)
                atomic_fetch_add(&cb.failed, 1);
            breaker_record(&cb.br, trial, episode, ok);
        }
        cl_tick(w);
        cl_sleep_ns(CL_MS(10));
    }
    client_close(&c);
}

void run_breaker(struct cl_run *run)
{
    struct faults f;
    faults_from_flags(run, &f);
    cb.br = (struct breaker){.state = CLOSED,
                             .recovery_ns = (uint64_t)cl_param(run, RECOVERY_MS) * 1000000,
                             .trials = (int)cl_param(run, TRIALS)};
    CL_PT(pthread_mutex_init(&cb.br.mu, NULL));
    cb.calls = cb.rejected = cb.failed = cb.sent = 0;
    backend_start(run, &rt.b, &f);
    backend_go(&rt.b);
    rt.t0 = cl_now_ns();
    cb.br.changes[cb.br.nchanges++] = (struct change){rt.t0, CLOSED, 0};
    cb.end_ns = rt.t0 + (uint64_t)cl_param(run, DURATION_MS) * 1000000;
    cl_run_workers(run, breaker_client);
    backend_stop(&rt.b);
    CL_PT(pthread_mutex_destroy(&cb.br.mu));
}

void judge_breaker(const struct cl_run *run, struct cl_result *res)
{
    const struct shared *sh = rt.b.sh;
    const struct breaker *b = &cb.br;
    uint32_t trials_in[256] = {0};
    uint64_t seen = arrivals_seen(sh), read = atomic_load(&sh->counts.requests);
    for (uint64_t i = 0; i < seen; i++)
        if (is_trial(sh->arrivals[i].tag))
            trials_in[(sh->arrivals[i].tag >> 8) & 0xff]++;
    /* Exact, by the backend's record: no half-open period let more than --trials
     * through, each that closed let exactly --trials through, the breaker went
     * closed -> open -> half-open -> closed, and ended closed. */
    bool trials_right = true, cycled = false;
    char trace[512];
    size_t len = 0;
    for (size_t i = 0; i < b->nchanges; i++) {
        const struct change *ch = &b->changes[i];
        if (ch->episode < 256 && trials_in[ch->episode] > (uint32_t)b->trials)
            trials_right = false;
        if (ch->to == CLOSED && i > 0) {
            cycled = true;
            if (trials_in[ch->episode & 0xff] != (uint32_t)b->trials)
                trials_right = false;
        }
        if (len < sizeof trace - 64)
            len += (size_t)snprintf(trace + len, sizeof trace - len, "%s%s %.0f ms", i ? ", " : "",
                                    state_names[ch->to], (double)(ch->t_ns - rt.t0) / 1e6);
    }
    res->exact = trials_right && cycled && b->state == CLOSED && read == atomic_load(&cb.sent) &&
                 answered_all(sh);
    res->ops = atomic_load(&cb.calls);
    cl_metric_int(res, "calls", (long long)atomic_load(&cb.calls));
    cl_metric_int(res, "rejected", (long long)atomic_load(&cb.rejected));
    cl_metric_int(res, "failed", (long long)atomic_load(&cb.failed));
    cl_metric_int(res, "server_calls", (long long)read);
    cl_metric_int(res, "half_open_periods", (long long)b->episode);
    cl_metric_int(res, "state_changes", (long long)b->nchanges);
    cl_verdict(res, "%s; %llu calls: %llu failed fast while open, %llu failed at the backend",
               trace, (unsigned long long)atomic_load(&cb.calls),
               (unsigned long long)atomic_load(&cb.rejected),
               (unsigned long long)atomic_load(&cb.failed));
    (void)run;
}

/* With --trace FILE: FILE.samples.tsv, the breaker's state every 10 ms and at
 * each change (0 closed, 1 half-open, 2 open: how much it refuses), and 1 in
 * `down` while the backend answered 503 to everything. */
static void breaker_sample(FILE *f, uint64_t t, enum state s)
{
    static const int level[] = {[CLOSED] = 0, [HALF_OPEN] = 1, [OPEN] = 2};
    uint64_t since = rt.t0 + t - atomic_load(&rt.b.sh->t0_ns); /* the backend's clock */
    fprintf(f, "%.4f\t%d\t%d\n", (double)t / 1e9, level[s], faults_down(&rt.b.sh->f, since));
}

void breaker_write_samples(const char *trace)
{
    FILE *f = cl_samples_open(trace);
    if (f == NULL)
        return;
    const struct breaker *b = &cb.br;
    uint64_t slot = CL_MS(10), end = cb.end_ns - rt.t0 + slot;
    size_t next = 0;
    enum state now = CLOSED;
    fprintf(f, "t_s\tstate\tdown\n");
    for (uint64_t t = 0; t <= end; t += slot) {
        for (; next < b->nchanges && b->changes[next].t_ns - rt.t0 <= t; next++) {
            now = b->changes[next].to;
            breaker_sample(f, b->changes[next].t_ns - rt.t0, now);
        }
        breaker_sample(f, t, now);
    }
    fclose(f);
}

void retry_free(void)
{
    backend_free(&rt.b);
}
