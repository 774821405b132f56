/* cluster: beyond one machine, on MPI. The speedup chapter's sum and the
 * barrier chapter's stencil split over ranks (processes that share nothing and
 * talk only in messages), the deadlock two blocking sends make above the eager
 * limit, and a broadcast by hand against MPI_Bcast.
 *
 * One process of this program is one rank; mpirun starts them, through the
 * launcher beside it (demos/cluster/cluster-run), one mpirun per variant: a
 * forked child cannot reuse MPI state, so "every variant" is the launcher's
 * loop. Flags, --list, --help, --version and bad input are answered before
 * MPI_Init, without mpirun. Rank 0 prints the header, the result and the
 * verdict; every rank has its own watchdog, which names the MPI call it is
 * stuck in and leaves a status file for the launcher. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

int rank, nranks = 1;
struct outcome outcome;
static bool mpi_started; /* prepare knows the ranks only under MPI */

/* What this rank waits in, for its watchdog: static strings and plain numbers. */
static _Atomic(const char *) wait_call; /* "MPI_Send to", or NULL: computing */
static _Atomic int wait_peer;           /* -1: a collective */
static _Atomic long wait_bytes;

void progress(struct cl_run *run)
{
    cl_tick(&run->workers[0]);
}

static void waiting(struct cl_run *run, const char *call, int peer, long bytes)
{
    atomic_store(&wait_peer, peer);
    atomic_store(&wait_bytes, bytes);
    atomic_store(&wait_call, call);
    cl_status(&run->workers[0], "waits in an MPI call (the rank line below)");
}

static void running(struct cl_run *run)
{
    atomic_store(&wait_call, NULL);
    cl_status(&run->workers[0], NULL);
}

long type_bytes(MPI_Datatype t)
{
    int size;
    MPI_Type_size(t, &size);
    return size;
}

void m_send(struct cl_run *run, const void *buf, int count, MPI_Datatype t, int peer)
{
    waiting(run, "MPI_Send to", peer, count * type_bytes(t));
    MPI_Send(buf, count, t, peer, 0, MPI_COMM_WORLD);
    running(run);
}

