/* threads: stopping a thread from outside, by asking it (stop-flag, stop-cond),
 * and what happens to a detached thread when its process's main ends
 * (detached, with a child process that this program becomes). */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "threads.h"

/* ------------------------------------------------------------ stop-flag, stop-cond */

struct stopper {
    struct cl_worker *w;
    uint64_t poll_ns;
    _Atomic bool stop;  /* stop-flag: read between sleeps */
    pthread_mutex_t mu; /* stop-cond: guards stopping, and cv waits on it */
    pthread_cond_t cv;
    bool stopping;
    uint64_t items, sum;            /* the work done: item k adds 2k */
    uint64_t requested_ns, seen_ns; /* the stop: asked for, noticed */
};

static void process_item(struct stopper *s)
{
    s->sum += 2 * s->items; /* the guides' worker: processed.append(item * 2) */
    s->items++;
    cl_tick(s->w);
}

/* [snippet stop-flag] */
static void *poll_main(void *arg)
{
    struct stopper *s = arg;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        process_item(s);
        cl_sleep_ns(s->poll_ns); /* a stop that comes now waits out this sleep */
    }
    s->seen_ns = cl_now_ns();
    return NULL;
}

static void stop_by_flag(struct stopper *s)
{
    s->requested_ns = cl_now_ns();
    atomic_store_explicit(&s->stop, true, memory_order_release);
}
/* [end stop-flag] */

/* [snippet stop-cond] */
static void *wait_main(void *arg)
{
    struct stopper *s = arg;
    CL_PT(pthread_mutex_lock(&s->mu));
    while (!s->stopping) {
        CL_PT(pthread_mutex_unlock(&s->mu));
        process_item(s);
        CL_PT(pthread_mutex_lock(&s->mu));
        struct timespec until = cl_deadline_ns(s->poll_ns);
        int rc = 0;
        while (!s->stopping && rc != ETIMEDOUT) /* Python's Event.wait(timeout) */
            if ((rc = pthread_cond_timedwait(&s->cv, &s->mu, &until)) != 0 && rc != ETIMEDOUT)
                cl_die(__FILE__, __LINE__, "pthread_cond_timedwait", rc);
    }
    s->seen_ns = cl_now_ns();
    CL_PT(pthread_mutex_unlock(&s->mu));
    return NULL;
}

static void stop_by_signal(struct stopper *s)
{
    CL_PT(pthread_mutex_lock(&s->mu));
    s->requested_ns = cl_now_ns();
    s->stopping = true;
    CL_PT(pthread_cond_signal(&s->cv)); /* wakes it now, mid-wait */
    CL_PT(pthread_mutex_unlock(&s->mu));
}
/* [end stop-cond] */

static struct stopper *stoppers;
static int nstoppers;
static pthread_t *stop_tids;

/* Start every worker; after one poll period, ask them to stop one by one,
 * spread over the next period, so that the requests meet each worker at a
 * different point of its sleep. */
void run_stop(struct cl_run *run)
{
    bool by_flag = run->variant->kind == STOP_FLAG;
    int n = nstoppers = run->threads;
    uint64_t poll = (uint64_t)cl_param(run, POLL_MS) * MS_NS;
    stoppers = cl_xcalloc((size_t)n, sizeof *stoppers);
    stop_tids = cl_xcalloc((size_t)n, sizeof *stop_tids);
    for (int i = 0; i < n; i++) {
        struct stopper *s = &stoppers[i];
        *s = (struct stopper){.w = &run->workers[i], .poll_ns = poll};
        CL_PT(pthread_mutex_init(&s->mu, NULL));
        CL_PT(cl_cond_init_monotonic(&s->cv));
    }
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&stop_tids[i], NULL, by_flag ? poll_main : wait_main, &stoppers[i]);
        if (rc != 0) {
            for (int k = 0; k < i; k++)
                by_flag ? stop_by_flag(&stoppers[k]) : stop_by_signal(&stoppers[k]);
            refuse_threads(run, rc, stop_tids, i, n, NULL);
        }
    }
    cl_sleep_ns(poll);
    for (int i = 0; i < n; i++) {
        cl_sleep_ns(poll / (uint64_t)n);
        by_flag ? stop_by_flag(&stoppers[i]) : stop_by_signal(&stoppers[i]);
    }
    for (int i = 0; i < n; i++)
        CL_PT(pthread_join(stop_tids[i], NULL));
}

