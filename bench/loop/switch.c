/* loop-switch: the cost of handing control from one flow to another, measured
 * as a ping-pong. --mode task: two cl_task tasks on one loop, each completing
 * the future the other awaits. --mode thread: two threads taking turns through
 * one mutex and a condition variable each (the cheapest blocking hand-off that
 * pthreads offers; --cpus same pins both to one CPU, so every hand-off is a
 * context switch and never an idle wake-up on the other CPU). A switch is one
 * hand-off: a round trip is two. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "cl_check.h"
#include "cl_exit.h"
#include "cl_json.h"
#include "cl_task.h"
#include "cl_time.h"

/* ---- two tasks ---- */

struct player {
    struct cl_task task;
    struct cl_future *mine, *theirs; /* each awaits its own, completes the other's */
    bool serves;                     /* goes first */
    uint64_t i, turns;
};

static int player_run(struct cl_task *t)
{
    struct player *p = (struct player *)t;
    CL_BEGIN(t);
    for (p->i = 0; p->i < p->turns; p->i++) {
        if (p->serves)
            cl_future_set(p->theirs, (intptr_t)p->i);
        CL_AWAIT(t, p->mine);
        cl_future_init(p->mine, t->fut.loop, "the ball"); /* ready for the next turn */
        if (!p->serves)
            cl_future_set(p->theirs, (intptr_t)p->i);
    }
    CL_END(t);
}

static uint64_t tasks_ns(uint64_t switches)
{
    struct cl_loop *loop = cl_loop_new(NULL);
    if (loop == NULL) {
        perror("loop-switch: cl_loop_new");
        exit(CL_EXIT_REFUSED);
    }
    struct cl_future ball[2];
    struct player *p[2];
    for (int k = 0; k < 2; k++) {
        cl_future_init(&ball[k], loop, "the ball");
        p[k] = (struct player *)cl_task_new(loop, player_run, sizeof(struct player), "player");
        p[k]->mine = &ball[k];
        p[k]->theirs = &ball[1 - k];
        p[k]->serves = k == 0;
        p[k]->turns = switches / 2;
    }
    uint64_t t0 = cl_now_ns();
    cl_loop_run(loop);
    uint64_t t1 = cl_now_ns();
    if (!p[0]->task.fut.done || !p[1]->task.fut.done)
        cl_die(__FILE__, __LINE__, "loop-switch: a player did not finish", EDEADLK);
    for (int k = 0; k < 2; k++)
        cl_future_unref(&p[k]->task.fut);
    cl_loop_free(loop);
    return t1 - t0;
}

/* ---- two threads ---- */

struct court {
    pthread_mutex_t mu;
    pthread_cond_t turn_changed[2];
    int turn; /* whose go it is */
    uint64_t turns;
    int cpu; /* -1: let the scheduler place them */
};

struct side {
    struct court *c;
    int me;
};

static void *thread_player(void *arg)
{
    struct side *s = arg;
    struct court *c = s->c;
    if (c->cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(c->cpu, &one);
        CL_PT(pthread_setaffinity_np(pthread_self(), sizeof one, &one));
    }
    CL_PT(pthread_mutex_lock(&c->mu));
    for (uint64_t i = 0; i < c->turns; i++) {
        while (c->turn != s->me)
            CL_PT(pthread_cond_wait(&c->turn_changed[s->me], &c->mu));
        c->turn = 1 - s->me;
        CL_PT(pthread_cond_signal(&c->turn_changed[1 - s->me]));
    }
    CL_PT(pthread_mutex_unlock(&c->mu));
    return NULL;
}

static uint64_t threads_ns(uint64_t switches, int cpu)
{
    struct court c = {.turns = switches / 2, .cpu = cpu};
    CL_PT(pthread_mutex_init(&c.mu, NULL));
    CL_PT(pthread_cond_init(&c.turn_changed[0], NULL));
    CL_PT(pthread_cond_init(&c.turn_changed[1], NULL));
    struct side sides[2] = {{&c, 0}, {&c, 1}};
    pthread_t t[2];
    uint64_t t0 = cl_now_ns();
    for (int k = 0; k < 2; k++)
        CL_PT(pthread_create(&t[k], NULL, thread_player, &sides[k]));
    for (int k = 0; k < 2; k++)
        CL_PT(pthread_join(t[k], NULL));
    uint64_t t1 = cl_now_ns();
    CL_PT(pthread_cond_destroy(&c.turn_changed[0]));
    CL_PT(pthread_cond_destroy(&c.turn_changed[1]));
    CL_PT(pthread_mutex_destroy(&c.mu));
    return t1 - t0;
}

int main(int argc, char **argv)
{
    static const char *const modes[] = {"task", "thread", NULL};
    static const char *const cpus[] = {"any", "same", NULL};
    uint64_t mode = 0, cpu = 0, switches = 1000000;
    struct flag flags[] = {
        {"mode", "what takes turns: two tasks on one loop, or two threads", &mode, 0, 0,
         .words = modes},
        {"switches", "hand-offs in all (even)", &switches, 2, 1000000000, .words = NULL},
        {"cpus", "threads only: where the scheduler may run them", &cpu, 0, 0, .words = cpus},
    };
    int rc = PARSE_FLAGS(
        argc, argv, "A ping-pong between two tasks or two threads. Prints one JSON line.", flags);
    if (rc >= 0)
        return rc;
    switches -= switches % 2;
    int pin = -1;
    if (cpu == 1) {
        cpu_set_t allowed;
        CL_SYS(sched_getaffinity(0, sizeof allowed, &allowed));
        for (int c = 0; c < CPU_SETSIZE && pin < 0; c++)
            if (CPU_ISSET(c, &allowed))
                pin = c;
    }
    uint64_t ns = mode == 0 ? tasks_ns(switches) : threads_ns(switches, pin);

    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "program", "loop-switch");
    cl_json_str(&j, "mode", modes[mode]);
    if (mode == 1)
        cl_json_str(&j, "cpus", cpus[cpu]);
    cl_json_uint(&j, "switches", switches);
    cl_json_real(&j, "seconds", cl_seconds(ns));
    cl_json_real(&j, "ns_per_switch", (double)ns / (double)switches);
    cl_json_end(&j);
    return CL_EXIT_OK;
}
