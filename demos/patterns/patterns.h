/* patterns: the shared pieces of the chapter. backend.c is the server with its
 * faults (a child process, its counts in shared memory) and the client that
 * talks to it; limits.c, retry.c and shutdown.c hold the variants. */
#ifndef PATTERNS_H
#define PATTERNS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conclab.h"

enum kind {
    LIMITER,
    LIMITED_RETRY,
    SEMAPHORE_RATE,
    POOL,
    POOL_GROW,
    POOL_SIZE,
    RETRY,
    BREAKER,
    SHUTDOWN,
    PIPELINE,
    OCC,
};

enum param {
    RATE,
    BURST,
    WINDOW_MS,
    DURATION_MS,
    LATENCY_MS,
    LATENCY_DIST,
    ERROR_RATE,
    DROP_RATE,
    DOWN_AT,
    DOWN_FOR,
    CAPACITY,
    WORK_US,
    BASE_MS,
    TRIALS,
    RECOVERY_MS,
    LIMIT,
    LOAD,
};

enum load { LOAD_CLIENTS, LOAD_WRK }; /* --load: who makes a shutdown's load */

/* ---- the backend: a child process whose counts are the referee ---- */

#define ARRIVALS_MAX 65536

/* One request as the backend read it: when, and the tag its client put in the
 * target ("/item?tag=N"). */
struct arrival {
    uint64_t t_ns; /* read_ns, CLOCK_MONOTONIC (one clock for both processes) */
    uint32_t tag;
    uint16_t status; /* what the backend answered */
};

/* The faults, written by the parent before the backend starts. */
struct faults {
    uint64_t latency_ns;
    bool latency_uniform; /* uniform in [0, 2 latency] rather than fixed */
    uint64_t latency2_ns; /* after switch_ns (0: no switch) */
    uint64_t switch_ns;   /* since t0 */
    uint32_t error_milli; /* 500 replies, per thousand */
    uint32_t drop_milli;  /* connections dropped without a reply, per thousand */
    uint64_t down_at_ns;  /* since t0: 503 for everything during the down period */
    uint64_t down_for_ns;
    uint32_t capacity; /* requests in service at once (0: no limit); more queue FIFO */
    uint64_t work_ns;  /* CPU per request, on the backend's one thread */
    uint64_t drain_ns; /* a graceful stop's deadline (0: drop everything at once) */
    uint64_t seed;
};

struct shared {
    struct faults f;
    _Atomic uint64_t t0_ns; /* the clients' start: the down period counts from here */
    struct cl_server_counts counts;
    _Atomic uint64_t errors, down_errors, client_errors, drops, queued;
    _Atomic uint64_t version, conflicts; /* /occ: the record's version, writes refused */
    _Atomic uint64_t narrivals;          /* may pass ARRIVALS_MAX: the rest are counted only */
    struct arrival arrivals[ARRIVALS_MAX];
};

struct backend {
    pid_t pid;
    uint16_t port;
    struct shared *sh;
    int exit_status;  /* after backend_stop */
    uint64_t stop_ns; /* SIGTERM to reaped */
};

/* The faults from the run's flags. */
void faults_from_flags(const struct cl_run *run, struct faults *f);
/* Is the backend in its down period, since_ns after t0? */
bool faults_down(const struct faults *f, uint64_t since_ns);

/* Start the backend (this program, spawned in its backend mode) and wait for
 * its port; t0 is set when the clients start (backend_go). */
void backend_start(struct cl_run *run, struct backend *b, const struct faults *f);
void backend_go(struct backend *b);
/* SIGTERM (the graceful stop, through the backend's signalfd), then reap it. */
void backend_stop(struct backend *b);
void backend_free(struct backend *b);
/* The backend's mode: main() calls it when the environment names it. */
int backend_main(const char *spec);
#define BACKEND_ENV "CONCLAB_PATTERNS_BACKEND"

/* With --trace FILE: FILE.samples.tsv, the requests the backend read per second
 * in slots of slot_ns (and the retries among them, when tags count attempts). */
