/* procs: ipc. One message of --msg-bytes goes to a forked child and comes back,
 * --iters times per mechanism, in 5 rounds that take every mechanism in turn:
 *   pipe          two pipes, one each way
 *   socketpair    one AF_UNIX stream socket pair
 *   mq            two POSIX message queues (at most msgsize_max, 8 KiB by default)
 *   ring-eventfd  a byte ring in shared memory each way; the reader sleeps in an
 *                 eventfd that the writer bumps after each message
 *   ring-futex    the same ring; the reader sleeps in futex(2) on a sequence word
 *   ring-spin     the same ring; the reader spins (and yields), no system call
 *   eventfd       no message: an eventfd each way, a notification's round trip
 * The child is forked from the demo, so it calls only system calls, atomics and
 * memcpy. Every message carries its number, checked when it comes back. */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs.h"

enum mech { PIPE, SOCKETPAIR, MQ, RING_EVENTFD, RING_FUTEX, RING_SPIN, EVENTFD, NMECH };
const char *const mech_names[] = {
    "pipe", "socketpair", "mq", "ring-eventfd", "ring-futex", "ring-spin", "eventfd", "all", NULL};
static const char *const metric_names[NMECH] = {
    "pipe_per_s",       "socketpair_per_s", "mq_per_s",     "ring_eventfd_per_s",
    "ring_futex_per_s", "ring_spin_per_s",  "eventfd_per_s"};

enum { ROUNDS = 5, MAX_MSG = 65536, RING = 2 * MAX_MSG };

/* [snippet ring] */
/* A byte ring, one writer and one reader: the writer copies a message in and
 * publishes it by moving head; the reader waits until head - tail covers one. */
struct ring {
    _Alignas(64) _Atomic uint64_t head; /* bytes written, ever */
    _Alignas(64) _Atomic uint64_t tail; /* bytes read, ever */
    _Alignas(64) _Atomic uint32_t seq;  /* ring-futex: bumped after each message */
    char data[RING];
};
/* [end ring] */

struct channel {
    struct ring *ring; /* ring-*: [0] parent to child, [1] back */
    uint64_t done;     /* round trips timed */
    uint64_t ns;       /* their time */
    int fd[2][2];      /* pipe: one per direction; socketpair: [0][0] parent, [0][1] child */
    mqd_t mq[2];       /* one per direction */
    int efd[2];        /* ring-eventfd, eventfd: one per direction */
    int mech;
    pid_t pid; /* the echoing child */
    int status;
};

static struct channel ch[NMECH];
static bool used[NMECH];
static size_t msg;
static char out_msg[MAX_MSG], in_msg[MAX_MSG];
static uint64_t wrong;

/* The largest POSIX message this system allows by default (8 KiB unless set). */
static long mq_limit(void)
{
    long long max = proc_number("/proc/sys/fs/mqueue/msgsize_max", NULL);
    return max > 0 ? (long)max : 8192;
}

int ipc_prepare(struct cl_run *run, char *err, size_t len)
{
    long long mech = cl_param(run, MECH), bytes = cl_param(run, MSG_BYTES);
    if (mech == MQ && bytes > mq_limit()) {
        snprintf(err, len, "procs: --msg-bytes %lld: mq allows at most %ld (msgsize_max)", bytes,
                 mq_limit());
        return 1;
    }
    if (mech == EVENTFD && cl_param_given(run, MSG_BYTES)) {
        snprintf(err, len, "procs: --msg-bytes: eventfd carries a count, not a message");
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ each mechanism */

static void ring_put(struct ring *r, const char *buf, size_t n)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (size_t k = 0; k < n;) {
        size_t off = (size_t)((h + k) % RING), part = n - k < RING - off ? n - k : RING - off;
        memcpy(r->data + off, buf + k, part);
        k += part;
    }
    atomic_store_explicit(&r->head, h + n, memory_order_release);
}

static void ring_take(struct ring *r, char *buf, size_t n)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (size_t k = 0; k < n;) {
        size_t off = (size_t)((t + k) % RING), part = n - k < RING - off ? n - k : RING - off;
        memcpy(buf + k, r->data + off, part);
        k += part;
    }
    atomic_store_explicit(&r->tail, t + n, memory_order_release);
}

