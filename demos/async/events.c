/* async, tasks that wait for each other: an Event, a bounded buffer on one
 * Condition that loses a wake-up on a single thread, and a Queue whose join()
 * never returns because its stop items are never marked done. */
#include "async.h"

/* A task that counts across its awaits: the count lives in its frame. */
struct counting {
    struct cl_task task;
    intptr_t i;
};

/* Which callback of the loop this is: consecutive numbers mean one batch. */
static uint64_t step_now(const struct cl_run *run)
{
    return atomic_load_explicit(&run->workers[0].progress, memory_order_relaxed);
}

/* ---- event: 3 waiters and a setter; then a handshake of two events ---------------- */

static struct {
    const struct cl_run *run;
    struct cl_aevent start, data_ready, processed;
    uint64_t set_step, woke_step[3];
    int woke, before_set;
    intptr_t data, consumed[4];
    int nconsumed;
    bool end_seen;
} ev;

/* [snippet event] */
static int event_waiter_run(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_EVENT_WAIT(t, &ev.start); /* await event.wait() */
    ev.before_set += ev.set_step == 0;
    ev.woke_step[ev.woke++] = step_now(ev.run);
    CL_END(t);
}

static int setter_run(struct cl_task *t)
{
    CL_BEGIN(t);
    CL_SLEEP(t, unit_ns);
    ev.set_step = step_now(ev.run);
    cl_aevent_set(&ev.start); /* wakes every waiter, in one batch */
    CL_END(t);
}
/* [end event] */

/* [snippet handshake] */
static int producer_run(struct cl_task *t)
{
    struct counting *p = (struct counting *)t;
    CL_BEGIN(t);
    for (p->i = 0; p->i < 3; p->i++) {
        CL_SLEEP(t, ns_of(0.5)); /* make an item */
        ev.data = p->i;
        cl_aevent_set(&ev.data_ready);
        CL_EVENT_WAIT(t, &ev.processed); /* until the consumer says it is done */
        cl_aevent_clear(&ev.processed);
    }
    ev.data = -1; /* the end */
    cl_aevent_set(&ev.data_ready);
    CL_END(t);
}

static int consumer_run(struct cl_task *t)
{
    CL_BEGIN(t);
    for (;;) {
        CL_EVENT_WAIT(t, &ev.data_ready);
        cl_aevent_clear(&ev.data_ready);
        if (ev.data < 0)
            break;
        ev.consumed[ev.nconsumed++] = ev.data;
        CL_SLEEP(t, ns_of(0.3)); /* process it */
        cl_aevent_set(&ev.processed);
    }
    ev.end_seen = true;
    CL_END(t);
}
/* [end handshake] */

static void no_init(struct cl_task *t, int i)
{
    (void)t;
    (void)i;
}

void run_event(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    ev.run = run;
    cl_aevent_init(&ev.start, loop, "the start");
    cl_aevent_init(&ev.data_ready, loop, "data ready");
    cl_aevent_init(&ev.processed, loop, "data processed");
    struct cl_future *waiters =
        gather_of(loop, event_waiter_run, sizeof(struct cl_task), "waiter", 3, no_init);
    struct cl_task *setter = cl_task_new(loop, setter_run, sizeof(struct cl_task), "setter");
    loop_run_until(loop, waiters);
    struct cl_task *p = cl_task_new(loop, producer_run, sizeof(struct counting), "producer");
    struct cl_task *c = cl_task_new(loop, consumer_run, sizeof(struct cl_task), "consumer");
    loop_run_until(loop, &c->fut);
    cl_future_unref(waiters);
    cl_future_unref(&setter->fut);
    cl_future_unref(&p->fut);
    cl_future_unref(&c->fut);
    loop_close(loop);
}

static void judge_event(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    bool together = ev.woke == 3 && ev.before_set == 0 && ev.woke_step[1] == ev.woke_step[0] + 1 &&
                    ev.woke_step[2] == ev.woke_step[0] + 2;
    bool handshake = ev.nconsumed == 3 && ev.consumed[0] == 0 && ev.consumed[1] == 1 &&
                     ev.consumed[2] == 2 && ev.end_seen;
    res->exact = together && handshake;
    res->ops = 6;
    cl_verdict(res, "set once: %d waiters woke %s; the handshake passed %d items in order%s",
               ev.woke, together ? "together, in the callbacks right after" : "NOT together",
               ev.nconsumed, ev.end_seen ? ", then the end" : "");
}

const struct family event_f = {judge_event};

/* ---- condition-signal: capacity 1, one Condition, notify() ------------------------------ */

static struct {
    struct cl_alock lock;
    struct cl_acond changed; /* "not empty or not full": one condition for both */
    intptr_t item;
    int len, got;
} buf;

/* [snippet condition-signal] */
struct party {
    struct cl_task task;
    int i;
};

static int put_twice(struct cl_task *t)
{
    struct party *p = (struct party *)t;
    CL_BEGIN(t);
    for (p->i = 0; p->i < 2; p->i++) {
        CL_LOCK(t, &buf.lock); /* async with condition: */
        while (buf.len == 1)
            CL_COND_WAIT(t, &buf.changed); /* full: wait */
        buf.item = p->i;
        buf.len = 1;
        cl_acond_notify(&buf.changed, 1); /* wake ONE waiter: a consumer, we hope */
        cl_alock_release(&buf.lock);
    }
    CL_END(t);
}

