/* patterns: the patterns of a service (rate limits, retries, a circuit
 * breaker, a graceful stop), each run against a real local HTTP server whose
 * faults the run controls: lib's server in a child process, with latency,
 * errors, dropped connections, a down period and a capacity injected through
 * its request-handler hook (backend.c). The server's own counts are the
 * referee: what it read, when, and what it answered.
 *
 * This file is the chapter's declaration; limits.c, retry.c and shutdown.c hold
 * the variants. */
#include <stdio.h>
#include <string.h>

#include "patterns.h"

static const struct cl_variant variants[] = {
    {"token-bucket", CL_CORRECT, "--rate per second, --burst at once: the backend reads no more",
     .kind = LIMITER, .run = run_limiter, .threads = 4, .data = &token_bucket_ops},
    {"bucket-early-stamp", CL_WRONG,
     "the guides' bucket stamps the time before it sleeps: twice the rate gets through",
     .kind = LIMITER, .run = run_limiter, .threads = 4, .data = &early_stamp_ops},
    {"fixed-window", CL_WRONG,
     "a count reset every --window-ms: twice the limit passes across a window's edge",
     .kind = LIMITER, .run = run_limiter, .threads = 4, .data = &fixed_window_ops},
    {"min-interval", CL_CORRECT,
     "calls 1/--rate apart, 30% of them answered 500 and retried, each retry limited too",
     .kind = LIMITED_RETRY, .run = run_limiter, .threads = 4, .data = &min_interval_ops},
    {"retry-bypass", CL_WRONG,
     "the guides' scraper: retries skip the limiter, and the backend reads past the rate",
     .kind = LIMITED_RETRY, .run = run_limiter, .threads = 4, .data = &retry_bypass_ops},
    {"semaphore-not-rate", CL_WRONG,
     "--limit in flight called a rate limit: its rate grows tenfold when latency falls",
     .kind = SEMAPHORE_RATE, .run = run_semaphore_rate, .threads = 8},
    {"conn-pool", CL_CORRECT,
     "a pool of 2 to --limit connections: grows under load, checks, closes the idle", .kind = POOL,
     .run = run_pool, .threads = 8},
    {"conn-pool-grow", CL_HANGS,
     "the guides' pool grows inside acquire, whose lock grow() takes again: it hangs",
     .kind = POOL_GROW, .run = run_pool, .threads = 8, .timeout_s = 1},
    {"conn-pool-size", CL_CORRECT,
     "p50 and p99 latency at a fixed load, pools of 1 to 16, a backend of --capacity 4",
     .kind = POOL_SIZE, .run = run_pool_size, .threads = 16},
    {"retry-sync", CL_WRONG,
     "clients that failed together back off base x 2^k together: retries come in waves",
     .kind = RETRY, .run = run_retry, .threads = 16, .data = &backoff_sync},
    {"retry-jitter", CL_CORRECT, "full jitter spreads the waves; a 404 is never retried",
     .kind = RETRY, .run = run_retry, .threads = 16, .data = &backoff_jitter},
    {"occ-sync", CL_SLOW,
     "clients write one versioned record; a conflict backs off base x 2^k: they collide again",
     .kind = OCC, .run = run_occ, .threads = 20, .data = &backoff_sync},
    {"occ-jitter", CL_CORRECT, "the same with full jitter: fewer collisions, fewer calls",
     .kind = OCC, .run = run_occ, .threads = 20, .data = &backoff_jitter},
    {"circuit-breaker", CL_CORRECT,
     "closed, open, half-open (exactly --trials calls), closed, across a down period",
     .kind = BREAKER, .run = run_breaker, .threads = 4},
    {"graceful", CL_CORRECT, "SIGTERM at 40%: stop accepting, answer what is in flight, then exit",
     .kind = SHUTDOWN, .run = run_shutdown, .threads = 4, .data = &stop_graceful},
    {"event-first", CL_WRONG, "the guides' order: the stop flag first, the requests in flight cut",
     .kind = SHUTDOWN, .run = run_shutdown, .threads = 4, .data = &stop_event_first},
    {"pipeline-stop", CL_CORRECT,
     "a producer blocked in put, stopped by closing the queue: no item lost or doubled",
     .kind = PIPELINE, .run = run_pipeline, .threads = 4},
};