void backend_write_samples(const char *trace, uint64_t slot_ns, bool attempts);
/* The backend answered every request it read. */
bool answered_all(const struct shared *sh);
/* Arrivals read so far (at most ARRIVALS_MAX). */
uint64_t arrivals_seen(const struct shared *sh);
/* The most arrivals (whose tag passes keep, or all with NULL) in any interval of
 * window_ns. */
uint64_t max_in_window(const struct shared *sh, uint64_t window_ns, bool (*keep)(uint32_t));
/* The most of the times t[0..n) (sorted here) within any window_ns. */
uint64_t most_within(uint64_t *t, size_t n, uint64_t window_ns);

/* ---- the client: one keep-alive connection, blocking ---- */

enum call_result {
    CALL_OK,      /* a reply: its status in *status */
    CALL_REFUSED, /* connect refused: nobody listens */
    CALL_RESET,   /* the connection closed before any reply (idle keep-alive closed) */
    CALL_LOST,    /* the connection closed after the request, with no reply */
};

struct client {
    int fd;
    uint16_t port;
    size_t len;
    char buf[4096];
    bool reused;   /* the request went on a connection that had served one before */
    char body[64]; /* the last reply's body, cut to 63 bytes, NUL-terminated */
};

void client_init(struct client *c, uint16_t port);
/* Connect now rather than at the first request: false if refused. */
bool client_open(struct client *c);
enum call_result client_get(struct client *c, const char *target, int *status);
void client_close(struct client *c);

/* ---- the variants: run, judge (the check hook), free (teardown) ---- */

void run_limiter(struct cl_run *run);
void run_semaphore_rate(struct cl_run *run);
void judge_limiter(const struct cl_run *run, struct cl_result *res);
void judge_semaphore_rate(const struct cl_run *run, struct cl_result *res);
void limits_free(void);
struct limiter_ops;
extern const struct limiter_ops token_bucket_ops, early_stamp_ops, fixed_window_ops,
    min_interval_ops, retry_bypass_ops;

void run_retry(struct cl_run *run);
void judge_retry(const struct cl_run *run, struct cl_result *res);
void run_breaker(struct cl_run *run);
void judge_breaker(const struct cl_run *run, struct cl_result *res);
void retry_free(void);
/* A retry variant's backoff: how long to sleep before attempt k + 1. */
struct backoff {
    uint64_t (*sleep_ns)(struct cl_worker *w, uint64_t ceiling_ns);
};
extern const struct backoff backoff_sync, backoff_jitter;

/* The workers: the operator, who sends SIGTERM, and --threads clients, or the
 * operator alone when wrk's --threads connections make the load (--load wrk). */
void shutdown_prepare(struct cl_run *run);
void run_shutdown(struct cl_run *run);
void judge_shutdown(const struct cl_run *run, struct cl_result *res);
void shutdown_free(void);
/* With --trace FILE: FILE.samples.tsv of the run (see each for its columns). */
void shutdown_write_samples(const char *trace);
void breaker_write_samples(const char *trace);
/* A shutdown variant's order: the drain it gives the requests in flight. */
struct stop_order {
    uint64_t drain_ns; /* 0: the stop flag first, nothing drained */
};
extern const struct stop_order stop_graceful, stop_event_first;

void run_pool(struct cl_run *run);
void judge_pool(const struct cl_run *run, struct cl_result *res);
void run_pool_size(struct cl_run *run);
void judge_pool_size(const struct cl_run *run, struct cl_result *res);
void pool_free(void);
void pool_report(int fd, int threads);

void run_occ(struct cl_run *run);
void judge_occ(const struct cl_run *run, struct cl_result *res);
void run_pipeline(struct cl_run *run);
void judge_pipeline(const struct cl_run *run, struct cl_result *res);
void pipeline_free(void);

/* The report of the watchdog: what the backend has counted. */
void backend_report(int fd);

#endif
