#include "cl_check.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    void (*fn)(void *arg);
    void *arg;
} on_exit_fns[CL_ON_EXIT_MAX];
static _Atomic int n_on_exit;
static atomic_flag cleaned = ATOMIC_FLAG_INIT;

void cl_on_exit(void (*fn)(void *arg), void *arg)
{
    int i = atomic_load(&n_on_exit);
    if (i == CL_ON_EXIT_MAX)
        cl_fatal("cl_on_exit: more than %d exit functions", CL_ON_EXIT_MAX);
    on_exit_fns[i].fn = fn;
    on_exit_fns[i].arg = arg;
    atomic_store(&n_on_exit, i + 1); /* release: a watchdog sees the whole entry */
}

void cl_exit_cleanup(void)
{
    if (atomic_flag_test_and_set(&cleaned))
        return;
    for (int i = atomic_load(&n_on_exit) - 1; i >= 0; i--)
        on_exit_fns[i].fn(on_exit_fns[i].arg);
}

void cl_exit_cleanup_forget(void)
{
    atomic_store(&n_on_exit, 0);
}

_Noreturn void cl_die(const char *file, int line, const char *call, int err)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, call, strerror(err));
    cl_exit_cleanup();
    abort();
}

_Noreturn void cl_fatal(const char *fmt, ...)
{
    fflush(stdout);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cl_exit_cleanup();
    abort();
}

void *cl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        cl_die(__FILE__, __LINE__, "calloc", errno);
    return p;
}

void *cl_xaligned_calloc(size_t align, size_t n, size_t size)
{
    size_t bytes = (n * size + align - 1) / align * align;
    void *p = aligned_alloc(align, bytes);
    if (p == NULL)
        cl_die(__FILE__, __LINE__, "aligned_alloc", errno);
    return memset(p, 0, bytes);
}

bool cl_pthread_barrier_wait(pthread_barrier_t *b)
{
    int rc = pthread_barrier_wait(b);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        cl_die(__FILE__, __LINE__, "pthread_barrier_wait", rc);
    return rc == PTHREAD_BARRIER_SERIAL_THREAD;
}
