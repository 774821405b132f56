/* Workloads shared by the chapters: CPU work with a closed-form check, and
 * I/O. Simulated I/O is a plain sleep (cl_sleep_ns in cl_time.h); real I/O is a
 * blocking round trip to a responder thread, below. */
#ifndef CL_WORK_H
#define CL_WORK_H

#include <stddef.h>
#include <stdint.h>

/* One step of splitmix64: advances *state and returns the next 64 random bits.
 * Small, fast and good enough for workloads; never for secrets. */
static inline uint64_t cl_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* CPU work: sum of i*i for i < n, in wrapping uint64 arithmetic (the true sum
 * overflows 64 bits above n of about 4e6, so wrapping is defined and checkable). */
uint64_t cl_sum_squares(uint64_t n);

/* The same kernel over lo <= i < hi: a task's share of a bigger range. */
uint64_t cl_sum_squares_range(uint64_t lo, uint64_t hi);

/* The sum below n in closed form, (n-1)n(2n-1)/6 modulo 2^64, to check the
 * kernel; a range's sum is closed(hi) - closed(lo), also modulo 2^64. */
uint64_t cl_sum_squares_closed(uint64_t n);

/* Real blocking I/O: a responder thread answers each request on a channel (a
 * socketpair) once `latency` has passed since it arrived, many requests in
 * flight at once, so that clients blocked in read() overlap as they would on
 * a network. One channel per client thread or process; each channel carries
 * one request at a time. */
struct cl_responder;

/* Start a responder with `channels` channels. Returns NULL with one line in err
 * if the descriptors run out (it raises the soft RLIMIT_NOFILE first). */
struct cl_responder *cl_responder_start(int channels, uint64_t latency_ns, char *err,
                                        size_t errlen);

/* The client's end of a channel: inherited by a fork()ed child, it still works. */
int cl_responder_fd(const struct cl_responder *r, int channel);

/* Requests answered so far (for reports). */
uint64_t cl_responder_answered(const struct cl_responder *r);

/* Stop the thread and close every descriptor. No client may be mid-request. */
void cl_responder_stop(struct cl_responder *r);

/* One round trip on a client fd: send `request`, block until the reply comes.
 * The responder answers ~request; a wrong or missing reply returns request,
 * which the caller's check sees as wrong. Only read and write: safe in a child
 * forked from a threaded process. */
uint64_t cl_round_trip(int fd, uint64_t request);

#endif
