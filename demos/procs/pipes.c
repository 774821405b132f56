/* procs: what pipes promise and what they do not.
 *   pipe-queue         a task pipe and a result pipe shared by --procs forked
 *                      workers, as multiprocessing.Queue is; one stop message each
 *   join-before-drain  the parent waits for its child to exit before it reads what
 *   drain-then-join    the child wrote (--bytes), or reads first
 *   log-pipe           --procs writers put --iters lines of --line-bytes each into
 *                      one pipe: a write of at most PIPE_BUF bytes is never split
 * Every child here is forked and calls only read, write and plain arithmetic. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

static pid_t pids[MAX_PROCS];
static int status[MAX_PROCS];

static int children_failed(int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += !WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0;
    return bad;
}

/* ------------------------------------------------------------ pipe-queue */

/* [snippet queue-messages] */
struct task {
    uint32_t id; /* STOP: no more tasks for the worker that reads it */
    uint32_t n;  /* the work: a sum of squares below n */
};
struct result {
    uint32_t id, worker;
    uint64_t sum;
};
#define STOP UINT32_MAX
/* Both are far below PIPE_BUF: each write is whole, so each read of one record
 * gets one record, however many workers read the same pipe. */
/* [end queue-messages] */

#define TASK_N 20000 /* about 20 µs of work a task */

static uint8_t *done_count; /* per task id */
static uint64_t ntasks;
static uint64_t results, wrong_sums, stray;
static uint64_t per_worker[MAX_PROCS];

/* [snippet queue-worker] */
static _Noreturn void queue_worker(struct cl_worker *w, int tasks, int out)
{
    struct task t;
    while (read_full(tasks, &t, sizeof t) == sizeof t && t.id != STOP) {
        struct result r = {t.id, (uint32_t)w->id, cl_sum_squares(t.n)};
        write_full(out, &r, sizeof r);
        cl_tick(w);
    }
    _exit(0);
}
/* [end queue-worker] */

static void take_results(int fd)
{
    struct result r[256] = {{0}};
    ssize_t got = CL_RETRY(read(fd, r, sizeof r));
    CL_SYS(got);
    for (size_t i = 0; i < (size_t)got / sizeof r[0]; i++, results++) {
        if (r[i].id >= ntasks) {
            stray++;
            continue;
        }
        done_count[r[i].id]++;
        wrong_sums += r[i].sum != cl_sum_squares_closed(TASK_N);
        if (r[i].worker < MAX_PROCS)
            per_worker[r[i].worker]++;
    }
}

/* [snippet queue-feed] */
/* Feed tasks (then one STOP per worker) while taking results: a parent that
 * wrote every task first would fill the task pipe while the workers, blocked
 * on a full result pipe, stopped reading it. */
static void feed_and_collect(struct cl_run *run, int tasks, int out)
{
    uint64_t n = run->iters, total = n + (uint64_t)run->threads, next = 0;
    CL_SYS(fcntl(tasks, F_SETFL, O_NONBLOCK));
    while (results < n || next < total) {
        struct pollfd p[2] = {{tasks, next < total ? POLLOUT : 0, 0}, {out, POLLIN, 0}};
        CL_SYS(CL_RETRY(poll(p, 2, -1)));
        for (; (p[0].revents & POLLOUT) && next < total; next++) {
            struct task t = {next < n ? (uint32_t)next : STOP, TASK_N};
            if (write(tasks, &t, sizeof t) == -1) {
                if (errno != EAGAIN)
                    cl_die(__FILE__, __LINE__, "write", errno);
                break; /* full: take results first */
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP))
            take_results(out);
    }
}
/* [end queue-feed] */