static bool ring_has(struct ring *r, size_t n)
{
    return atomic_load_explicit(&r->head, memory_order_acquire) -
               atomic_load_explicit(&r->tail, memory_order_relaxed) >=
           n;
}

/* [snippet send-recv] */
/* Send dir 0 (parent to child) or 1 (back); at most one message is in flight. */
static void send_msg(struct channel *c, int dir, const char *buf, size_t n)
{
    uint64_t one = 1;
    switch (c->mech) {
    case PIPE:
        write_full(c->fd[dir][1], buf, n);
        break;
    case SOCKETPAIR:
        write_full(c->fd[0][dir], buf, n);
        break;
    case MQ:
        CL_SYS(mq_send(c->mq[dir], buf, n, 0));
        break;
    case EVENTFD:
        write_full(c->efd[dir], &one, sizeof one);
        break;
    default: /* the rings */
        ring_put(&c->ring[dir], buf, n);
        if (c->mech == RING_EVENTFD)
            write_full(c->efd[dir], &one, sizeof one);
        if (c->mech == RING_FUTEX) {
            atomic_fetch_add(&c->ring[dir].seq, 1);
            futex_wake(&c->ring[dir].seq, 1);
        }
    }
}

static void recv_msg(struct channel *c, int dir, char *buf, size_t n)
{
    uint64_t count;
    switch (c->mech) {
    case PIPE:
        read_full(c->fd[dir][0], buf, n);
        break;
    case SOCKETPAIR:
        read_full(c->fd[0][1 - dir], buf, n);
        break;
    case MQ:
        CL_SYS(mq_receive(c->mq[dir], buf, MAX_MSG, NULL));
        break;
    case EVENTFD:
        read_full(c->efd[dir], &count, sizeof count);
        break;
    default: {
        struct ring *r = &c->ring[dir];
        for (unsigned spins = 0; !ring_has(r, n); spins++) {
            uint32_t seq = atomic_load(&r->seq);
            if (c->mech == RING_EVENTFD)
                read_full(c->efd[dir], &count, sizeof count); /* sleeps until a bump */
            else if (c->mech == RING_FUTEX && !ring_has(r, n))
                futex_wait(&r->seq, seq, 0); /* sleeps unless seq moved meanwhile */
            else if (c->mech == RING_SPIN && spins > 1000)
                sched_yield(); /* a shared machine: let the writer run */
            else
                cl_cpu_relax();
        }
        ring_take(r, buf, n);
    }
    }
}
/* [end send-recv] */

static void open_channel(const struct cl_run *run, struct channel *c, int mech)
{
    c->mech = mech;
    switch (mech) {
    case PIPE:
        CL_SYS(pipe2(c->fd[0], O_CLOEXEC));
        CL_SYS(pipe2(c->fd[1], O_CLOEXEC));
        break;
    case SOCKETPAIR:
        CL_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fd[0]));
        break;
    case MQ:
        for (int dir = 0; dir < 2; dir++) {
            char name[64];
            snprintf(name, sizeof name, "/conclab-%d-mq%d", (int)getpid(), dir);
            struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = (long)msg};
            c->mq[dir] = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
            if (c->mq[dir] == (mqd_t)-1)
                cl_refuse(run, "mq_open", errno, "a queue of one %zu-byte message", msg);
            mq_unlink(name); /* the name goes now; both processes keep the queue open */
        }
        break;
    default:
        if (mech == RING_EVENTFD || mech == EVENTFD)
            for (int dir = 0; dir < 2; dir++) {
                c->efd[dir] = eventfd(0, EFD_CLOEXEC);
                CL_SYS(c->efd[dir]);
            }
        if (mech != EVENTFD) {
            c->ring = mmap(NULL, 2 * sizeof(struct ring), PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (c->ring == MAP_FAILED)
                cl_refuse(run, "mmap", errno, "two rings of %d bytes", RING);
        }
    }
}

/* The child: echo `total` messages. */
static _Noreturn void echo(struct channel *c, uint64_t total)
{
    for (uint64_t i = 0; i < total; i++) {
        recv_msg(c, 0, in_msg, msg);
        send_msg(c, 1, in_msg, msg);
    }
    _exit(0);
}

