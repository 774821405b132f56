/* hybrid, message-bus: plain threads (handlers) ask async backends on the loop
 * and wait for the answer with a timeout. Requests travel on lib's two-sided
 * queue; each reply goes to the slot of its request's id, so a reply that comes
 * after its handler gave up finds no one waiting and is dropped, never handed
 * to the handler's next request. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "hybrid.h"

#define HANDLERS 3
#define SLOW_ID  1 /* this request's backend answers after its handler gave up */

static struct {
    struct cl_bqueue q;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct slot {
        bool waiting, replied;
        intptr_t value;
    } * slot; /* by request id */
    int requests;
    _Atomic int replies, timeouts, late, mismatched, backends_done;
} bus = {.mu = PTHREAD_MUTEX_INITIALIZER};

static intptr_t answer(intptr_t id)
{
    return id * 7 + 1;
}

/* ---- the loop's side ---- */

struct backend {
    struct cl_task task;
    intptr_t id;
};

/* [snippet bus-reply] */
static int backend_run(struct cl_task *t)
{
    struct backend *b = (struct backend *)t;
    CL_BEGIN(t);
    /* 0.1 to 0.28 units, against a handler's patience of 2; the slow one, 4 */
    CL_SLEEP(t,
             b->id == SLOW_ID ? 4 * unit_ns : unit_ns / 10 + (uint64_t)(b->id % 10) * unit_ns / 50);
    CL_PT(pthread_mutex_lock(&bus.mu));
    struct slot *s = &bus.slot[b->id];
    if (s->waiting) { /* its handler still waits for this very id */
        s->value = answer(b->id);
        s->replied = true;
        CL_PT(pthread_cond_broadcast(&bus.cond));
    } else {
        atomic_fetch_add(&bus.late, 1); /* it gave up: drop the reply */
    }
    CL_PT(pthread_mutex_unlock(&bus.mu));
    atomic_fetch_add(&bus.backends_done, 1);
    CL_END(t);
}
/* [end bus-reply] */

struct dispatcher {
    struct cl_task task;
    intptr_t id;
    struct cl_future *wait;
    int err;
};

static int dispatcher_run(struct cl_task *t)
{
    struct dispatcher *d = (struct dispatcher *)t;
    CL_BEGIN(t);
    for (;;) {
        CL_BQUEUE_GET(t, &bus.q, d->id, d->wait, d->err);
        if (d->err != 0)
            break; /* closed and drained */
        struct backend *b =
            (struct backend *)cl_task_new(t->fut.loop, backend_run, sizeof *b, "backend");
        b->id = d->id;
        cl_future_unref(&b->task.fut); /* fire and forget: the loop holds it while it runs */
    }
    while (atomic_load(&bus.backends_done) < bus.requests)
        CL_SLEEP(t, CL_MS(1)); /* the late replies too */
    CL_END(t);
}

/* ---- the handlers' side ---- */

/* [snippet bus-ask] */
static void *handler(void *arg)
{
    intptr_t h = (intptr_t)arg;
    for (intptr_t id = h; id < bus.requests; id += HANDLERS) {
        CL_PT(pthread_mutex_lock(&bus.mu));
        bus.slot[id].waiting = true;
        CL_PT(pthread_mutex_unlock(&bus.mu));
        CL_PT(cl_bqueue_put(&bus.q, id, CL_FOREVER)); /* a blocking put, from a thread */
        struct timespec until = cl_deadline_ns(2 * unit_ns);
        int rc = 0;
        CL_PT(pthread_mutex_lock(&bus.mu));
        while (!bus.slot[id].replied && rc == 0)
            rc = pthread_cond_timedwait(&bus.cond, &bus.mu, &until);
        bus.slot[id].waiting = false; /* from now on, a reply to this id is dropped */
        if (bus.slot[id].replied) {
            atomic_fetch_add(&bus.replies, 1);
            if (bus.slot[id].value != answer(id))
                atomic_fetch_add(&bus.mismatched, 1);
        } else {
            atomic_fetch_add(&bus.timeouts, 1);
        }
        CL_PT(pthread_mutex_unlock(&bus.mu));
    }
    return NULL;
}
/* [end bus-ask] */

static void *loop_main(void *arg)
{
    cl_loop_run(arg);
    return NULL;
}

void run_message_bus(struct cl_run *run)
{
    bus.requests = (int)cl_param(run, ITEMS);
    bus.slot = calloc((size_t)bus.requests, sizeof *bus.slot);
    if (bus.slot == NULL)
        cl_fatal("hybrid: out of memory");
    CL_PT(cl_cond_init_monotonic(&bus.cond));
    struct cl_loop *loop = loop_open(run, NULL);
    CL_PT(cl_bqueue_init(&bus.q, loop, 8));
    cl_loop_hold(loop);
    pthread_t lt, ht[HANDLERS];
    CL_PT(pthread_create(&lt, NULL, loop_main, loop));
    struct cl_xfuture *d = cl_run_coro_threadsafe(loop, dispatcher_run, sizeof(struct dispatcher),
                                                  "dispatcher", NULL, NULL);
    for (intptr_t h = 0; h < HANDLERS; h++)
        CL_PT(pthread_create(&ht[h], NULL, handler, (void *)h));
    for (int h = 0; h < HANDLERS; h++)
        CL_PT(pthread_join(ht[h], NULL));
    cl_bqueue_close(&bus.q);
    if (cl_xfuture_wait(d, CL_FOREVER, NULL, NULL) != CL_POOL_OK)
        cl_fatal("hybrid: the dispatcher failed");
    cl_xfuture_release(d);
    cl_loop_release(loop);
    cl_loop_stop(loop);
    CL_PT(pthread_join(lt, NULL));
    cl_bqueue_destroy(&bus.q);
    loop_close(loop);
    CL_PT(pthread_cond_destroy(&bus.cond));
    free(bus.slot);
}

static void judge_bus(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    int replies = atomic_load(&bus.replies), timeouts = atomic_load(&bus.timeouts);
    int late = atomic_load(&bus.late), bad = atomic_load(&bus.mismatched);
    bool slow = bus.requests > SLOW_ID;
    res->exact = bad == 0 && replies + timeouts == bus.requests && timeouts == (slow ? 1 : 0) &&
                 late == timeouts;
    res->ops = (uint64_t)bus.requests;
    cl_metric_int(res, "requests", bus.requests);
    cl_metric_int(res, "replies", replies);
    cl_metric_int(res, "timeouts", timeouts);
    cl_metric_int(res, "late_dropped", late);
    cl_metric_int(res, "mismatched", bad);
    cl_verdict(res,
               "%d requests from %d threads to async backends: %d answered by id, %d timed out, "
               "%d late reply dropped, %d delivered to the wrong request",
               bus.requests, HANDLERS, replies, timeouts, late, bad);
}

const struct family bus_f = {judge_bus};