void check_stop(const struct cl_run *run, struct cl_result *res)
{
    int n = nstoppers, consistent = 0;
    uint64_t *lat = cl_xcalloc((size_t)n, sizeof *lat), items = 0;
    for (int i = 0; i < n; i++) {
        const struct stopper *s = &stoppers[i];
        /* every item counted once, and each added what it should */
        consistent += s->seen_ns >= s->requested_ns && s->requested_ns != 0 &&
                      atomic_load(&s->w->progress) == s->items &&
                      s->sum == s->items * (s->items - 1); /* 2 (0 + 1 + .. + items-1) */
        lat[i] = s->seen_ns - s->requested_ns;
        items += s->items;
    }
    cl_sort_ns(lat, (size_t)n);
    size_t mid = (size_t)(n - 1) / 2, at99 = (size_t)(99 * n + 99) / 100 - 1; /* nearest rank */
    double p50 = (double)lat[mid] / 1e3, p99 = (double)lat[at99] / 1e3,
           max = (double)lat[n - 1] / 1e3;
    free(lat);
    res->exact = consistent == n;
    res->ops = (uint64_t)n;
    cl_metric_int(res, "stopped", consistent);
    cl_metric_int(res, "items", (long long)items);
    cl_metric_real(res, "p50_us", p50);
    cl_metric_real(res, "p99_us", p99);
    cl_metric_real(res, "max_us", max);
    if (!res->exact) {
        cl_verdict(res, "%d of %d workers stopped with their work counted", consistent, n);
    } else {
        char count[32];
        cl_verdict(res,
                   "%d workers stopped after %s items; a stop took %.3f ms at the median, "
                   "%.3f ms at most (%s every %lld ms)",
                   n, cl_fmt_count(items, count), p50 / 1e3, max / 1e3,
                   run->variant->kind == STOP_FLAG ? "polling" : "a timed wait",
                   cl_param(run, POLL_MS));
    }
}

void teardown_stop(void)
{
    for (int i = 0; stoppers != NULL && i < nstoppers; i++) {
        CL_PT(pthread_mutex_destroy(&stoppers[i].mu));
        CL_PT(pthread_cond_destroy(&stoppers[i].cv));
    }
    free(stoppers);
    free(stop_tids);
}

/* ------------------------------------------------------------ detached */

/* The child process: this program again, started with HEARTBEAT_CHILD MODE
 * BEATS PARENT. Its main starts a detached thread that writes a line to the
 * pipe every 10 ms, waits for MAIN_ENDS_AFTER of them, says so, and ends. */
#define PIPE_FD         100 /* the pipe's write end in the child */
#define MAIN_ENDS_AFTER 3
#define BEAT_NS         (10 * MS_NS)

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/common_interface_defs.h>

/* Two habits of ThreadSanitizer would hide the child's lesson. It sleeps a
 * second in exit() (atexit_sleep_ms), to catch races at exit, and the
 * detached thread beats on meanwhile: off here (TSAN_OPTIONS still wins).
 * And it keeps a thread of its own from the first pthread_create on, so that
 * after main's pthread_exit the heartbeat is never the last thread and the
 * process never ends: tsan_quiet_child stops that thread first. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "atexit_sleep_ms=0";
}

static void *nothing(void *arg)
{
    return arg;
}

static void tsan_quiet_child(void)
{
    pthread_t t;
    CL_PT(pthread_create(&t, NULL, nothing, NULL)); /* TSan starts its thread now */
    CL_PT(pthread_join(t, NULL));
    __sanitizer_sandbox_on_notify(NULL); /* and stops it here, for good */
}
#else
static void tsan_quiet_child(void)
{
}
#endif

static uint64_t child_t0;
static _Atomic int beats_written;

static void say(const char *what, int n)
{
    char line[64];
    int len = snprintf(line, sizeof line, "%s %d %.1f\n", what, n,
                       (double)(cl_now_ns() - child_t0) / 1e6);
    if (write(PIPE_FD, line, (size_t)len) != len) /* one write: a line arrives whole */
        _exit(3);
}

/* [snippet detached] */
static void *heartbeat(void *arg)
{
    int beats = *(const int *)arg;
    for (int k = 1; k <= beats; k++) {
        say("beat", k);
        atomic_store(&beats_written, k);
        cl_sleep_ns(BEAT_NS);
    }
    say("done", beats); /* its last words: only if it lives to the end */
    return NULL;
}

static int child_main(enum main_exit how, const int *beats)
{
    pthread_attr_t attr;
    pthread_t t;
    CL_PT(pthread_attr_init(&attr));
    CL_PT(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)); /* nobody joins it */
    CL_PT(pthread_create(&t, &attr, heartbeat, (void *)beats));
    CL_PT(pthread_attr_destroy(&attr));
    while (atomic_load(&beats_written) < MAIN_ENDS_AFTER) /* main's own work */
        cl_sleep_ns(MS_NS);
    say("main", MAIN_ENDS_AFTER);
    if (how == MAIN_RETURNS)
        return 0;       /* returning from main is exit(): every thread ends here */
    pthread_exit(NULL); /* only main ends; the process lives on with its thread */
}
/* [end detached] */