void queue_run(struct cl_run *run)
{
    int tasks[2], out[2];
    CL_SYS(pipe2(tasks, O_CLOEXEC));
    CL_SYS(pipe2(out, O_CLOEXEC));
    for (int i = 0; i < run->threads; i++) {
        pids[i] = cl_child_fork();
        if (pids[i] == 0) {
            close(tasks[1]);
            close(out[0]);
            queue_worker(&run->workers[i], tasks[0], out[1]);
        }
        if (pids[i] == -1)
            cl_refuse(run, "fork", errno, "forked %d of %d workers", i, run->threads);
    }
    close(tasks[0]);
    close(out[1]);
    feed_and_collect(run, tasks[1], out[0]);
    close(tasks[1]);
    close(out[0]);
    for (int i = 0; i < run->threads; i++)
        status[i] = cl_child_wait(pids[i]);
}

static void queue_setup(const struct cl_run *run)
{
    ntasks = run->iters;
    done_count = cl_xcalloc(run->iters, 1);
}

static void queue_check(const struct cl_run *run, struct cl_result *res)
{
    uint64_t missing = 0, twice = 0, lo = UINT64_MAX, hi = 0;
    for (uint64_t i = 0; i < run->iters; i++) {
        missing += done_count[i] == 0;
        twice += done_count[i] > 1;
    }
    for (int i = 0; i < run->threads; i++) {
        lo = per_worker[i] < lo ? per_worker[i] : lo;
        hi = per_worker[i] > hi ? per_worker[i] : hi;
    }
    int bad = children_failed(run->threads);
    res->ops = results;
    res->exact = missing == 0 && twice == 0 && wrong_sums == 0 && stray == 0 && bad == 0;
    cl_metric_int(res, "missing", (long long)missing);
    cl_metric_int(res, "duplicated", (long long)twice);
    cl_metric_int(res, "wrong", (long long)wrong_sums);
    cl_metric_int(res, "min_per_worker", (long long)lo);
    cl_metric_int(res, "max_per_worker", (long long)hi);
    if (res->exact) {
        char a[32];
        cl_verdict(res,
                   "every one of %s tasks done exactly once, by %d workers (%llu to %llu "
                   "each); each stopped at its stop message",
                   cl_fmt_count(run->iters, a), run->threads, (unsigned long long)lo,
                   (unsigned long long)hi);
    } else
        cl_verdict(res, "%llu tasks missing, %llu done twice, %llu wrong, %d workers failed",
                   (unsigned long long)missing, (unsigned long long)twice,
                   (unsigned long long)wrong_sums, bad);
}

static void queue_teardown(const struct cl_run *run)
{
    (void)run;
    free(done_count);
}

const struct family queue_family = {
    .setup = queue_setup, .check = queue_check, .teardown = queue_teardown};

/* ------------------------------------------------------------ join and drain */

static int capacity_of_a_pipe(void)
{
    int p[2];
    CL_SYS(pipe2(p, O_CLOEXEC));
    int cap = fcntl(p[0], F_GETPIPE_SZ);
    CL_SYS(cap);
    close(p[0]);
    close(p[1]);
    return cap;
}

int drain_prepare(struct cl_run *run, char *err, size_t len)
{
    (void)err;
    (void)len;
    if (!cl_param_given(run, BYTES))
        run->param[BYTES] = capacity_of_a_pipe() + 4096;
    return 0;
}

static char *payload;
static size_t payload_bytes, drained;
static int capacity, drain_status;
static _Atomic int read_end = -1;
static _Atomic pid_t writer;
static bool payload_wrong;

/* [snippet join-drain] */
void drain_run(struct cl_run *run)
{
    struct cl_worker *w = &run->workers[0];
    int p[2];
    CL_SYS(pipe2(p, O_CLOEXEC));
    capacity = fcntl(p[0], F_GETPIPE_SZ);
    pid_t pid = cl_child_fork();
    if (pid == 0) { /* the child writes its result, then exits */
        write_full(p[1], payload, payload_bytes);
        _exit(0);
    }
    if (pid == -1)
        cl_refuse(run, "fork", errno, "the writing child");
    close(p[1]);
    atomic_store(&writer, pid);
    atomic_store(&read_end, p[0]);
    if (run->variant->kind == K_JOIN_BEFORE_DRAIN) {
        cl_status(w, "waits for the child to exit, before reading its output");
        drain_status = cl_child_wait(pid); /* the child waits for room in the pipe */
    }
    cl_status(w, "reads the child's output");
    char buf[4096] = "";
    for (ssize_t got; (got = CL_RETRY(read(p[0], buf, sizeof buf))) != 0; cl_tick(w)) {
        CL_SYS(got);
        payload_wrong |= drained + (size_t)got > payload_bytes ||
                         memcmp(buf, payload + drained, (size_t)got) != 0;
        drained += (size_t)got;
    }
    cl_status(w, NULL);
    if (run->variant->kind == K_DRAIN_THEN_JOIN)
        drain_status = cl_child_wait(pid);
    atomic_store(&read_end, -1);
    close(p[0]);
}
/* [end join-drain] */