static const char *const dist_names[] = {"fixed", "uniform", NULL};
static const char *const load_names[] = {"clients", "wrk", NULL};

static const struct cl_param params[] = {
    [RATE] = {"rate", "limiters: requests per second", .def = 40, .min = 1, .max = 10000},
    [BURST] = {"burst", "token buckets: tokens held at most", .def = 4, .min = 1, .max = 10000},
    [WINDOW_MS] = {"window-ms", "fixed-window: the window; every limiter is judged over one",
                   .def = 500, .min = 10, .max = 10000},
    [DURATION_MS] =
        {"duration-ms", "how long the clients run", .min = 100, .max = 60000,
         .unset =
             "per variant: 1,500 limiters and the breaker, 1,800 conn-pool-size, 1,000 others"},
    [LATENCY_MS] = {"latency-ms", "the backend's latency per request", .min = 0, .max = 10000,
                    .unset = "per variant: 0; 50 semaphore-not-rate, pools; 10 conn-pool-size, "
                             "pipeline-stop; 150 SIGTERM"},
    [LATENCY_DIST] = {"latency-dist", "the latency: fixed, or uniform in [0, 2 x latency]",
                      .choices = dist_names},
    [ERROR_RATE] = {"error-rate", "the share of requests answered 500", .max = 1000, .decimals = 3},
    [DROP_RATE] = {"drop-rate", "the share of connections dropped without a reply", .max = 1000,
                   .decimals = 3},
    [DOWN_AT] = {"down-at-ms", "the down period's start (503 for everything)", .max = 60000,
                 .unset = "per variant: 0 retries, 300 circuit-breaker, never the others"},
    [DOWN_FOR] = {"down-for-ms", "the down period's length", .max = 60000,
                  .unset = "per variant: 300 retries, 500 circuit-breaker, 0 the others"},
    [CAPACITY] = {"capacity", "requests in service at once; more queue in FIFO order (0: any)",
                  .max = 1024, .unset = "per variant: 4 conn-pool-size, 0 (any) the others"},
    [WORK_US] = {"work-us", "CPU per request, on the backend's one core", .max = 1000000},
    [BASE_MS] = {"base-ms", "retries: the first backoff (then x 2 each attempt)", .min = 1,
                 .max = 1000, .unset = "per variant: 5 occ-sync, occ-jitter; 40 the others"},
    [TRIALS] = {"trials", "circuit-breaker: the calls half-open lets through", .def = 2, .min = 1,
                .max = 100},
    [RECOVERY_MS] = {"recovery-ms", "circuit-breaker: how long it stays open", .def = 200, .min = 1,
                     .max = 60000},
    [LIMIT] = {"limit", "requests in flight (semaphore-not-rate), connections (conn-pool) at most",
               .min = 1, .max = 256, .unset = "per variant: 4 semaphore-not-rate, 5 conn-pool"},
    [LOAD] = {"load",
              "graceful, event-first: --threads clients of this program's, or wrk's "
              "--threads connections (wrk installed at build time)",
              .choices = load_names},
};

static void fill(struct cl_run *run, enum param p, long long value)
{
    if (!cl_param_given(run, p))
        run->param[p] = value;
}

