/* procs: shm-vs-copy. An array of --mib MiB of int32 is doubled by a child
 * process and comes back, --iters times each way, in turns:
 *   copy: through pipes, as a multiprocessing.Queue or Pipe moves it: written to
 *         the child, doubled there, written back;
 *   shm:  in a shared-memory object (shm_open + mmap) that both processes map:
 *         the child doubles it in place, and only a byte goes through a pipe.
 * Beside them, one memcpy of the array in this process: the memory floor. A
 * pipe copies each byte twice per direction (into the kernel and out again). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

static size_t count, bytes; /* int32 elements, and their size */
static int32_t *src, *back, *in_child, *shared;
static const char *shared_name;
static double *copy_s, *shm_s, *memcpy_s;
static uint64_t reps, wrong;
static int child_status;

static void *private_buffer(const struct cl_run *run)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        cl_refuse(run, "mmap", errno, "--mib %lld", cl_param(run, MIB));
    return p;
}

/* [snippet doubler] */
/* The child: 'c' then the array: double it and send it back; 's': double the
 * shared array in place and answer one byte. It needs no lock: the parent
 * waits for its answer before it looks. */
static _Noreturn void doubler(int from_parent, int to_parent)
{
    char cmd;
    while (read_full(from_parent, &cmd, 1) == 1) {
        int32_t *a = cmd == 'c' ? in_child : shared;
        if (cmd == 'c')
            read_full(from_parent, a, bytes);
        for (size_t i = 0; i < count; i++)
            a[i] *= 2;
        if (cmd == 'c')
            write_full(to_parent, a, bytes);
        else
            write_full(to_parent, "d", 1);
    }
    _exit(0);
}
/* [end doubler] */

static uint64_t doubled_wrongly(const int32_t *a)
{
    uint64_t n = 0;
    for (size_t i = 0; i < count; i++)
        n += a[i] != 2 * src[i];
    return n;
}

/* [snippet copy-round] */
static double copy_round(int to, int from)
{
    uint64_t t0 = cl_now_ns();
    write_full(to, "c", 1);
    write_full(to, src, bytes); /* the child reads it all before it writes back */
    read_full(from, back, bytes);
    return cl_seconds(cl_now_ns() - t0);
}

static double shm_round(int to, int from)
{
    memcpy(shared, src, bytes); /* fresh input, not timed */
    char done;
    uint64_t t0 = cl_now_ns();
    write_full(to, "s", 1);
    read_full(from, &done, 1);
    return cl_seconds(cl_now_ns() - t0);
}
/* [end copy-round] */

void copy_run(struct cl_run *run)
{
    int down[2], up[2];
    CL_SYS(pipe2(down, O_CLOEXEC));
    CL_SYS(pipe2(up, O_CLOEXEC));
    pid_t pid = cl_child_fork();
    if (pid == 0) {
        close(down[1]); /* or its own copy would keep the pipe open: no end of file */
        close(up[0]);
        doubler(down[0], up[1]);
    }
    if (pid == -1)
        cl_refuse(run, "fork", errno, "the doubling child");
    close(down[0]);
    close(up[1]);
    for (uint64_t i = 0; i < run->iters; i++) {
        /* in turns, the first of each pair alternating: a slow moment hits both */
        for (int k = 0; k < 2; k++) {
            if ((i + (uint64_t)k) % 2 == 0) {
                copy_s[i] = copy_round(down[1], up[0]);
                wrong += doubled_wrongly(back);
            } else {
                shm_s[i] = shm_round(down[1], up[0]);
                wrong += doubled_wrongly(shared);
            }
        }
        cl_tick(&run->workers[0]);
        uint64_t t0 = cl_now_ns();
        memcpy(back, src, bytes);
        memcpy_s[i] = cl_seconds(cl_now_ns() - t0);
        reps++;
    }
    close(down[1]); /* end of file: the child exits */
    child_status = cl_child_wait(pid);
    close(up[0]);
}

static void setup(const struct cl_run *run)
{
    bytes = (size_t)cl_param(run, MIB) << 20;
    count = bytes / sizeof(int32_t);
    src = private_buffer(run);
    back = private_buffer(run);
    in_child = private_buffer(run); /* untouched here: the child's pages are its own */
    shared = shm_make(run, "data", bytes, &shared_name);
    for (size_t i = 0; i < count; i++)
        src[i] = (int32_t)i;
    copy_s = cl_xcalloc(run->iters, sizeof *copy_s);
    shm_s = cl_xcalloc(run->iters, sizeof *shm_s);
    memcpy_s = cl_xcalloc(run->iters, sizeof *memcpy_s);
}

/* MB/s (10^6 bytes) of the array, from the median of the rounds' times. */
static double mb_s(double *s, uint64_t n)
{
    return (double)bytes / 1e6 / cl_median(s, n);
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    res->ops = 2 * reps;
    res->exact = reps == run->iters && wrong == 0 && WIFEXITED(child_status) &&
                 WEXITSTATUS(child_status) == 0;
    if (reps == 0) {
        cl_verdict(res, "no rounds");
        return;
    }
    double *ratio = cl_xcalloc(reps, sizeof *ratio);
    for (uint64_t i = 0; i < reps; i++)
        ratio[i] = copy_s[i] / shm_s[i];
    double r = cl_median(ratio, reps);
    free(ratio);
    double copy = mb_s(copy_s, reps), shm = mb_s(shm_s, reps), floor = mb_s(memcpy_s, reps);
    cl_metric_real(res, "copy_mb_s", copy);
    cl_metric_real(res, "shm_mb_s", shm);
    cl_metric_real(res, "memcpy_mb_s", floor);
    cl_metric_real(res, "shm_over_copy", r);
    cl_metric_int(res, "wrong", (long long)wrong);
    if (res->exact)
        cl_verdict(res,
                   "%lld MiB doubled by the child: through pipes %.0f MB/s, in shared "
                   "memory %.0f MB/s (%.1fx); one memcpy %.0f MB/s",
                   cl_param(run, MIB), copy, shm, r, floor);
    else
        cl_verdict(res, "%llu elements came back wrong", (unsigned long long)wrong);
}

static void teardown(const struct cl_run *run)
{
    (void)run;
    munmap(src, bytes);
    munmap(back, bytes);
    munmap(in_child, bytes);
    shm_remove(shared, bytes, shared_name);
    free(copy_s);
    free(shm_s);
    free(memcpy_s);
}

const struct family copy_family = {.setup = setup, .check = check, .teardown = teardown};
