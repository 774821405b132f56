/* Checked calls: a failure dies with file:line, the call and strerror.
 * Never assert(): NDEBUG would remove the call itself. */
#ifndef CL_CHECK_H
#define CL_CHECK_H

#include <errno.h>
#include <stddef.h>

_Noreturn void cl_die(const char *file, int line, const char *call, int err);

/* For pthread_* and friends, which return the error number. */
#define CL_PT(call)                                                                                \
    do {                                                                                           \
        int cl_rc_ = (call);                                                                       \
        if (cl_rc_ != 0)                                                                           \
            cl_die(__FILE__, __LINE__, #call, cl_rc_);                                             \
    } while (0)

/* For system calls, which return -1 and set errno. */
#define CL_SYS(call)                                                                               \
    do {                                                                                           \
        if ((call) == -1)                                                                          \
            cl_die(__FILE__, __LINE__, #call, errno);                                              \
    } while (0)

/* calloc that dies instead of returning NULL. */
void *cl_xcalloc(size_t n, size_t size);

/* Zeroed memory for n objects of `size` bytes aligned to `align` (a cache line,
 * say), rounded up to a whole number of alignments; dies instead of NULL. */
void *cl_xaligned_calloc(size_t align, size_t n, size_t size);

/* Keeps the compiler from merging or hoisting memory accesses across this point,
 * so a loop body really loads and stores every iteration at -O2. It emits no
 * instruction and orders nothing between threads. */
#define cl_compiler_barrier() __asm__ __volatile__("" ::: "memory")

#endif