static void drain_setup(const struct cl_run *run)
{
    payload_bytes = (size_t)cl_param(run, BYTES);
    payload = cl_xcalloc(payload_bytes, 1);
    for (size_t i = 0; i < payload_bytes; i++)
        payload[i] = (char)('a' + i % 26);
}

static void drain_check(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->ops = drained;
    res->exact = drained == payload_bytes && !payload_wrong && WIFEXITED(drain_status) &&
                 WEXITSTATUS(drain_status) == 0;
    cl_metric_int(res, "bytes", (long long)drained);
    cl_metric_int(res, "pipe_capacity", capacity);
    char a[32], b[32];
    cl_verdict(res, "%s the %s bytes the child wrote (the pipe holds %s)",
               res->exact ? "read all of" : "did not read back", cl_fmt_count(payload_bytes, a),
               cl_fmt_count((uint64_t)capacity, b));
}

static void drain_report(int fd, const struct cl_run *run)
{
    (void)run;
    int in_pipe = 0, end = atomic_load(&read_end);
    if (end < 0 || ioctl(end, FIONREAD, &in_pipe) == -1)
        return;
    dprintf(fd,
            "  the pipe holds %d of its %d bytes: child %d waits in write() for room to write "
            "the other %zu, and the parent waits for the child to exit before it reads\n",
            in_pipe, capacity, (int)atomic_load(&writer), payload_bytes - (size_t)in_pipe);
}

static void drain_teardown(const struct cl_run *run)
{
    (void)run;
    free(payload);
}

const struct family drain_family = {
    .setup = drain_setup, .check = drain_check, .report = drain_report, .teardown = drain_teardown};

/* ------------------------------------------------------------ log-pipe */

static char *stream;      /* everything the reader got */
static size_t stream_cap; /* procs x lines x line bytes */
static size_t stream_len;
static char *line_buf;
static uint64_t intact, torn;

/* "W3 17 " then the writer's letter up to the newline. */
static size_t make_line(char *buf, size_t len, int w, uint64_t seq)
{
    size_t at = 0;
    buf[at++] = 'W';
    at += fmt_u64(buf + at, (uint64_t)w);
    buf[at++] = ' ';
    at += fmt_u64(buf + at, seq);
    buf[at++] = ' ';
    memset(buf + at, 'a' + w % 26, len - 1 - at);
    buf[len - 1] = '\n';
    return len;
}

/* [snippet log-writer] */
static _Noreturn void log_writer(struct cl_worker *w, int fd, size_t len)
{
    for (uint64_t seq = 0; seq < w->iters; seq++) {
        write_full(fd, line_buf, make_line(line_buf, len, w->id, seq)); /* one write a line */
        cl_tick(w);
    }
    _exit(0);
}
/* [end log-writer] */

