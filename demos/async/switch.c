/* async, switch-cost: what handing control from one flow to another costs, as
 * a ping-pong. Two tasks on the loop, each completing the future the other
 * awaits; then two threads through a mutex and a condition variable each, a
 * bare futex, and a pair of pipes. A switch is one hand-off. Each side is timed
 * without its set-up: the loop exists before the tasks start, and lib's gate
 * opens once both threads exist. */
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "async.h"

enum { BY_TASKS, BY_CONDVAR, BY_FUTEX, BY_PIPE, NWAYS };
static const char *const metric_names[] = {"tasks_ns", "condvar_ns", "futex_ns", "pipe_ns"};

static struct {
    uint64_t switches, turns; /* turns: hand-offs by each side */
    double ns[NWAYS];         /* per switch */
    uint64_t done[NWAYS];     /* hand-offs made */
} pp;

/* [snippet task-pingpong] */
struct player {
    struct cl_task task;
    struct cl_future *mine, *theirs; /* awaits its own, completes the other's */
    bool serves;
    uint64_t i;
};

static int player_run(struct cl_task *t)
{
    struct player *p = (struct player *)t;
    CL_BEGIN(t);
    for (p->i = 0; p->i < pp.turns; p->i++) {
        if (p->serves)
            cl_future_set(p->theirs, 1);                  /* the ball to the other */
        CL_AWAIT(t, p->mine);                             /* and wait for it to come back */
        cl_future_init(p->mine, t->fut.loop, "the ball"); /* ready for the next turn */
        if (!p->serves)
            cl_future_set(p->theirs, 1);
        pp.done[BY_TASKS]++;
    }
    CL_END(t);
}
/* [end task-pingpong] */

static void ping_tasks(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    loop_quiet(loop);
    struct cl_future ball[2];
    struct cl_future *both[2];
    for (int k = 0; k < 2; k++) {
        cl_future_init(&ball[k], loop, "the ball");
        struct player *p = (struct player *)cl_task_new(loop, player_run, sizeof *p, "player");
        p->mine = &ball[k];
        p->theirs = &ball[1 - k];
        p->serves = k == 0;
        both[k] = &p->task.fut;
    }
    struct cl_future *match = cl_gather_new(loop, both, 2, 0);
    uint64_t t0 = cl_now_ns();
    loop_run_until(loop, match);
    pp.ns[BY_TASKS] = (double)(cl_now_ns() - t0) / (double)pp.switches;
    for (int k = 0; k < 2; k++)
        cl_future_unref(both[k]);
    cl_future_unref(match);
    loop_close(loop);
}

/* [snippet condvar-pingpong] */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t turn[2]; /* one per player: a signal wakes the right one */
    int whose;
} court = {.mu = PTHREAD_MUTEX_INITIALIZER,
           .turn = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER}};

static void condvar_player(struct cl_worker *w)
{
    int me = w->id;
    CL_PT(pthread_mutex_lock(&court.mu));
    for (uint64_t i = 0; i < pp.turns; i++) {
        while (court.whose != me)
            CL_PT(pthread_cond_wait(&court.turn[me], &court.mu)); /* sleeps in the kernel */
        court.whose = 1 - me;
        CL_PT(pthread_cond_signal(&court.turn[1 - me]));
        cl_tick(w);
    }
    CL_PT(pthread_mutex_unlock(&court.mu));
}
/* [end condvar-pingpong] */

/* The cheapest blocking hand-off Linux has: a futex word, no mutex. */
static _Atomic uint32_t turn;

static void futex_player(struct cl_worker *w)
{
    uint32_t me = (uint32_t)w->id;
    for (uint64_t i = 0; i < pp.turns; i++) {
        uint32_t now;
        while ((now = atomic_load(&turn)) != me) /* sleep while it is the other's */
            syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, now, NULL, NULL, 0);
        atomic_store(&turn, 1 - me);
        syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        cl_tick(w);
    }
}

/* A byte through a pipe each way: two system calls and a wake-up per switch. */
static int to_player[2][2];

static void pipe_player(struct cl_worker *w)
{
    int me = w->id;
    char b = 0;
    for (uint64_t i = 0; i < pp.turns; i++) {
        if (me == 1)
            CL_SYS_RETRY(read(to_player[1][0], &b, 1));
        CL_SYS_RETRY(write(to_player[1 - me][1], &b, 1));
        if (me == 0)
            CL_SYS_RETRY(read(to_player[0][0], &b, 1));
        cl_tick(w);
    }
}

static void ping_threads(struct cl_run *run, int way, void (*fn)(struct cl_worker *w))
{
    uint64_t before = 0;
    for (int k = 0; k < 2; k++)
        before += atomic_load_explicit(&run->workers[k].progress, memory_order_relaxed);
    cl_run_workers(run, fn); /* both exist before the gate opens: wall_s excludes creation */
    pp.ns[way] = run->wall_s * 1e9 / (double)pp.switches;
    for (int k = 0; k < 2; k++)
        pp.done[way] += atomic_load_explicit(&run->workers[k].progress, memory_order_relaxed);
    pp.done[way] -= before;
}

void run_switch_cost(struct cl_run *run)
{
    pp.switches = run->iters - run->iters % 2;
    pp.turns = pp.switches / 2;
    ping_tasks(run);
    ping_threads(run, BY_CONDVAR, condvar_player);
    ping_threads(run, BY_FUTEX, futex_player);
    for (int k = 0; k < 2; k++)
        CL_SYS(pipe2(to_player[k], O_CLOEXEC));
    ping_threads(run, BY_PIPE, pipe_player);
    for (int k = 0; k < 2; k++) {
        close(to_player[k][0]);
        close(to_player[k][1]);
    }
}

static void judge_switch_cost(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = true;
    for (int i = 0; i < NWAYS; i++) {
        res->exact &= pp.done[i] == pp.switches;
        cl_metric_real(res, metric_names[i], pp.ns[i]);
    }
    cl_metric_real(res, "condvar_over_tasks", pp.ns[BY_CONDVAR] / pp.ns[BY_TASKS]);
    cl_metric_real(res, "futex_over_tasks", pp.ns[BY_FUTEX] / pp.ns[BY_TASKS]);
    cl_metric_real(res, "pipe_over_tasks", pp.ns[BY_PIPE] / pp.ns[BY_TASKS]);
    res->ops = pp.switches;
    cl_verdict(res,
               "a switch: %.0f ns between tasks, %.0f ns between threads (%.0fx; a bare "
               "futex %.0f ns, a pipe %.0f ns)",
               pp.ns[BY_TASKS], pp.ns[BY_CONDVAR], pp.ns[BY_CONDVAR] / pp.ns[BY_TASKS],
               pp.ns[BY_FUTEX], pp.ns[BY_PIPE]);
}

const struct family switch_cost_f = {judge_switch_cost};
