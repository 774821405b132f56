/* The watchdog: a thread of its own that notices when the workers stop making
 * progress, says what it knows, and ends the process. It works when every worker
 * is blocked, because it shares no lock with them. */
#ifndef CL_WATCHDOG_H
#define CL_WATCHDOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct cl_watchdog_cfg {
    double timeout_s;                  /* no progress for this long is a hang */
    uint64_t (*progress)(void *arg);   /* completed operations so far */
    void (*report)(int fd, void *arg); /* who holds what, who waits for what */
    /* What a hang does after the report; NULL means _exit(CL_EXIT_HANG).
     * Tests replace it. */
    void (*fire)(void *arg);
    /* Polled too, so Ctrl-C is answered within a poll period; NULL to ignore. */
    bool (*interrupted)(void *arg);
    void (*on_interrupt)(void *arg);
    void *arg;
    int fd; /* where the report goes */
};

struct cl_watchdog {
    struct cl_watchdog_cfg cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    bool fired;
};

void cl_watchdog_start(struct cl_watchdog *wd, const struct cl_watchdog_cfg *cfg);

/* Stop and join the watchdog. Returns whether it fired. */
bool cl_watchdog_stop(struct cl_watchdog *wd);

#endif
