#include "cl_watchdog.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_exit.h"
#include "cl_time.h"

/* Look at least this often, so Ctrl-C is answered well within a second. */
#define POLL_NS 100000000ull

/* When each count last moved. */
struct clocks {
    uint64_t total, total_at;
    uint64_t role[CL_WATCHDOG_MAX_ROLES], role_at[CL_WATCHDOG_MAX_ROLES];
};

static void restart(const struct cl_watchdog_cfg *cfg, struct clocks *c, uint64_t now)
{
    c->total = cfg->progress(cfg->arg);
    c->total_at = now;
    for (int r = 0; r < cfg->nroles; r++) {
        cfg->role_progress(cfg->arg, r, &c->role[r]);
        c->role_at[r] = now;
    }
}

/* A role that stood still for the timeout while the total moved, or -1. */
static int starving_role(const struct cl_watchdog_cfg *cfg, struct clocks *c, uint64_t now,
                         uint64_t timeout_ns)
{
    for (int r = 0; r < cfg->nroles; r++) {
        uint64_t done;
        bool active = cfg->role_progress(cfg->arg, r, &done);
        if (done != c->role[r] || !active) {
            c->role[r] = done;
            c->role_at[r] = now;
        } else if (now - c->role_at[r] >= timeout_ns && now - c->total_at < timeout_ns)
            return r;
    }
    return -1;
}

static void *watch(void *arg)
{
    struct cl_watchdog *wd = arg;
    const struct cl_watchdog_cfg *cfg = &wd->cfg;
    uint64_t timeout_ns = (uint64_t)(cfg->timeout_s * 1e9);
    uint64_t poll_ns = timeout_ns / 4 < POLL_NS ? timeout_ns / 4 + 1 : POLL_NS;
    struct clocks c;
    restart(cfg, &c, cl_now_ns());

    CL_PT(pthread_mutex_lock(&wd->mu));
    while (!wd->stopping) {
        struct timespec ts = cl_deadline_ns(poll_ns);
        int rc = pthread_cond_timedwait(&wd->cv, &wd->mu, &ts);
        if (rc != 0 && rc != ETIMEDOUT)
            CL_PT(rc);
        if (wd->stopping)
            break;
        if (cfg->interrupted != NULL && cfg->interrupted(cfg->arg))
            cfg->on_interrupt(cfg->arg);
        uint64_t now = cl_now_ns();
        bool armed = atomic_load(&wd->armed); /* before rearmed: see cl_watchdog_arm */
        if (atomic_exchange(&wd->rearmed, false))
            restart(cfg, &c, now);
        else if (!armed)
            continue;
        uint64_t done = cfg->progress(cfg->arg);
        int starved = -1;
        if (done != c.total) {
            c.total = done;
            c.total_at = now;
            starved = starving_role(cfg, &c, now, timeout_ns);
        } else if (now - c.total_at < timeout_ns) {
            starved = starving_role(cfg, &c, now, timeout_ns);
        }
        if (starved < 0 && now - c.total_at < timeout_ns)
            continue;
        wd->fired = true;
        if (starved >= 0) {
            cfg->starved(cfg->fd, cfg->arg, starved, cl_seconds(now - c.role_at[starved]));
        } else {
            dprintf(cfg->fd, "watchdog: no progress for %.2f s (%llu operations done)\n",
                    cl_seconds(now - c.total_at), (unsigned long long)done);
            if (cfg->report != NULL)
                cfg->report(cfg->fd, cfg->arg);
        }
        if (cfg->fire == NULL)
            _exit(CL_EXIT_HANG);
        cfg->fire(cfg->arg);
        break;
    }
    CL_PT(pthread_mutex_unlock(&wd->mu));
    return NULL;
}

void cl_watchdog_start(struct cl_watchdog *wd, const struct cl_watchdog_cfg *cfg)
{
    if (cfg->nroles > CL_WATCHDOG_MAX_ROLES)
        cl_fatal("cl_watchdog: %d roles, more than the %d it can watch", cfg->nroles,
                 CL_WATCHDOG_MAX_ROLES);
    *wd = (struct cl_watchdog){.cfg = *cfg};
    atomic_init(&wd->armed, !cfg->disarmed);
    atomic_init(&wd->rearmed, false);
    CL_PT(cl_cond_init_monotonic(&wd->cv));
    CL_PT(pthread_mutex_init(&wd->mu, NULL));
    CL_PT(pthread_create(&wd->thread, NULL, watch, wd));
}

/* Arming wakes the watch loop, which starts the clocks afresh at once: its polls
 * then count from the start of the run, as they did before setup existed, so a
 * stall is reported at --timeout, not up to a poll later. rearmed is set first:
 * a loop that sees armed also sees rearmed, and never counts the time spent
 * disarmed as a stall. */
void cl_watchdog_arm(struct cl_watchdog *wd, bool armed)
{
    CL_PT(pthread_mutex_lock(&wd->mu));
    if (armed)
        atomic_store(&wd->rearmed, true);
    atomic_store(&wd->armed, armed);
    CL_PT(pthread_cond_signal(&wd->cv));
    CL_PT(pthread_mutex_unlock(&wd->mu));
}

bool cl_watchdog_stop(struct cl_watchdog *wd)
{
    CL_PT(pthread_mutex_lock(&wd->mu));
    wd->stopping = true;
    CL_PT(pthread_cond_signal(&wd->cv));
    CL_PT(pthread_mutex_unlock(&wd->mu));
    CL_PT(pthread_join(wd->thread, NULL));
    CL_PT(pthread_cond_destroy(&wd->cv));
    CL_PT(pthread_mutex_destroy(&wd->mu));
    return wd->fired;
}