static int get_twice(struct cl_task *t)
{
    struct party *p = (struct party *)t;
    CL_BEGIN(t);
    for (p->i = 0; p->i < 2; p->i++) {
        CL_LOCK(t, &buf.lock);
        while (buf.len == 0)
            CL_COND_WAIT(t, &buf.changed); /* empty: wait */
        buf.len = 0;
        buf.got++;
        cl_acond_notify(&buf.changed, 1); /* wake ONE waiter: a producer, we hope */
        cl_alock_release(&buf.lock);
    }
    CL_END(t);
}
/* [end condition-signal] */

void run_condition_signal(struct cl_run *run)
{
    struct cl_loop *loop = loop_open(run);
    cl_alock_init(&buf.lock, loop, "the buffer's lock");
    cl_acond_init(&buf.changed, &buf.lock, "not empty or not full");
    /* The order forces the hang: two consumers wait first. The first put wakes
     * consumer 1, but producer 1 takes the lock back before it runs, finds the
     * buffer full and waits; so does producer 2. Consumer 1 empties the buffer
     * and its notify(1) wakes consumer 2, the first waiter, not a producer;
     * consumer 2 finds it empty and waits again. All four wait. */
    struct cl_future *futs[4];
    const char *names[] = {"consumer 1", "consumer 2", "producer 1", "producer 2"};
    for (int i = 0; i < 4; i++)
        futs[i] =
            &cl_task_new(loop, i < 2 ? get_twice : put_twice, sizeof(struct party), names[i])->fut;
    struct cl_future *all = cl_gather_new(loop, futs, 4, 0);
    loop_run_until(loop, all); /* hangs here, until the watchdog */
    for (int i = 0; i < 4; i++)
        cl_future_unref(futs[i]);
    cl_future_unref(all);
    loop_close(loop);
}

static void judge_condition(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    res->exact = buf.got == 4;
    res->ops = 4;
    cl_verdict(res, "no lost wake-up this time: %d of 4 items got", buf.got);
}

const struct family condition_f = {judge_condition};

/* ---- queue-join: 10 items, 3 consumers, a stop item -------------------------------------- */

#define ITEMS 10
#define STOP  (-1)

static struct {
    struct cl_aqueue q;
    bool ack_stop; /* the fix: task_done for the stop item too */
    int processed[ITEMS];
    bool joined;
} jq;

/* [snippet queue-join] */
struct consumer {
    struct cl_task task;
    intptr_t item;
};

static int queue_consumer_run(struct cl_task *t)
{
    struct consumer *c = (struct consumer *)t;
    CL_BEGIN(t);
    for (;;) {
        CL_QUEUE_GET(t, &jq.q, c->item); /* item = await queue.get() */
        if (c->item == STOP)
            break; /* the bug: the stop item is never marked done */
        jq.processed[c->item]++;
        CL_SLEEP(t, ns_of(0.2));
        cl_aqueue_task_done(&jq.q);
    }
    if (jq.ack_stop)
        cl_aqueue_task_done(&jq.q); /* the fix: every get gets its task_done */
    CL_END(t);
}

static int queue_main_run(struct cl_task *t)
{
    struct counting *m = (struct counting *)t;
    CL_BEGIN(t);
    for (m->i = 0; m->i < ITEMS; m->i++) {
        CL_QUEUE_PUT(t, &jq.q, m->i);
        CL_SLEEP(t, ns_of(0.1));
    }
    for (m->i = 0; m->i < 3; m->i++)
        CL_QUEUE_PUT(t, &jq.q, STOP); /* one per consumer */
    CL_QUEUE_JOIN(t, &jq.q);          /* await queue.join(): until every item is done */
    jq.joined = true;
    CL_END(t);
}
/* [end queue-join] */

static void queue_join(struct cl_run *run, bool ack_stop)
{
    struct cl_loop *loop = loop_open(run);
    cl_aqueue_init(&jq.q, loop, 10, "an item");
    jq.ack_stop = ack_stop;
    struct cl_future *consumers =
        gather_of(loop, queue_consumer_run, sizeof(struct consumer), "consumer", 3, no_init);
    struct cl_task *boss = cl_task_new(loop, queue_main_run, sizeof(struct counting), "main");
    loop_run_until(loop, &boss->fut); /* the bug hangs here, until the watchdog */
    loop_run_until(loop, consumers);
    cl_future_unref(&boss->fut);
    cl_future_unref(consumers);
    loop_close(loop);
    cl_aqueue_free(&jq.q);
}

void run_queue_join(struct cl_run *run)
{
    queue_join(run, false);
}

void run_queue_join_fixed(struct cl_run *run)
{
    queue_join(run, true);
}

static void judge_queue_join(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    int once = 0;
    for (int i = 0; i < ITEMS; i++)
        once += jq.processed[i] == 1;
    res->exact = jq.joined && once == ITEMS;
    res->ops = ITEMS;
    cl_verdict(res, "%d items processed once each, and join() returned%s", once,
               jq.joined ? "" : " NOT");
}

const struct family queue_join_f = {judge_queue_join};