void logpipe_run(struct cl_run *run)
{
    size_t len = (size_t)cl_param(run, LINE_BYTES);
    uint64_t pause_ns = (uint64_t)cl_param(run, SLOW_READER_US) * 1000;
    int p[2];
    CL_SYS(pipe2(p, O_CLOEXEC));
    capacity = fcntl(p[0], F_GETPIPE_SZ);
    for (int i = 0; i < run->threads; i++) {
        pids[i] = cl_child_fork();
        if (pids[i] == 0) {
            close(p[0]);
            log_writer(&run->workers[i], p[1], len);
        }
        if (pids[i] == -1)
            cl_refuse(run, "fork", errno, "forked %d of %d writers", i, run->threads);
    }
    close(p[1]);
    for (ssize_t got; stream_len < stream_cap; stream_len += (size_t)got) {
        size_t want = stream_cap - stream_len < 4096 ? stream_cap - stream_len : 4096;
        got = CL_RETRY(read(p[0], stream + stream_len, want));
        CL_SYS(got);
        if (got == 0)
            break;
        if (pause_ns > 0)
            cl_sleep_ns(pause_ns); /* a slow reader: the pipe fills, writers block */
    }
    close(p[0]);
    for (int i = 0; i < run->threads; i++)
        status[i] = cl_child_wait(pids[i]);
}

/* Whether one line (without its newline) is whole: the right length, its
 * header, and the writer's letter throughout. */
static bool whole_line(const char *s, size_t n, size_t len, int writers, uint64_t lines)
{
    if (n != len - 1 || s[0] != 'W')
        return false;
    char *end;
    long w = strtol(s + 1, &end, 10);
    if (*end != ' ' || w < 0 || w >= writers)
        return false;
    unsigned long long seq = strtoull(end + 1, &end, 10);
    if (*end != ' ' || seq >= lines)
        return false;
    for (const char *c = end + 1; c < s + n; c++)
        if (*c != 'a' + w % 26)
            return false;
    return true;
}

static void logpipe_setup(const struct cl_run *run)
{
    size_t len = (size_t)cl_param(run, LINE_BYTES);
    stream_cap = (size_t)run->threads * run->iters * len;
    stream = mmap(NULL, stream_cap + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stream == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "%zu bytes for what the writers write", stream_cap);
    line_buf = cl_xcalloc(len, 1);
}

static void logpipe_check(const struct cl_run *run, struct cl_result *res)
{
    size_t len = (size_t)cl_param(run, LINE_BYTES);
    stream[stream_len] = '\0';
    for (size_t at = 0; at < stream_len;) {
        char *nl = memchr(stream + at, '\n', stream_len - at);
        size_t n = nl != NULL ? (size_t)(nl - (stream + at)) : stream_len - at;
        if (whole_line(stream + at, n, len, run->threads, run->iters))
            intact++;
        else
            torn++;
        at += n + 1;
    }
    uint64_t lines = (uint64_t)run->threads * run->iters;
    int bad = children_failed(run->threads);
    res->ops = lines;
    /* above PIPE_BUF tearing is allowed: only a lost byte is wrong */
    res->exact = stream_len == stream_cap && bad == 0 && (len > PIPE_BUF || intact == lines);
    cl_metric_int(res, "intact", (long long)intact);
    cl_metric_int(res, "torn", (long long)torn);
    cl_metric_real(res, "torn_pct", 100.0 * (double)torn / (double)lines);
    cl_metric_int(res, "pipe_buf", PIPE_BUF);
    cl_metric_int(res, "pipe_capacity", capacity);
    char a[32], b[32], c[32];
    if (stream_len != stream_cap || bad > 0)
        cl_verdict(res, "read %s of %s bytes; %d writers failed", cl_fmt_count(stream_len, a),
                   cl_fmt_count(stream_cap, b), bad);
    else if (torn == 0)
        cl_verdict(res, "%s lines of %zu B from %d writers, none torn", cl_fmt_count(lines, a), len,
                   run->threads);
    else
        cl_verdict(res,
                   "%s torn pieces, %s of %s lines whole: writes of %zu B are above "
                   "PIPE_BUF (%d) and were split",
                   cl_fmt_count(torn, a), cl_fmt_count(intact, b), cl_fmt_count(lines, c), len,
                   PIPE_BUF);
}

static void logpipe_teardown(const struct cl_run *run)
{
    (void)run;
    munmap(stream, stream_cap + 1);
    free(line_buf);
}

const struct family logpipe_family = {
    .setup = logpipe_setup, .check = logpipe_check, .teardown = logpipe_teardown};
