#include "cl_work.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_time.h"

uint64_t cl_sum_squares_range(uint64_t lo, uint64_t hi)
{
    uint64_t sum = 0;
    for (uint64_t i = lo; i < hi; i++) {
        sum += i * i;
        /* Keep the loop: at -O2 gcc would otherwise use the closed form itself. */
        cl_compiler_barrier();
    }
    return sum;
}

uint64_t cl_sum_squares(uint64_t n)
{
    return cl_sum_squares_range(0, n);
}

uint64_t cl_sum_squares_closed(uint64_t n)
{
    if (n == 0)
        return 0;
    /* m(m+1)(2m+1)/6 with m = n-1. Divide the 2 and the 3 out of the factors that
     * hold them first, so the products can wrap modulo 2^64 like the loop does. */
    uint64_t a = n - 1, b = n, c = 2 * n - 1; /* c wraps above 2^63: never divide it */
    if (a % 2 == 0)
        a /= 2;
    else
        b /= 2;
    if (a % 3 == 0)
        a /= 3;
    else if (b % 3 == 0)
        b /= 3;
    else /* n = 3k + 2, so (2n - 1) / 3 = 2k + 1 */
        c = 2 * ((n - 2) / 3) + 1;
    return a * b * c;
}

/* ------------------------------------------------------------- responder */

/* A request waiting for its answer. All share one latency, so arrival order is
 * due order: a FIFO is the whole timer queue. */
struct pending {
    int fd;
    uint64_t due_ns, request;
};

struct cl_responder {
    int channels;
    int *client, *server; /* the two ends of each socketpair */
    int epoll_fd, timer_fd, stop_fd;
    uint64_t latency_ns;
    struct pending *fifo; /* one slot per channel: a channel has one request in flight */
    size_t head, len;
    _Atomic uint64_t answered;
    pthread_t thread;
};

static void arm_timer(const struct cl_responder *r, uint64_t due_ns)
{
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due_ns / CL_NS_PER_S),
                                          .tv_nsec = (long)(due_ns % CL_NS_PER_S)}};
    CL_SYS(timerfd_settime(r->timer_fd, TFD_TIMER_ABSTIME, &its, NULL));
}

static void answer_due(struct cl_responder *r)
{
    uint64_t now = cl_now_ns();
    while (r->len > 0 && r->fifo[r->head].due_ns <= now) {
        const struct pending *p = &r->fifo[r->head];
        uint64_t reply = ~p->request;
        /* counted before the client can see its reply */
        atomic_fetch_add_explicit(&r->answered, 1, memory_order_relaxed);
        if (write(p->fd, &reply, sizeof reply) != (ssize_t)sizeof reply && errno != EPIPE)
            cl_die(__FILE__, __LINE__, "write (responder)", errno);
        r->head = (r->head + 1) % (size_t)r->channels;
        r->len--;
    }
    if (r->len > 0)
        arm_timer(r, r->fifo[r->head].due_ns);
}

static void take_request(struct cl_responder *r, int fd)
{
    uint64_t request;
    ssize_t n = read(fd, &request, sizeof request);
    if (n == 0) /* every copy of the client's end is closed: stop watching it */
        CL_SYS(epoll_ctl(r->epoll_fd, EPOLL_CTL_DEL, fd, NULL));
    if (n != (ssize_t)sizeof request || r->len == (size_t)r->channels)
        return; /* not a request, or more in flight than the contract allows */
    r->fifo[(r->head + r->len++) % (size_t)r->channels] =
        (struct pending){fd, cl_now_ns() + r->latency_ns, request};
}

static void *respond(void *arg)
{
    struct cl_responder *r = arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = (int)CL_SYS_RETRY(epoll_wait(r->epoll_fd, ev, 64, -1));
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == r->stop_fd)
                return NULL;
            if (fd == r->timer_fd) {
                uint64_t expirations;
                (void)!read(fd, &expirations, sizeof expirations); /* clears it */
            } else
                take_request(r, fd);
        }
        answer_due(r);
    }
}

static int watch(int epoll_fd, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

static void close_all(struct cl_responder *r, int made)
{
    for (int i = 0; i < made; i++) {
        close(r->client[i]);
        close(r->server[i]);
    }
    if (r->epoll_fd >= 0)
        close(r->epoll_fd);
    if (r->timer_fd >= 0)
        close(r->timer_fd);
    if (r->stop_fd >= 0)
        close(r->stop_fd);
    free(r->client);
    free(r->server);
    free(r->fifo);
    free(r);
}

struct cl_responder *cl_responder_start(int channels, uint64_t latency_ns, char *err, size_t errlen)
{
    /* 2 descriptors a channel, 3 of the responder's own, and some to spare */
    rlim_t need = 2 * (rlim_t)channels + 3 + 32;
    struct rlimit lim;
    CL_SYS(getrlimit(RLIMIT_NOFILE, &lim));
    if (lim.rlim_cur < need && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = need < lim.rlim_max ? need : lim.rlim_max;
        CL_SYS(setrlimit(RLIMIT_NOFILE, &lim));
    }
    struct cl_responder *r = cl_xcalloc(1, sizeof *r);
    *r = (struct cl_responder){.channels = channels,
                               .client = cl_xcalloc((size_t)channels, sizeof(int)),
                               .server = cl_xcalloc((size_t)channels, sizeof(int)),
                               .fifo = cl_xcalloc((size_t)channels, sizeof(struct pending)),
                               .latency_ns = latency_ns,
                               .epoll_fd = epoll_create1(EPOLL_CLOEXEC),
                               .timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
                               .stop_fd = eventfd(0, EFD_CLOEXEC)};
    int made = 0;
    if (r->epoll_fd < 0 || r->timer_fd < 0 || r->stop_fd < 0)
        goto fail;
    for (; made < channels; made++) {
        int sv[2];
        /* SEQPACKET keeps each 8-byte message whole */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
            goto fail;
        r->client[made] = sv[0];
        r->server[made] = sv[1];
        if (watch(r->epoll_fd, sv[1]) == -1) { /* valgrind refuses its reserved fds so */
            made++;
            goto fail;
        }
    }
    if (watch(r->epoll_fd, r->timer_fd) == -1 || watch(r->epoll_fd, r->stop_fd) == -1)
        goto fail;
    CL_PT(pthread_create(&r->thread, NULL, respond, r));
    return r;
fail:
    snprintf(err, errlen, "%d channels need %llu file descriptors: %s after %d (ulimit -n is %llu)",
             channels, (unsigned long long)need, strerror(errno), made,
             (unsigned long long)lim.rlim_cur);
    close_all(r, made);
    return NULL;
}

int cl_responder_fd(const struct cl_responder *r, int channel)
{
    return r->client[channel];
}

uint64_t cl_responder_answered(const struct cl_responder *r)
{
    return atomic_load_explicit(&r->answered, memory_order_relaxed);
}

void cl_responder_stop(struct cl_responder *r)
{
    uint64_t one = 1;
    CL_SYS(write(r->stop_fd, &one, sizeof one));
    CL_PT(pthread_join(r->thread, NULL));
    close_all(r, r->channels);
}

uint64_t cl_round_trip(int fd, uint64_t request)
{
    if (CL_RETRY(write(fd, &request, sizeof request)) != (long)sizeof request)
        return request;
    uint64_t reply;
    return CL_RETRY(read(fd, &reply, sizeof reply)) == (long)sizeof reply ? reply : request;
}