static void close_channel(struct channel *c)
{
    switch (c->mech) {
    case PIPE:
        for (int d = 0; d < 2; d++) {
            close(c->fd[d][0]);
            close(c->fd[d][1]);
        }
        break;
    case SOCKETPAIR:
        close(c->fd[0][0]);
        close(c->fd[0][1]);
        break;
    case MQ:
        mq_close(c->mq[0]);
        mq_close(c->mq[1]);
        break;
    default:
        if (c->mech == RING_EVENTFD || c->mech == EVENTFD) {
            close(c->efd[0]);
            close(c->efd[1]);
        }
        if (c->mech != EVENTFD)
            munmap(c->ring, 2 * sizeof(struct ring));
    }
}

/* One message there and back, checked by its number (eventfd carries none). */
static void round_trip(struct channel *c, uint64_t n)
{
    size_t tag = msg < sizeof n ? msg : sizeof n;
    memcpy(out_msg, &n, tag);
    send_msg(c, 0, out_msg, msg);
    recv_msg(c, 1, in_msg, msg);
    if (c->mech != EVENTFD && memcmp(in_msg, out_msg, tag) != 0)
        wrong++;
}

void ipc_run(struct cl_run *run)
{
    uint64_t per = (run->iters + ROUNDS - 1) / ROUNDS, warm = 100; /* untimed, first */
    for (int m = 0; m < NMECH; m++) {
        if (!used[m])
            continue;
        open_channel(run, &ch[m], m);
        ch[m].pid = cl_child_fork();
        if (ch[m].pid == 0)
            echo(&ch[m], warm + per * ROUNDS);
        if (ch[m].pid == -1)
            cl_refuse(run, "fork", errno, "the %s echo child", mech_names[m]);
        for (uint64_t i = 0; i < warm; i++)
            round_trip(&ch[m], i);
    }
    for (int r = 0; r < ROUNDS; r++)
        for (int m = 0; m < NMECH; m++) {
            if (!used[m])
                continue;
            uint64_t t0 = cl_now_ns();
            for (uint64_t i = 0; i < per; i++) {
                round_trip(&ch[m], ch[m].done++);
                cl_tick(&run->workers[0]);
            }
            ch[m].ns += cl_now_ns() - t0;
        }
    for (int m = 0; m < NMECH; m++)
        if (used[m]) {
            ch[m].status = cl_child_wait(ch[m].pid);
            close_channel(&ch[m]);
        }
}

static void setup(const struct cl_run *run)
{
    long long mech = cl_param(run, MECH);
    msg = mech == EVENTFD ? sizeof(uint64_t) : (size_t)cl_param(run, MSG_BYTES);
    for (int m = 0; m < NMECH; m++)
        used[m] = mech == m || (mech == NMECH && (m != MQ || (long)msg <= mq_limit()));
}

static void check(const struct cl_run *run, struct cl_result *res)
{
    (void)run;
    char line[256] = "", n[32];
    size_t at = 0;
    int bad = 0;
    res->ops = 0;
    for (int m = 0; m < NMECH; m++) {
        if (!used[m])
            continue;
        bad += !WIFEXITED(ch[m].status) || WEXITSTATUS(ch[m].status) != 0;
        res->ops += ch[m].done;
        double per_s = ch[m].ns > 0 ? (double)ch[m].done * 1e9 / (double)ch[m].ns : 0;
        cl_metric_real(res, metric_names[m], per_s);
        at += (size_t)snprintf(line + at, sizeof line - at, "%s%s %s", at ? "; " : "",
                               mech_names[m], cl_fmt_count((uint64_t)per_s, n));
        if (at >= sizeof line)
            at = sizeof line - 1;
    }
    res->exact = wrong == 0 && bad == 0;
    cl_metric_int(res, "wrong", (long long)wrong);
    if (res->exact)
        cl_verdict(res, "round trips/s, %zu B: %s", msg, line);
    else
        cl_verdict(res, "%llu messages came back wrong, %d echo children failed",
                   (unsigned long long)wrong, bad);
}

const struct family ipc_family = {.setup = setup, .check = check};
