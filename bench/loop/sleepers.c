/* loop-sleepers: N tasks on one thread, each sleeping M ms once (asyncio's
 * "100,000 waiters"). Wall time from before the first task is made to after
 * the last has finished and been freed; resident memory per task measured
 * while they all sleep (VmRSS then, less VmRSS before the first was made). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cl_check.h"
#include "cl_exit.h"
#include "cl_json.h"
#include "cl_task.h"
#include "cl_time.h"

struct sleeper {
    struct cl_task task;
    uint64_t ns;
};

static uint64_t finished;

static int sleeper_run(struct cl_task *t)
{
    struct sleeper *s = (struct sleeper *)t;
    CL_BEGIN(t);
    CL_SLEEP(t, s->ns);
    finished++;
    CL_END(t);
}

/* VmRSS: the second field of /proc/self/statm, in pages. */
static uint64_t rss_bytes(void)
{
    char buf[128] = {0}, *end;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        perror("loop-sleepers: /proc/self/statm");
        exit(CL_EXIT_REFUSED);
    }
    char *line = fgets(buf, sizeof buf, f);
    fclose(f);
    if (line == NULL) {
        fprintf(stderr, "loop-sleepers: /proc/self/statm is empty\n");
        exit(CL_EXIT_REFUSED);
    }
    strtoull(buf, &end, 10);
    uint64_t pages = strtoull(end, NULL, 10);
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    CL_SYS(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
    return (uint64_t)ts.tv_sec * CL_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Halfway through the sleep: every task has armed its timer and waits. */
struct probe {
    struct cl_timer timer;
    struct cl_loop *loop;
    uint64_t rss, sleeping;
};

static void probe_cb(struct cl_timer *t)
{
    struct probe *p = (struct probe *)t;
    p->rss = rss_bytes();
    p->sleeping = cl_task_pending(p->loop);
}

int main(int argc, char **argv)
{
    uint64_t n = 100000, ms = 100;
    struct flag flags[] = {
        {"tasks", "tasks, each sleeping once", &n, 1, 10000000, .words = NULL},
        {"sleep-ms", "how long each one sleeps", &ms, 2, 60000, .words = NULL},
    };
    int rc = PARSE_FLAGS(argc, argv,
                         "N tasks on one cl_loop thread, each sleeping once. Prints one JSON line.",
                         flags);
    if (rc >= 0)
        return rc;

    struct cl_loop *loop = cl_loop_new(NULL);
    if (loop == NULL) {
        perror("loop-sleepers: cl_loop_new");
        exit(CL_EXIT_REFUSED);
    }
    uint64_t rss0 = rss_bytes();
    uint64_t t0 = cl_now_ns(), cpu0 = cpu_ns();
    for (uint64_t i = 0; i < n; i++) {
        struct sleeper *s =
            (struct sleeper *)cl_task_new(loop, sleeper_run, sizeof(struct sleeper), "sleeper");
        s->ns = CL_MS(ms);
        cl_future_unref(&s->task.fut); /* the loop keeps it until it finishes */
    }
    struct probe p = {.timer.cb = probe_cb, .loop = loop};
    cl_timer_start(loop, &p.timer, CL_MS(ms) / 2);
    uint64_t t1 = cl_now_ns();
    cl_loop_run(loop);
    uint64_t t2 = cl_now_ns(), cpu2 = cpu_ns();
    cl_loop_free(loop);
    struct rusage ru;
    CL_SYS(getrusage(RUSAGE_SELF, &ru));
    if (finished != n || p.sleeping != n) {
        fprintf(stderr, "loop-sleepers: %llu finished, %llu asleep at half time, of %llu\n",
                (unsigned long long)finished, (unsigned long long)p.sleeping,
                (unsigned long long)n);
        return CL_EXIT_WRONG;
    }

    struct cl_json j;
    cl_json_begin(&j, stdout);
    cl_json_str(&j, "program", "loop-sleepers");
    cl_json_uint(&j, "tasks", n);
    cl_json_uint(&j, "sleep_ms", ms);
    cl_json_real(&j, "wall_s", cl_seconds(t2 - t0));
    cl_json_real(&j, "create_s", cl_seconds(t1 - t0));
    cl_json_real(&j, "cpu_s", cl_seconds(cpu2 - cpu0)); /* the wall time less the waiting */
    cl_json_real(&j, "rss_per_task_bytes", (double)(p.rss - rss0) / (double)n);
    cl_json_uint(&j, "task_frame_bytes", sizeof(struct sleeper));
    cl_json_uint(&j, "max_rss_kib", (uint64_t)ru.ru_maxrss);
    cl_json_end(&j);
    return CL_EXIT_OK;
}
