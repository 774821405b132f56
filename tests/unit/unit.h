/* Shared helpers for the cmocka unit tests: bounded forked children, string
 * assertions, a small JSON syntax checker, and the main() of each test group.
 */
#ifndef UNIT_H
#define UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* What a forked child did. Output past the buffers is read and dropped. */
#define CHILD_BUF 65536
struct child {
    int status;     /* from waitpid; meaningless when timed_out */
    bool timed_out; /* killed (with its process group) at the limit */
    double elapsed_s;
    char out[CHILD_BUF]; /* its stdout, NUL-terminated */
    char err[CHILD_BUF]; /* its stderr, NUL-terminated */
};

/* Run fn(arg) in a forked child, in a process group of its own, with stdout and
 * stderr on pipes; the child exit()s with fn's return value, so a sanitizer's
 * exit-time checks and exit status apply to it. Waits at most
 * limit_s, then SIGKILLs the group. Never hangs. Fork before this process has
 * started any thread (ThreadSanitizer and fork do not mix). */
void run_child(int (*fn)(void *arg), void *arg, double limit_s, struct child *c);

/* Asserts the child exited (not killed, not timed out) with this status. */
void assert_child_status(const struct child *c, int code);
/* The same, and that its stderr holds no sanitizer report. */
void assert_child_exit(const struct child *c, int code);
bool sanitizer_report(const char *text);

double now_s(void);

bool json_valid(const char *s); /* exactly one JSON value, then only whitespace */
/* The raw value of the first "key": in json (a string without its quotes). */
bool json_get(const char *json, const char *key, char *out, size_t len);
size_t count_lines(const char *s);

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *hay_ = (hay), *needle_ = (needle);                                             \
        if (strstr(hay_, needle_) == NULL)                                                         \
            fail_msg("expected to find \"%s\" in:\n%s", needle_, hay_);                            \
    } while (0)

#define assert_not_contains(hay, needle)                                                           \
    do {                                                                                           \
        const char *hay_ = (hay), *needle_ = (needle);                                             \
        if (strstr(hay_, needle_) != NULL)                                                         \
            fail_msg("did not expect \"%s\" in:\n%s", needle_, hay_);                              \
    } while (0)

#define assert_json_field(json, key, want)                                                         \
    do {                                                                                           \
        char got_[256];                                                                            \
        if (!json_get((json), (key), got_, sizeof got_))                                           \
            fail_msg("no \"%s\" in %s", (key), (json));                                            \
        assert_string_equal(got_, (want));                                                         \
    } while (0)

/* Runs one group of tests, named after the module. */
int unit_main(int argc, char **argv, const char *group, const struct CMUnitTest *tests,
              size_t ntests);

#define UNIT_MAIN(group, tests)                                                                    \
    unit_main(argc, argv, (group), (tests), sizeof(tests) / sizeof((tests)[0]))

#endif
