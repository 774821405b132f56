#include "cl_sched.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cl_time.h"

enum { STAT, WCHAN, SYSCALL, SCHEDSTAT }; /* the files, as indices of fd[] */

int cl_sched_open(struct cl_sched_probe *p, pid_t tid)
{
    static const char *const files[CL_SCHED_FILES] = {"stat", "wchan", "syscall", "schedstat"};
    for (size_t i = 0; i < CL_SCHED_FILES; i++)
        p->fd[i] = -1;
    for (size_t i = 0; i < CL_SCHED_FILES; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/%s", (int)tid, files[i]);
        if ((p->fd[i] = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
            int err = errno;
            cl_sched_close(p);
            return err;
        }
    }
    return 0;
}

void cl_sched_close(struct cl_sched_probe *p)
{
    for (size_t i = 0; i < CL_SCHED_FILES; i++) {
        if (p->fd[i] >= 0)
            close(p->fd[i]);
        p->fd[i] = -1;
    }
}

/* The whole file, from its start (a /proc file is made anew at each read from
 * offset 0); false once the thread is gone (ESRCH) or on any error. */
static bool read_file(int fd, char *buf, size_t len)
{
    ssize_t n;
    do
        n = pread(fd, buf, len - 1, 0);
    while (n == -1 && errno == EINTR);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return true;
}

bool cl_sched_read(const struct cl_sched_probe *p, struct cl_sched_sample *s)
{
    char buf[512];
    *s = (struct cl_sched_sample){.t_ns = cl_now_ns(), .syscall = -1};
    /* "TID (comm) S ...": comm may hold spaces and parentheses, so the state
     * is the letter after the last ')' */
    if (!read_file(p->fd[STAT], buf, sizeof buf))
        return false;
    const char *close_paren = strrchr(buf, ')');
    if (close_paren == NULL || close_paren[1] != ' ')
        return false;
    s->state = close_paren[2];
    if (read_file(p->fd[WCHAN], buf, sizeof buf))
        snprintf(s->wchan, sizeof s->wchan, "%.*s", (int)strcspn(buf, "\n"), buf);
    if (read_file(p->fd[SYSCALL], buf, sizeof buf)) {
        char *end;
        long nr = strtol(buf, &end, 10); /* "running", or "-1 ..." outside a call */
        if (end != buf && nr >= 0)
            s->syscall = nr;
    }
    if (read_file(p->fd[SCHEDSTAT], buf, sizeof buf)) { /* "ON_CPU_NS QUEUED_NS SLICES" */
        char *end;
        s->cpu_ns = strtoull(buf, &end, 10);
        s->queued_ns = strtoull(end, NULL, 10);
    }
    if (s->state == 'X' || s->state == 'Z') /* dying: as good as gone */
        s->state = 0;
    return s->state != 0;
}

/* Asleep in a timed sleep: wchan names the kernel function (its name changes
 * between kernel versions, "nanosleep" stays in it); where wchan says "0" (a
 * kernel that hides it, or a reading that raced with a wake-up), the call. */
static bool in_nanosleep(const struct cl_sched_sample *s)
{
    if (strstr(s->wchan, "nanosleep") != NULL)
        return true;
    if (s->wchan[0] != '\0' && strcmp(s->wchan, "0") != 0)
        return false;
#ifdef SYS_nanosleep
    if (s->syscall == SYS_nanosleep)
        return true;
#endif
    return s->syscall == SYS_clock_nanosleep;
}

enum cl_span_kind cl_sched_kind(const struct cl_sched_sample *s)
{
    if (s->state == 0)
        return CL_SPAN_EXITED;
    if (s->state == 'R')
        return CL_SPAN_RUNNING;
    return in_nanosleep(s) ? CL_SPAN_SLEEPING : CL_SPAN_BLOCKED;
}

void cl_sched_label(const struct cl_sched_sample *s, size_t n, enum cl_span_kind *kinds)
{
    for (size_t i = 0; i < n; i++)
        kinds[i] = cl_sched_kind(&s[i]);
    for (size_t i = 1; i < n; i++) {
        if (s[i].state == 0 || s[i].queued_ns <= s[i - 1].queued_ns)
            continue;
        /* a wait of d ended before sample i: it covered the R intervals just
         * before, as far back as d reaches */
        uint64_t d = s[i].queued_ns - s[i - 1].queued_ns;
        for (size_t j = i; j-- > 0;) {
            uint64_t len = s[j + 1].t_ns - s[j].t_ns;
            if (s[j].state != 'R' || 2 * d < len)
                break;
            kinds[j] = CL_SPAN_RUNNABLE;
            if (d <= len)
                break;
            d -= len;
        }
    }
}

void cl_sched_add_spans(struct cl_trace_buf *b, const struct cl_sched_sample *s,
                        const enum cl_span_kind *kinds, size_t n, uint64_t end_ns)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && kinds[j] == kinds[i])
            j++;
        cl_trace_add(b, kinds[i], s[i].t_ns, j < n ? s[j].t_ns : end_ns);
        i = j;
    }
}
