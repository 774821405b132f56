/* The watchdog: a thread of its own that notices when the workers stop making
 * progress, says what it knows, and ends the process. It works when every worker
 * is blocked, because it shares no lock with them. It also notices starvation:
 * one role of workers standing still while others go on. */
#ifndef CL_WATCHDOG_H
#define CL_WATCHDOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define CL_WATCHDOG_MAX_ROLES 8

struct cl_watchdog_cfg {
    double timeout_s;                  /* no progress for this long is a hang */
    uint64_t (*progress)(void *arg);   /* completed operations so far, in all */
    void (*report)(int fd, void *arg); /* who holds what, who waits for what */
    /* Roles (0 for none): role_progress gives a role's operations so far and
     * whether any of its workers is still unfinished (a finished role is never
     * starving). A role that stands still for timeout_s while the total moves
     * is reported through starved, then fire runs. */
    int nroles;
    bool (*role_progress)(void *arg, int role, uint64_t *done);
    void (*starved)(int fd, void *arg, int role, double idle_s);
    /* What a hang does after the report; NULL means _exit(CL_EXIT_HANG).
     * Tests replace it. */
    void (*fire)(void *arg);
    /* Polled too, so Ctrl-C is answered within a poll period; NULL to ignore. */
    bool (*interrupted)(void *arg);
    void (*on_interrupt)(void *arg);
    void *arg;
    int fd;        /* where the report goes */
    bool disarmed; /* start without watching progress (cl_watchdog_arm) */
};

struct cl_watchdog {
    struct cl_watchdog_cfg cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    bool fired;
    _Atomic bool armed;   /* progress is watched only while armed */
    _Atomic bool rearmed; /* armed again: start the clocks afresh */
};

void cl_watchdog_start(struct cl_watchdog *wd, const struct cl_watchdog_cfg *cfg);

/* Watch progress (a run's threaded part), or only Ctrl-C (setup, check, the
 * output: phases that may legitimately take a while without counting). */
void cl_watchdog_arm(struct cl_watchdog *wd, bool armed);

/* Stop and join the watchdog. Returns whether it fired. */
bool cl_watchdog_stop(struct cl_watchdog *wd);

#endif
