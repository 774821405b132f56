#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sink {
    int fd; /* -1 once at EOF */
    char *buf;
    size_t len;
};

static void drain(struct sink *s)
{
    char tmp[4096];
    ssize_t n = read(s->fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        close(s->fd);
        s->fd = -1;
        return;
    }
    size_t keep = (size_t)n;
    if (keep > CHILD_BUF - 1 - s->len)
        keep = CHILD_BUF - 1 - s->len;
    memcpy(s->buf + s->len, tmp, keep);
    s->len += keep;
    s->buf[s->len] = '\0';
}

void run_child(int (*fn)(void *arg), void *arg, double limit_s, struct child *c)
{
    memset(c, 0, sizeof *c);
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        fail_msg("pipe2: %s", strerror(errno));
    fflush(stdout); /* or the child flushes our buffered output a second time */
    fflush(stderr);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        /* cmocka's handlers would longjmp back into the test runner: a crash in
         * the child must end the child. */
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], SIG_DFL);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]);
        close(out[1]);
        close(err[0]);
        close(err[1]);
        /* exit, not _exit: a sanitizer's exit-time checks and status apply. */
        exit(fn(arg));
    }
    setpgid(pid, pid); /* also here, so a kill below cannot miss the group */
    close(out[1]);
    close(err[1]);

    struct sink sinks[2] = {{out[0], c->out, 0}, {err[0], c->err, 0}};
    double deadline = t0 + limit_s;
    bool reaped = false;
    for (;;) {
        if (!reaped) {
            pid_t r = waitpid(pid, &c->status, WNOHANG);
            if (r == pid) {
                reaped = true;
                c->elapsed_s = now_s() - t0;
            }
        }
        if (reaped && sinks[0].fd < 0 && sinks[1].fd < 0)
            break;
        double left = deadline - now_s();
        if (left <= 0)
            break;
        struct pollfd pfd[2];
        nfds_t n = 0;
        for (int i = 0; i < 2; i++)
            if (sinks[i].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = sinks[i].fd, .events = POLLIN};
        /* Wake often enough to notice the exit even while a pipe stays open. */
        int ms = left < 0.01 ? 1 : 10;
        if (poll(pfd, n, ms) > 0)
            for (nfds_t k = 0; k < n; k++)
                if (pfd[k].revents != 0)
                    for (int i = 0; i < 2; i++)
                        if (sinks[i].fd == pfd[k].fd)
                            drain(&sinks[i]);
    }
    if (!reaped) {
        /* The group leader is not reaped yet, so the group is still ours. */
        c->timed_out = true;
        kill(-pid, SIGKILL);
        while (waitpid(pid, &c->status, 0) == -1 && errno == EINTR)
            ;
        c->elapsed_s = now_s() - t0;
    }
    for (int i = 0; i < 2; i++)
        if (sinks[i].fd >= 0)
            close(sinks[i].fd);
}

/* cmocka truncates long messages: print the child's output in full first. */
static void dump(const struct child *c)
{
    fprintf(stderr, "child stdout:\n%s\nchild stderr:\n%s\n", c->out, c->err);
}

void assert_child_status(const struct child *c, int code)
{
    if (c->timed_out) {
        dump(c);
        fail_msg("child timed out after %.1f s", c->elapsed_s);
    }
    if (WIFSIGNALED(c->status)) {
        dump(c);
        fail_msg("child killed by signal %d", WTERMSIG(c->status));
    }
    if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != code) {
        dump(c);
        fail_msg("child exit %d, expected %d", WEXITSTATUS(c->status), code);
    }
}

bool sanitizer_report(const char *text)
{
    static const char *const reports[] = {"ThreadSanitizer", "AddressSanitizer", "LeakSanitizer",
                                          "runtime error:"};
    for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++)
        if (strstr(text, reports[i]) != NULL)
            return true;
    return false;
}

void assert_child_exit(const struct child *c, int code)
{
    assert_child_status(c, code);
    /* A report from a child (or its children) that ended with _exit changes no
     * exit status: look for one in what it wrote. */
    if (sanitizer_report(c->err)) {
        dump(c);
        fail_msg("sanitizer report from the child");
    }
}

size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n')
            n++;
    return n;
}

/* JSON syntax (RFC 8259), recursive descent; returns the end of the value or NULL. */
static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) /* includes the NUL at the end of the input */
            return NULL;
        if (c != '\\') {
            p++;
            continue;
        }
        p++;
        if (*p != '\0' && strchr("\"\\/bfnrt", *p) != NULL) {
            p++;
        } else if (*p == 'u') {
            p++;
            for (int i = 0; i < 4; i++, p++)
                if (*p == '\0' || strchr("0123456789abcdefABCDEF", *p) == NULL)
                    return NULL;
        } else {
            return NULL;
        }
    }
    return p + 1;
}

static const char *number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (is_digit(*p))
        while (is_digit(*p))
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return NULL;
        while (is_digit(*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return NULL;
        while (is_digit(*p))
            p++;
    }
    return p;
}

static const char *value(const char *p, int depth);

static const char *members(const char *p, int depth, char close, bool keyed)
{
    p = ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (keyed) {
            if ((p = string(p)) == NULL)
                return NULL;
            p = ws(p);
            if (*p++ != ':')
                return NULL;
        }
        if ((p = value(ws(p), depth + 1)) == NULL)
            return NULL;
        p = ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
        p = ws(p);
    }
}

static const char *value(const char *p, int depth)
{
    if (depth > 64)
        return NULL;
    switch (*p) {
    case '{':
        return members(p, depth, '}', true);
    case '[':
        return members(p, depth, ']', false);
    case '"':
        return string(p);
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return number(p);
    }
}

bool json_valid(const char *s)
{
    const char *p = value(ws(s), 0);
    return p != NULL && *ws(p) == '\0';
}

bool json_get(const char *json, const char *key, char *out, size_t len)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p == NULL || len == 0)
        return false;
    p += strlen(pat);
    const char *end;
    if (*p == '"') {
        p++;
        for (end = p; *end != '\0' && *end != '"'; end++)
            if (*end == '\\' && end[1] != '\0')
                end++;
    } else {
        end = p + strcspn(p, ",}]\n");
    }
    size_t n = (size_t)(end - p) < len - 1 ? (size_t)(end - p) : len - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

int unit_main(int argc, char **argv, const char *group, const struct CMUnitTest *tests,
              size_t ntests)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    return _cmocka_run_group_tests(group, tests, ntests, NULL, NULL);
}