int heartbeat_child_main(int argc, char **argv)
{
    static int beats; /* outlives main: the detached thread reads it */
    child_t0 = cl_now_ns();
    if (argc == 5)
        beats = (int)strtol(argv[3], NULL, 10);
    if (argc != 5 || beats < 1) {
        fprintf(stderr, "threads: %s MODE BEATS PARENT: the detached variant's child\n",
                HEARTBEAT_CHILD);
        return CL_EXIT_USAGE;
    }
    cl_child_die_with_parent((pid_t)strtol(argv[4], NULL, 10));
    tsan_quiet_child();
    return child_main(strcmp(argv[2], "pthread-exit") == 0 ? MAIN_PTHREAD_EXIT : MAIN_RETURNS,
                      &beats);
}

/* What the parent read from the pipe, and how the child ended. */
static struct heard {
    int planned, received, last_beat, after_main, gaps, status;
    bool main_ended, done;
    double last_ms, main_ms;
} hb;

/* One line of the child's: "WHAT N MS" (say's format). */
static void read_line(struct cl_run *run, const char *line)
{
    size_t len = strcspn(line, " ");
    char what[8];
    snprintf(what, sizeof what, "%.*s", (int)len, line);
    char *end;
    int n = (int)strtol(line + len, &end, 10);
    double ms = strtod(end, NULL);
    if (strcmp(what, "beat") == 0) {
        hb.gaps += n != hb.last_beat + 1;
        hb.last_beat = n;
        hb.last_ms = ms;
        hb.received++;
        hb.after_main += hb.main_ended;
        cl_tick(&run->workers[0]);
    } else if (strcmp(what, "main") == 0) {
        hb.main_ended = true;
        hb.main_ms = ms;
    } else if (strcmp(what, "done") == 0) {
        hb.done = true;
    }
}

void run_detached(struct cl_run *run)
{
    hb = (struct heard){.planned = (int)cl_param(run, BEATS)};
    int fds[2];
    CL_SYS(pipe2(fds, O_CLOEXEC));
    posix_spawn_file_actions_t fa;
    CL_PT(posix_spawn_file_actions_init(&fa));
    CL_PT(posix_spawn_file_actions_adddup2(&fa, fds[1], PIPE_FD));
    char beats[16], parent[16], mode[16];
    snprintf(beats, sizeof beats, "%d", hb.planned);
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    snprintf(mode, sizeof mode, "%s",
             cl_param(run, MAIN_EXIT) == MAIN_PTHREAD_EXIT ? "pthread-exit" : "return");
    char *argv[] = {"threads", HEARTBEAT_CHILD, mode, beats, parent, NULL};
    pid_t pid;
    int rc = cl_child_spawn(&pid, "/proc/self/exe", &fa, argv);
    CL_PT(posix_spawn_file_actions_destroy(&fa));
    CL_SYS(close(fds[1])); /* the child holds the only write end: EOF when it is gone */
    if (rc != 0)
        cl_refuse(run, "posix_spawn", rc, "the detached variant's child process");
    cl_status(&run->workers[0], "reads the child's heartbeats");
    FILE *in = fdopen(fds[0], "r");
    if (in == NULL) /* an if-else: cppcheck 2.10 reads on past the _Noreturn cl_die */
        cl_die(__FILE__, __LINE__, "fdopen", errno);
    else {
        char line[128];
        while (fgets(line, sizeof line, in) != NULL)
            read_line(run, line);
        fclose(in);
    }
    hb.status = cl_child_wait(pid);
    cl_status(&run->workers[0], NULL);
}

void check_detached(const struct cl_run *run, struct cl_result *res)
{
    bool by_return = cl_param(run, MAIN_EXIT) == MAIN_RETURNS;
    bool clean = WIFEXITED(hb.status) && WEXITSTATUS(hb.status) == 0;
    int lost = hb.planned - hb.received;
    /* exact: every line accounted for, the child ended as its main said */
    res->exact = clean && hb.main_ended && hb.gaps == 0 && hb.received >= MAIN_ENDS_AFTER &&
                 (by_return ? !hb.done : hb.done && lost == 0);
    res->ops = (uint64_t)hb.planned;
    cl_metric_int(res, "planned", hb.planned);
    cl_metric_int(res, "received", hb.received);
    cl_metric_int(res, "lost", lost);
    cl_metric_int(res, "after_main", hb.after_main);
    cl_metric_int(res, "done", hb.done);
    cl_metric_real(res, "main_ms", hb.main_ms);
    cl_metric_real(res, "last_beat_ms", hb.last_ms);
    if (!clean)
        cl_verdict(res, "the child did not exit 0 (status %#x)", (unsigned)hb.status);
    else if (by_return)
        cl_verdict(res,
                   "main returned at %.0f ms; the last heartbeat was %d at %.0f ms; %d of %d "
                   "never written, and no \"done\"",
                   hb.main_ms, hb.last_beat, hb.last_ms, lost, hb.planned);
    else
        cl_verdict(res,
                   "main called pthread_exit at %.0f ms; the thread went on: %d of %d "
                   "heartbeats, the last at %.0f ms, then \"done\"%s",
                   hb.main_ms, hb.received, hb.planned, hb.last_ms, hb.done ? "" : " missing");
}
