#include "cl_watchdog.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_cli.h"
#include "cl_time.h"

/* Look at least this often, so Ctrl-C is answered well within a second. */
#define POLL_NS 100000000ull

static void *watch(void *arg)
{
    struct cl_watchdog *wd = arg;
    const struct cl_watchdog_cfg *cfg = &wd->cfg;
    uint64_t timeout_ns = (uint64_t)(cfg->timeout_s * 1e9);
    uint64_t poll_ns = timeout_ns / 4 < POLL_NS ? timeout_ns / 4 + 1 : POLL_NS;
    uint64_t last = cfg->progress(cfg->arg);
    uint64_t last_change = cl_now_ns();

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
        uint64_t now = cl_now_ns(), done = cfg->progress(cfg->arg);
        if (done != last) {
            last = done;
            last_change = now;
        } else if (now - last_change >= timeout_ns) {
            wd->fired = true;
            dprintf(cfg->fd, "watchdog: no progress for %.2f s (%llu operations done)\n",
                    cl_seconds(now - last_change), (unsigned long long)done);
            if (cfg->report != NULL)
                cfg->report(cfg->fd, cfg->arg);
            if (cfg->fire == NULL)
                _exit(CL_EXIT_HANG);
            cfg->fire(cfg->arg);
            break;
        }
    }
    CL_PT(pthread_mutex_unlock(&wd->mu));
    return NULL;
}

void cl_watchdog_start(struct cl_watchdog *wd, const struct cl_watchdog_cfg *cfg)
{
    *wd = (struct cl_watchdog){.cfg = *cfg};
    CL_PT(cl_cond_init_monotonic(&wd->cv));
    CL_PT(pthread_mutex_init(&wd->mu, NULL));
    CL_PT(pthread_create(&wd->thread, NULL, watch, wd));
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
