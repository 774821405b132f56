/* procs: stopping and supervising workers.
 *   sigterm    --procs forked workers do items of --item-us of CPU each. After
 *              --term-after-ms the parent sends SIGTERM: each worker finishes the
 *              item in hand and exits. Then the same with SIGKILL, which ends a
 *              worker wherever it is: the item in hand is lost. SIGTERM is
 *              blocked in every thread before any starts (the chapter's
 *              blocked_signals), so a worker reads it from a signalfd between
 *              items; sent to the demo itself during the first phase, it is
 *              passed on to the workers at once.
 *   supervise  --procs children, each with a deadline of --deadline-ms and its
 *              status in shared memory; the last --late of them overrun. The
 *              parent waits with pidfds in poll() (or polls waitpid), kills each
 *              child past its deadline and reports where it was. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

static pid_t pids[MAX_PROCS];
static int status[MAX_PROCS];

/* ------------------------------------------------------------ sigterm */

struct items {
    _Alignas(64) _Atomic uint64_t started;
    _Atomic uint64_t done;
};

enum { TERM, KILL, NPHASES };
static struct items *items; /* [phase][worker], shared with the workers */
static int phase_status[NPHASES][MAX_PROCS];
static double exit_ms[NPHASES]; /* the slowest worker, from the signal to its reaping */
static bool outside_term;       /* SIGTERM came to the demo itself */

/* [snippet drain-worker] */
static _Noreturn void item_worker(struct cl_worker *w, struct items *mine, uint64_t item_ns)
{
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM); /* blocked since before any thread: it waits here */
    int sfd = signalfd(-1, &term, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd == -1)
        _exit(1);
    struct signalfd_siginfo si;
    for (uint64_t i = 0; i < w->iters; i++) {
        atomic_store(&mine->started, i + 1);
        cl_busy_ns(item_ns); /* the item: CPU work, not a sleep */
        atomic_store(&mine->done, i + 1);
        cl_tick(w);
        if (read(sfd, &si, sizeof si) == sizeof si)
            break; /* SIGTERM: stop between items, nothing half done */
    }
    _exit(0);
}
/* [end drain-worker] */

/* Sleep up to ms, or until SIGTERM reaches the demo (read from sfd). */
static bool term_arrives_within(int sfd, long long ms)
{
    struct pollfd p = {sfd, POLLIN, 0};
    uint64_t end = cl_now_ns() + (uint64_t)ms * 1000000;
    for (uint64_t now; (now = cl_now_ns()) < end;) {
        int rc = poll(&p, 1, (int)((end - now + 999999) / 1000000));
        if (rc == 1) {
            struct signalfd_siginfo si;
            return read(sfd, &si, sizeof si) == sizeof si;
        }
    }
    return false;
}

static void run_phase(struct cl_run *run, int phase, int sfd)
{
    int n = run->threads;
    uint64_t item_ns = (uint64_t)cl_param(run, ITEM_US) * 1000;
    for (int i = 0; i < n; i++) {
        pids[i] = cl_child_fork();
        if (pids[i] == 0)
            item_worker(&run->workers[i], &items[phase * MAX_PROCS + i], item_ns);
        if (pids[i] == -1)
            cl_refuse(run, "fork", errno, "forked %d of %d workers", i, n);
    }
    cl_status(&run->workers[0], phase == TERM ? "waits to send SIGTERM" : "waits to send SIGKILL");
    if (phase == TERM)
        outside_term = term_arrives_within(sfd, cl_param(run, TERM_AFTER_MS));
    else
        cl_sleep_ns((uint64_t)cl_param(run, TERM_AFTER_MS) * 1000000);
    cl_status(&run->workers[0], NULL);
    uint64_t t0 = cl_now_ns();
    for (int i = 0; i < n; i++)
        kill(pids[i], phase == TERM ? SIGTERM : SIGKILL);
    for (int i = 0; i < n; i++)
        phase_status[phase][i] = cl_child_wait(pids[i]);
    exit_ms[phase] = (double)(cl_now_ns() - t0) / 1e6;
}

void sigterm_run(struct cl_run *run)
{
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    int sfd = signalfd(-1, &term, SFD_CLOEXEC);
    CL_SYS(sfd);
    run_phase(run, TERM, sfd);
    if (!outside_term) /* told to stop from outside: no second phase */
        run_phase(run, KILL, sfd);
    close(sfd);
}

