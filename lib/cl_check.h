/* Checked calls: a failure dies with file:line, the call and strerror.
 * Never assert(): NDEBUG would remove the call itself. */
#ifndef CL_CHECK_H
#define CL_CHECK_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

_Noreturn void cl_die(const char *file, int line, const char *call, int err);

/* A programming error that is not a failed call (a capacity of lib exceeded):
 * one line on stderr, then abort(). */
_Noreturn __attribute__((format(printf, 1, 2))) void cl_fatal(const char *fmt, ...);

/* Run fn(arg) when this process ends, however it ends: after a run's teardown,
 * or before a hang, Ctrl-C, a refused resource or cl_die ends it. Runs once, the
 * latest first; fn must take no lock a stuck worker may hold (kill, unlink and
 * shm_unlink are fine). At most CL_ON_EXIT_MAX; more is a cl_fatal. */
#define CL_ON_EXIT_MAX 16
void cl_on_exit(void (*fn)(void *arg), void *arg);

/* Run the cl_on_exit functions now (once; a second call returns at once). */
void cl_exit_cleanup(void);

/* In a forked child: forget the parent's exit functions (its files and
 * children are not the child's to remove). */
void cl_exit_cleanup_forget(void);

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

/* A system call retried while a signal interrupts it (EINTR); its result. */
#define CL_RETRY(call)                                                                             \
    __extension__({                                                                                \
        long cl_r_;                                                                                \
        do                                                                                         \
            cl_r_ = (long)(call);                                                                  \
        while (cl_r_ == -1 && errno == EINTR);                                                     \
        cl_r_;                                                                                     \
    })

/* The same, dying on any other failure (CL_SYS); its result. */
#define CL_SYS_RETRY(call)                                                                         \
    __extension__({                                                                                \
        long cl_s_ = CL_RETRY(call);                                                               \
        if (cl_s_ == -1)                                                                           \
            cl_die(__FILE__, __LINE__, #call, errno);                                              \
        cl_s_;                                                                                     \
    })

/* pthread_barrier_wait, checked: true in the one thread that gets
 * PTHREAD_BARRIER_SERIAL_THREAD (libuv's uv_barrier_wait does the same). */
bool cl_pthread_barrier_wait(pthread_barrier_t *b);

/* calloc that dies instead of returning NULL. */
void *cl_xcalloc(size_t n, size_t size);

/* Zeroed memory for n objects of `size` bytes aligned to `align` (a cache line,
 * say), rounded up to a whole number of alignments; dies instead of NULL. */
void *cl_xaligned_calloc(size_t align, size_t n, size_t size);

/* Keeps the compiler from merging or hoisting memory accesses across this point,
 * so a loop body really loads and stores every iteration at -O2. It emits no
 * instruction and orders nothing between threads. */
#define cl_compiler_barrier() __asm__ __volatile__("" ::: "memory")

/* One turn of a spin-wait loop: tells an x86 core it is spinning (pause), so a
 * sibling hyperthread gets the pipeline; elsewhere only a compiler barrier. */
static inline void cl_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    cl_compiler_barrier();
#endif
}

#endif