static int prepare(struct cl_run *run, char *err, size_t len)
{
    enum kind kind = run->variant->kind;
    if (run->opts->iters != 0) {
        snprintf(err, len, "patterns: --iters: not used (--duration-ms sets how long)");
        return 1;
    }
    fill(run, DURATION_MS,
         kind == POOL_SIZE                                             ? 1800
         : kind == LIMITER || kind == LIMITED_RETRY || kind == BREAKER ? 1500
                                                                       : 1000);
    fill(run, LATENCY_MS,
         kind == SEMAPHORE_RATE || kind == POOL || kind == POOL_GROW ? 50
         : kind == SHUTDOWN                                          ? 150
         : kind == POOL_SIZE || kind == PIPELINE                     ? 10
                                                                     : 0);
    fill(run, ERROR_RATE, kind == LIMITED_RETRY ? 300 : 0);
    fill(run, LIMIT, kind == SEMAPHORE_RATE ? 4 : 5);
    fill(run, CAPACITY, kind == POOL_SIZE ? 4 : 0);
    if (kind == POOL_GROW && run->threads <= 2) {
        snprintf(err, len,
                 "patterns: --threads: more than 2 for conn-pool-grow, whose pool "
                 "starts with 2 connections");
        return 1;
    }
    if ((kind == POOL || kind == POOL_GROW) && cl_param(run, LIMIT) < 2) {
        snprintf(err, len, "patterns: --limit: at least 2 for a pool that starts with 2");
        return 1;
    }
    fill(run, BASE_MS, kind == OCC ? 5 : 40);
    fill(run, DOWN_AT, kind == BREAKER ? 300 : 0);
    fill(run, DOWN_FOR, kind == RETRY ? 300 : kind == BREAKER ? 500 : 0);
    if (kind == SEMAPHORE_RATE && cl_param(run, LATENCY_MS) < 10) {
        snprintf(err, len, "patterns: --latency-ms: at least 10 for semaphore-not-rate");
        return 1;
    }
    if (kind == RETRY && run->threads > 255) {
        snprintf(err, len, "patterns: --threads: at most 255 clients for the retries");
        return 1;
    }
    if (kind == PIPELINE && run->threads < 3) {
        snprintf(err, len,
                 "patterns: --threads: at least 3 for pipeline-stop (an operator, "
                 "the producer, consumers)");
        return 1;
    }
    if (cl_param_given(run, LOAD) && kind != SHUTDOWN) {
        snprintf(err, len, "patterns: --load: only for graceful and event-first");
        return 1;
    }
    if (kind == SHUTDOWN)
        shutdown_prepare(run);
    return 0;
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    enum kind kind = run->variant->kind;
    const char *trace = run->opts->trace; /* the samples over time, for the charts */
    if (trace != NULL && kind == BREAKER)
        breaker_write_samples(trace);
    else if (trace != NULL && kind == SHUTDOWN)
        shutdown_write_samples(trace);
    else if (trace != NULL) /* the backend's arrivals */
        backend_write_samples(trace, kind == RETRY ? CL_MS(10) : CL_MS(100), kind == RETRY);
    switch ((enum kind)run->variant->kind) {
    case LIMITER:
    case LIMITED_RETRY:
        judge_limiter(run, res);
        break;
    case SEMAPHORE_RATE:
        judge_semaphore_rate(run, res);
        break;
    case RETRY:
        judge_retry(run, res);
        break;
    case BREAKER:
        judge_breaker(run, res);
        break;
    case SHUTDOWN:
        judge_shutdown(run, res);
        break;
    case POOL:
    case POOL_GROW:
        judge_pool(run, res);
        break;
    case POOL_SIZE:
        judge_pool_size(run, res);
        break;
    case PIPELINE:
        judge_pipeline(run, res);
        break;
    case OCC:
        judge_occ(run, res);
        break;
    }
}

static void teardown(const struct cl_run *run)
{
    switch ((enum kind)run->variant->kind) {
    case LIMITER:
    case LIMITED_RETRY:
    case SEMAPHORE_RATE:
        limits_free();
        break;
    case RETRY:
    case OCC:
    case BREAKER:
        retry_free();
        break;
    case SHUTDOWN:
        shutdown_free();
        break;
    case POOL:
    case POOL_GROW:
    case POOL_SIZE:
        pool_free();
        break;
    case PIPELINE:
        pipeline_free();
        break;
    }
}

static void report(int fd, const struct cl_run *run)
{
    backend_report(fd);
    pool_report(fd, run->threads);
}

static const struct cl_chapter chapter = {
    .name = "patterns",
    .summary = "patterns: rate limits, retries, a circuit breaker and a graceful stop, "
               "judged by a real server's counts",
    .look_for = "the backend's counts are the referee; an operation is one call a client makes",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = sizeof params / sizeof params[0],
    .timeout_s = 5,
    .max_threads = 256,
    .prepare = prepare,
    .check = check,
    .teardown = teardown,
    .report = report,
};

int main(int argc, char **argv)
{
    /* The backend: this program, spawned again (backend.c). */
    if (argc == 2 && strcmp(argv[0], "patterns-backend") == 0)
        return backend_main(argv[1]);
    return cl_main(&chapter, argc, argv);
}