static void sigterm_setup(const struct cl_run *run)
{
    (void)run;
    items = mmap(NULL, (size_t)NPHASES * MAX_PROCS * sizeof *items, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (items == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "the workers' item counters");
}

static void sigterm_check(const struct cl_run *run, struct cl_result *res)
{
    uint64_t done[NPHASES] = {0}, lost[NPHASES] = {0};
    bool as_told = true;
    int phases = outside_term ? 1 : NPHASES;
    for (int ph = 0; ph < phases; ph++)
        for (int i = 0; i < run->threads; i++) {
            const struct items *it = &items[ph * MAX_PROCS + i];
            int st = phase_status[ph][i];
            done[ph] += it->done;
            lost[ph] += it->started - it->done;
            as_told &= it->started - it->done <= 1;
            as_told &= ph == TERM ? WIFEXITED(st) && WEXITSTATUS(st) == 0
                                  : WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        }
    res->ops = done[TERM] + done[KILL];
    res->exact = as_told && lost[TERM] == 0;
    cl_metric_int(res, "term_done", (long long)done[TERM]);
    cl_metric_int(res, "term_lost", (long long)lost[TERM]);
    cl_metric_real(res, "term_exit_ms", exit_ms[TERM]);
    if (!outside_term) {
        cl_metric_int(res, "kill_done", (long long)done[KILL]);
        cl_metric_int(res, "kill_lost", (long long)lost[KILL]);
        cl_metric_real(res, "kill_exit_ms", exit_ms[KILL]);
    }
    char a[32], b[32];
    if (!res->exact)
        cl_verdict(res, "SIGTERM: %llu items lost, or a worker did not end as told",
                   (unsigned long long)lost[TERM]);
    else if (outside_term)
        cl_verdict(res,
                   "SIGTERM from outside, passed on: %s items done, none lost; all %d "
                   "workers out in %.1f ms",
                   cl_fmt_count(done[TERM], a), run->threads, exit_ms[TERM]);
    else
        cl_verdict(res,
                   "SIGTERM: %s items done, none lost, out in %.1f ms; SIGKILL: %s done, "
                   "%llu lost in the middle",
                   cl_fmt_count(done[TERM], a), exit_ms[TERM], cl_fmt_count(done[KILL], b),
                   (unsigned long long)lost[KILL]);
}

static void sigterm_teardown(const struct cl_run *run)
{
    (void)run;
    munmap(items, (size_t)NPHASES * MAX_PROCS * sizeof *items);
}

const struct family sigterm_family = {
    .setup = sigterm_setup, .check = sigterm_check, .teardown = sigterm_teardown};

/* ------------------------------------------------------------ supervise */

/* [snippet task-status] */
enum { STARTING, WORKING, DONE };
struct task_status {
    _Alignas(64) _Atomic uint64_t steps; /* steps done */
    _Atomic int state;
};
/* [end task-status] */

enum { STEPS = 5 };               /* an on-time task: 5 steps */
static struct task_status *tasks; /* a named object: a spawned task opens it */
static const char *tasks_name;
static bool killed[MAX_PROCS], late_child[MAX_PROCS];
static double worst_lag_ms;
static uint64_t wakeups;

/* A task: `steps` steps of step_ns (sleeping: the work does not matter here, its
 * deadline does), or for ever if steps is 0. */
static void task(struct task_status *st, uint64_t steps, uint64_t step_ns)
{
    atomic_store(&st->state, WORKING);
    for (uint64_t s = 0; steps == 0 || s < steps; s++) {
        cl_sleep_ns(step_ns);
        atomic_store(&st->steps, s + 1);
    }
    atomic_store(&st->state, DONE);
}

/* The task worker of --start spawn: NAME ID STEPS STEP_NS. */
int task_main(int argc, char **argv)
{
    worker_start(argc, argv, 5);
    int id = (int)worker_arg(argv, 2);
    struct task_status *all = shm_attach(argv[1], MAX_PROCS * sizeof *all);
    if (all == NULL || id < 0 || id >= MAX_PROCS)
        return 1;
    task(&all[id], (uint64_t)worker_arg(argv, 3), (uint64_t)worker_arg(argv, 4));
    return 0;
}

static pid_t start_task(struct cl_run *run, int i, uint64_t steps, uint64_t step_ns)
{
    if (cl_param(run, START) == START_SPAWN) {
        char id[16], s[24], ns[24];
        snprintf(id, sizeof id, "%d", i);
        snprintf(s, sizeof s, "%llu", (unsigned long long)steps);
        snprintf(ns, sizeof ns, "%llu", (unsigned long long)step_ns);
        return spawn_worker(run, "task", (const char *const[]){tasks_name, id, s, ns, NULL}, NULL);
    }
    pid_t pid = cl_child_fork();
    if (pid == 0) {
        task(&tasks[i], steps, step_ns);
        _exit(0);
    }
    if (pid == -1)
        cl_refuse(run, "fork", errno, "forked %d of %d tasks", i, run->threads);
    return pid;
}

static void reaped(int i, uint64_t deadline, bool was_killed)
{
    status[i] = cl_child_wait(pids[i]);
    killed[i] = was_killed;
    double lag = ((double)cl_now_ns() - (double)deadline) / 1e6;
    if (was_killed && lag > worst_lag_ms)
        worst_lag_ms = lag;
}

/* [snippet supervise] */
void supervise_run(struct cl_run *run)
{
    int n = run->threads, live = n, fds[MAX_PROCS];
    bool use_pidfd = cl_param(run, WAIT) == WAIT_PIDFD, alive[MAX_PROCS];
    uint64_t deadline_ns = (uint64_t)cl_param(run, DEADLINE_MS) * 1000000, due[MAX_PROCS];
    for (int i = 0; i < n; i++) {
        late_child[i] = i >= n - cl_param(run, LATE);
        pids[i] = start_task(run, i, late_child[i] ? 0 : STEPS, deadline_ns / 10 / STEPS);
        due[i] = cl_now_ns() + deadline_ns;
        alive[i] = true;
        if (use_pidfd && (fds[i] = pidfd_open(pids[i], 0)) == -1)
            cl_refuse(run, "pidfd_open", errno, "child %d", i + 1);
    }
    while (live > 0) {
        uint64_t now = cl_now_ns(), next = UINT64_MAX;
        struct pollfd p[MAX_PROCS];
        int np = 0, at[MAX_PROCS];
        for (int i = 0; i < n; i++) {
            atomic_store(&run->workers[i].progress, atomic_load(&tasks[i].steps));
            if (!alive[i])
                continue;
            if (now >= due[i]) { /* past its deadline: kill it, and say where it was */
                if (use_pidfd)
                    pidfd_send_signal(fds[i], SIGKILL, NULL, 0);
                else
                    kill(pids[i], SIGKILL);
                reaped(i, due[i], true);
            } else if (!use_pidfd && cl_child_reaped(pids[i], &status[i])) {
                killed[i] = false;
            } else {
                next = due[i] < next ? due[i] : next;
                p[np] = (struct pollfd){use_pidfd ? fds[i] : -1, POLLIN, 0};
                at[np++] = i;
                continue;
            }
            alive[i] = false;
            live--;
        }
        if (live == 0)
            break;
        wakeups++;
        if (!use_pidfd) { /* waitpid cannot wait with a timeout: look again in 1 ms */
            cl_sleep_ns(1000000);
            continue;
        }
        int ms = (int)((next - now + 999999) / 1000000); /* the next deadline, rounded up */
        if (CL_RETRY(poll(p, (nfds_t)np, ms < 250 ? ms : 250)) > 0)
            for (int k = 0; k < np; k++)
                if (p[k].revents & POLLIN) { /* it exited: reap it */
                    reaped(at[k], due[at[k]], false);
                    alive[at[k]] = false;
                    live--;
                }
    }
    for (int i = 0; use_pidfd && i < n; i++)
        close(fds[i]);
}
/* [end supervise] */

static void supervise_setup(const struct cl_run *run)
{
    tasks = shm_make(run, "status", MAX_PROCS * sizeof *tasks, &tasks_name);
}

static const char *const state_names[] = {"starting", "working", "done"};

static void supervise_check(const struct cl_run *run, struct cl_result *res)
{
    int finished = 0, stopped = 0, wrong = 0;
    char line[160] = "";
    size_t at = 0;
    for (int i = 0; i < run->threads; i++) {
        int st = status[i], state = atomic_load(&tasks[i].state);
        bool ok = late_child[i]
                      ? killed[i] && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                      : !killed[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0 && state == DONE;
        wrong += !ok;
        finished += !killed[i];
        stopped += killed[i];
        if (killed[i] && at < sizeof line - 48)
            at += (size_t)snprintf(line + at, sizeof line - at, "%s%d (%s, step %llu)",
                                   at ? ", " : "", i + 1, state_names[state],
                                   (unsigned long long)atomic_load(&tasks[i].steps));
    }
    res->ops = (uint64_t)run->threads;
    res->exact = wrong == 0;
    cl_metric_int(res, "finished", finished);
    cl_metric_int(res, "killed", stopped);
    cl_metric_real(res, "kill_lag_ms", worst_lag_ms);
    cl_metric_int(res, "wakeups", (long long)wakeups);
    if (!res->exact)
        cl_verdict(res, "%d children did not end as their deadlines say", wrong);
    else if (stopped == 0)
        cl_verdict(res, "all %d children done before their %lld ms deadline", finished,
                   cl_param(run, DEADLINE_MS));
    else
        cl_verdict(res, "%d done in time; killed at the %lld ms deadline: %s", finished,
                   cl_param(run, DEADLINE_MS), line);
}

static void supervise_teardown(const struct cl_run *run)
{
    (void)run;
    shm_remove(tasks, MAX_PROCS * sizeof *tasks, tasks_name);
}

const struct family supervise_family = {
    .setup = supervise_setup, .check = supervise_check, .teardown = supervise_teardown};