void m_recv(struct cl_run *run, void *buf, int count, MPI_Datatype t, int peer)
{
    waiting(run, "MPI_Recv from", peer, count * type_bytes(t));
    MPI_Recv(buf, count, t, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    running(run);
}

/* Send `out` up (to rank up) while receiving `in` from below (rank down);
 * MPI_PROC_NULL on either side makes that half a no-op. */
void m_sendrecv(struct cl_run *run, const void *out, void *in, int count, MPI_Datatype t, int up,
                int down)
{
    waiting(run, "MPI_Sendrecv with", up != MPI_PROC_NULL ? up : down, count * type_bytes(t));
    MPI_Sendrecv(out, count, t, up, 0, in, count, t, down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    running(run);
}

void m_wait(struct cl_run *run, MPI_Request *req, int peer, long bytes)
{
    waiting(run, "MPI_Wait for the send to", peer, bytes);
    MPI_Wait(req, MPI_STATUS_IGNORE);
    running(run);
}

void m_bcast(struct cl_run *run, void *buf, int count, MPI_Datatype t)
{
    waiting(run, "MPI_Bcast from", 0, count * type_bytes(t));
    MPI_Bcast(buf, count, t, 0, MPI_COMM_WORLD);
    running(run);
}

void m_barrier(struct cl_run *run)
{
    waiting(run, "MPI_Barrier", -1, 0);
    MPI_Barrier(MPI_COMM_WORLD);
    running(run);
}

void m_reduce_sum(struct cl_run *run, const uint64_t *part, uint64_t *sum)
{
    waiting(run, "MPI_Reduce to", 0, sizeof *part);
    MPI_Reduce(part, sum, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    running(run);
}

void m_gather(struct cl_run *run, const double *band, int count, double *whole, const int *counts,
              const int *displs)
{
    waiting(run, "MPI_Gatherv to", 0, count * (long)sizeof(double));
    MPI_Gatherv(band, count, MPI_DOUBLE, whole, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    running(run);
}

void pattern_fill(unsigned char *buf, size_t len, int from, uint64_t round)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(from, round, i);
}

size_t pattern_errors(const unsigned char *buf, size_t len, int from, uint64_t round)
{
    size_t bad = 0;
    for (size_t i = 0; i < len; i++)
        bad += buf[i] != pattern(from, round, i);
    return bad;
}

/* Default message sizes of the variants that send one (--bytes wins). */
static const long b1 = 1, b1k = 1024, b4k = 4000, b64k = 65536, b1m = 1 << 20;

static const struct cl_variant variants[] = {
    {"sum", CL_CORRECT, "the sum of squares split over the ranks, MPI_Reduce to rank 0",
     .kind = SUM, .run = run_sum, .threads = 1, .iters = 1000000000},
    {"pingpong", CL_CORRECT, "ranks 0 and 1 bounce a message: round trip and bandwidth",
     .kind = PINGPONG, .run = run_pingpong, .threads = 1, .iters = 2000, .data = &b1},
    {"send-send", CL_HANGS, "both ranks MPI_Send 64 KiB, then MPI_Recv: above the eager limit",
     .kind = SEND_SEND, .run = run_exchange, .threads = 1, .iters = 1, .timeout_s = 1.0,
     .data = &b64k},
    {"send-send-small", CL_CORRECT, "the same with 1 KiB: completes, inside the eager limit",
     .kind = SEND_SEND, .run = run_exchange, .threads = 1, .iters = 100, .data = &b1k},
    {"sendrecv", CL_CORRECT, "the 64 KiB exchange as one MPI_Sendrecv per rank", .kind = SENDRECV,
     .run = run_exchange, .threads = 1, .iters = 100, .data = &b64k},
    {"isend", CL_CORRECT, "the 64 KiB exchange as MPI_Isend, MPI_Recv, then MPI_Wait",
     .kind = ISEND, .run = run_exchange, .threads = 1, .iters = 100, .data = &b64k},
    {"stencil", CL_CORRECT, "the Jacobi grid in row bands, halo rows exchanged every step",
     .kind = STENCIL, .run = run_stencil, .threads = 1, .iters = 500, .max_iters = 100000},
    {"bcast-naive", CL_SLOW, "rank 0 sends 1 MiB to every other rank, one after the other",
     .kind = BCAST_NAIVE, .run = run_bcast, .threads = 1, .iters = 20, .data = &b1m},
    {"bcast", CL_CORRECT, "the same 1 MiB through MPI_Bcast", .kind = BCAST, .run = run_bcast,
     .threads = 1, .iters = 20, .data = &b1m},
    {"type-mismatch", CL_WRONG, "ints sent as MPI_INT, received as MPI_FLOAT", .kind = MISMATCH,
     .run = run_mismatch, .threads = 1, .iters = 1, .max_iters = 1, .data = &b4k},
};

static const char *const scaling_names[] = {"strong", "weak", NULL};

static const struct cl_param params[] = {
    [RANKS] = {"ranks", "the ranks mpirun starts (cluster-run passes -n)", .min = 1, .max = 256,
               .unset = "as many as mpirun started"},
    [SCALING] = {"scaling", "sum: --iters is the total (strong) or each rank's share (weak)",
                 .choices = scaling_names},
    [BYTES] = {"bytes", "the message size", .min = 1, .max = 64 << 20, .unset = "per variant"},
    [GRID] = {"grid", "stencil: interior cells per side", .def = 512, .min = 4, .max = 4096},
};

static bool needs_pair(int kind)
{
    return kind != SUM && kind != STENCIL && kind != BCAST && kind != BCAST_NAIVE;
}

/* The combinations no run can take, checked with or without MPI: ranks is 0
 * when not known yet. Returns nonzero with one line in err. */
static int refuse(const struct cl_variant *v, const long long *param, unsigned given, int ranks,
                  int threads, char *err, size_t len)
{
    if (threads != 0) {
        snprintf(err, len, "cluster: --threads: each rank is one process; give --ranks N");
        return 1;
    }
    if (ranks == 1 && needs_pair(v->kind)) {
        snprintf(err, len, "cluster: --variant %s needs at least 2 ranks (--ranks 1)", v->name);
        return 1;
    }
    if (v->kind == STENCIL && ranks > param[GRID]) {
        snprintf(err, len, "cluster: --ranks %d: more ranks than rows (--grid %lld)", ranks,
                 param[GRID]);
        return 1;
    }
    if ((given & (1u << BYTES)) && (v->kind == SUM || v->kind == STENCIL)) {
        snprintf(err, len, "cluster: --bytes: %s sends no message of a size you choose", v->name);
        return 1;
    }
    if ((given & (1u << BYTES)) && v->kind == MISMATCH && param[BYTES] % 4 != 0) {
        snprintf(err, len,
                 "cluster: --bytes %lld: type-mismatch sends whole ints (a multiple of 4)",
                 param[BYTES]);
        return 1;
    }
    return 0;
}

static int prepare(struct cl_run *run, char *err, size_t len)
{
    if (mpi_started) {
        if (cl_param_given(run, RANKS) && run->param[RANKS] != nranks) {
            snprintf(err, len, "cluster: --ranks %lld, but mpirun started %d: use cluster-run",
                     run->param[RANKS], nranks);
            return 1;
        }
        run->param[RANKS] = nranks;
    }
    if (!cl_param_given(run, BYTES))
        run->param[BYTES] = run->variant->data != NULL ? *(const long *)run->variant->data : 0;
    return refuse(run->variant, run->param, run->opts->param_given, (int)run->param[RANKS],
                  run->opts->threads, err, len);
}

static void setup(const struct cl_run *run)
{
    (void)run;
    memset(&outcome, 0, sizeof outcome);
    atomic_store(&wait_call, NULL);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    res->exact = outcome.exact;
    res->ops = outcome.ops;
    cl_metric_int(res, "ranks", nranks);
    cl_metric_real(res, "in_program_s", outcome.in_program_s);
    switch (run->variant->kind) {
    case SUM:
        cl_metric_int(res, "per_rank", (long long)(outcome.ops / (uint64_t)nranks));
        break;
    case PINGPONG:
        cl_metric_int(res, "bytes", cl_param(run, BYTES));
        cl_metric_real(res, "rtt_us", outcome.value * 1e6);
        cl_metric_real(res, "mb_per_s", 2.0 * (double)cl_param(run, BYTES) / outcome.value / 1e6);
        break;
    case STENCIL:
        cl_metric_int(res, "grid", cl_param(run, GRID));
        cl_metric_int(res, "cells_differ", (long long)outcome.got);
        break;
    case BCAST:
    case BCAST_NAIVE:
        cl_metric_int(res, "bytes", cl_param(run, BYTES));
        cl_metric_real(res, "us_per_bcast", outcome.value * 1e6);
        break;
    default:
        cl_metric_int(res, "bytes", cl_param(run, BYTES));
        break;
    }
    cl_verdict(res, "%s", outcome.verdict);
}

/* The launcher's folder for this run (CLUSTER_RUN_DIR), or NULL when run
 * without it: the pid of each rank (for Ctrl-C) and a file per hung rank. */
static const char *run_dir;

static void write_file(const char *what, const char *text)
{
    if (run_dir == NULL)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/rank%d.%s", run_dir, rank, what);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* the launcher then goes by mpirun's status alone */
    ssize_t n = write(fd, text, strlen(text));
    (void)n;
    close(fd);
}

/* The watchdog's view: the MPI call this rank is stuck in. Atomics only. */
static void report(int fd, const struct cl_run *run)
{
    (void)run;
    char line[200], n[32];
    const char *call = atomic_load(&wait_call);
    int peer = atomic_load(&wait_peer);
    if (call == NULL)
        snprintf(line, sizeof line, "rank %d: computing, in no MPI call\n", rank);
    else if (peer < 0)
        snprintf(line, sizeof line, "rank %d: in %s\n", rank, call);
    else
        snprintf(line, sizeof line, "rank %d: in %s rank %d, %s B\n", rank, call, peer,
                 cl_fmt_count((uint64_t)atomic_load(&wait_bytes), n));
    ssize_t w = write(fd, line, strlen(line));
    (void)w;
    write_file("hang", line);
}

/* A rank that ends early (Ctrl-C, its watchdog) makes mpirun kill the others
 * at once (cluster-run sets odls_base_sigkill_timeout 0), so the ranks but 0
 * give rank 0 a moment to print its partial result first. A normal end, past
 * teardown, waits for nothing. */
static _Atomic bool ended;

static void teardown(const struct cl_run *run)
{
    (void)run;
    atomic_store(&ended, true);
}

static void let_rank0_speak(void *arg)
{
    (void)arg;
    if (!atomic_load(&ended))
        cl_sleep_ns(CL_MS(200));
}

static const struct cl_chapter chapter = {
    .name = "cluster",
    .summary = "beyond one machine: ranks and messages on MPI",
    .look_for = "rank 0 prints each result (an operation is one element summed, one round "
                "trip, one exchange, one grid step or one broadcast); watch send-send hang "
                "above the eager limit, and type-mismatch receive garbage",
    .variants = variants,
    .nvariants = sizeof variants / sizeof variants[0],
    .params = params,
    .nparams = NPARAMS,
    .timeout_s = 10.0,
    .prepare = prepare,
    .setup = setup,
    .check = check,
    .report = report,
    .teardown = teardown,
};

/* The ranks other than 0 compute and check, but print nothing on stdout. */
static void quiet_stdout(void)
{
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        fflush(stdout);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
}

/* Started by hand rather than by mpirun: run through the launcher, beside this
 * program in the build tree or where meson installs it, so that
 * `cluster --variant send-send` is the same as `cluster-run --variant send-send`
 * (and no --variant runs them all). */
static void to_launcher(char **argv)
{
    static char self[4096], launcher[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = '\0';
    const char *slash = strrchr(self, '/');
    snprintf(launcher, sizeof launcher, "%.*s/cluster-run", (int)(slash - self), self);
    if (access(launcher, X_OK) != 0)
        snprintf(launcher, sizeof launcher, "%s", CLUSTER_LAUNCHER);
    if (access(launcher, X_OK) != 0)
        return;
    setenv("CLUSTER_DEMO", self, 1);
    argv[0] = launcher;
    execv(launcher, argv);
}

int main(int argc, char **argv)
{
    /* --check-args: the launcher's question, whether these flags would run. */
    bool check_only = false;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--check-args") == 0)
            check_only = true;
        else
            argv[n++] = argv[i];
    }
    argv[n] = NULL;
    argc = n;

    struct cl_opts o;
    char err[512];
    if (cl_parse(&chapter, argc, argv, &o, err, sizeof err) != 0 || o.list || o.help || o.version)
        return cl_main(&chapter, argc, argv); /* the line, the list or the text; no MPI */
    int ranks = (o.param_given & (1u << RANKS)) ? (int)o.param[RANKS] : 0;
    const struct cl_variant *first = o.variant != NULL ? o.variant : variants;
    size_t count = o.variant != NULL ? 1 : chapter.nvariants;
    for (const struct cl_variant *v = first; v < first + count; v++) {
        if (refuse(v, o.param, o.param_given, ranks, o.threads, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return CL_EXIT_USAGE;
        }
    }
    if (check_only)
        return CL_EXIT_OK;
    if (getenv("OMPI_COMM_WORLD_SIZE") == NULL && getenv("PMIX_RANK") == NULL)
        to_launcher(argv); /* returns only where there is none: then one rank */
    if (o.variant == NULL) {
        fprintf(stderr, "cluster: --variant: one variant per mpirun (cluster-run runs them all)\n");
        return CL_EXIT_USAGE;
    }

    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    mpi_started = true;
    run_dir = getenv("CLUSTER_RUN_DIR");
    char pid[32];
    snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    write_file("pid", pid);
    if (rank != 0) {
        quiet_stdout();
        cl_on_exit(let_rank0_speak, NULL);
    }
    int code = cl_main(&chapter, argc, argv);
#ifdef __SANITIZE_ADDRESS__
    /* LeakSanitizer's check now, while Open MPI's plugins are loaded: what
     * they still hold is reachable, and what this program forgot is not.
     * MPI_Finalize then unloads them (their memory could no longer be told
     * apart), and the check at exit does not run again. */
    __lsan_do_leak_check();
#endif
    MPI_Finalize();
    return code;
}
