#include "cl_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void cl_die(const char *file, int line, const char *call, int err)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, call, strerror(err));
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
