/* The HTTP server's two designs in lib, and the life of a server process: see
 * cl_server.h. */
#include "cl_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cl_check.h"
#include "cl_task.h"
#include "cl_time.h"

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* ---- the pieces every design uses ------------------------------------------------ */

void cl_server_decide(const struct cl_server_opts *o, const struct cl_http_req *req,
                      struct cl_http_reply *reply)
{
    cl_server_count(&o->counts->requests);
    cl_http_reply_init(reply, req);
    reply->delay_ns = o->delay_ns;
    reply->work_ns = o->work_ns;
    if (o->handler != NULL)
        o->handler(o->handler_arg, req, reply);
}

void cl_server_opened(struct cl_server_counts *c)
{
    cl_server_count(&c->accepted);
    uint64_t now = atomic_fetch_add_explicit(&c->open, 1, memory_order_relaxed) + 1;
    uint64_t peak = atomic_load_explicit(&c->peak_open, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(
                             &c->peak_open, &peak, now, memory_order_relaxed, memory_order_relaxed))
        ;
}

void cl_server_closed(struct cl_server_counts *c)
{
    atomic_fetch_sub_explicit(&c->open, 1, memory_order_relaxed);
}

void cl_server_work(uint64_t ns, const _Atomic bool *stop)
{
    const uint64_t slice = CL_MS(1);
    while (ns > 0 && !atomic_load_explicit(stop, memory_order_relaxed)) {
        uint64_t d = ns < slice ? ns : slice;
        cl_busy_ns(d);
        ns -= d;
    }
}

/* A new connection's socket: replies go out at once, whatever Nagle would wait for. */
static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Whether accept failed for want of a resource (then wait for a connection to
 * close) rather than for a connection that went away before it was accepted. */
static bool out_of_files(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* ---- thread per connection --------------------------------------------------------- */

#define THREAD_STACK                                                                               \
    ((size_t)256 * 1024) /* a connection's thread needs little: 256 KiB, not 8 MiB */

struct tconn;

struct tserver {
    const struct cl_server_opts *o;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* delays wait on it; an abort broadcasts */
    struct tconn *conns;    /* open connections (under mu) */
    struct tconn *finished; /* threads that ended, to be joined (under mu) */
    uint64_t open;          /* under mu */
    uint64_t next_id;
    int ended_fd;          /* eventfd: a connection ended (wakes the acceptor) */
    _Atomic bool draining; /* a graceful stop began */
    _Atomic bool aborting; /* drop everything */
};

struct tconn {
    struct tserver *s;
    int fd;
    pthread_t th;
    _Atomic bool idle; /* waiting for a request with nothing buffered */
    struct tconn *next, *prev;
    struct cl_http_conn h;
};

static bool send_all(int fd, struct cl_http_conn *h)
{
    while (h->out_off < h->out_len) {
        ssize_t n = send(fd, h->out + h->out_off, h->out_len - h->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        h->out_off += (size_t)n;
    }
    return true;
}

/* Wait for ns, or until an abort. False if aborted. */
static bool tdelay(struct tserver *s, uint64_t ns)
{
    struct timespec until = cl_deadline_ns(ns);
    uint64_t end = cl_now_ns() + ns;
    CL_PT(pthread_mutex_lock(&s->mu));
    while (!atomic_load(&s->aborting) && cl_now_ns() < end) {
        int rc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
        if (rc != 0 && rc != ETIMEDOUT)
            cl_die(__FILE__, __LINE__, "pthread_cond_timedwait", rc);
    }
    CL_PT(pthread_mutex_unlock(&s->mu));
    return !atomic_load(&s->aborting);
}

/* [snippet tserve] */
/* Serve one request already taken; false when the connection must end. */
static bool tserve(struct tconn *c, const struct cl_http_req *req)
{
    struct tserver *s = c->s;
    struct cl_http_reply rep;
    cl_server_decide(s->o, req, &rep);
    bool sent = false;
    if (rep.status != 0) {
        cl_server_work(rep.work_ns, &s->aborting);
        if ((rep.delay_ns == 0 || tdelay(s, rep.delay_ns)) && !atomic_load(&s->aborting)) {
            rep.close |= atomic_load(&s->draining);
            cl_http_put_reply(&c->h, req, &rep);
            sent = send_all(c->fd, &c->h);
        }
    }
    cl_server_count(sent ? &s->o->counts->responses : &s->o->counts->dropped);
    return sent && !rep.close;
}
/* [end tserve] */

/* [snippet threads] */
/* A connection's thread: read until a request is whole, serve it; again. */
static void tconn_serve(struct tconn *c)
{
    struct tserver *s = c->s;
    struct cl_http_req req;
    for (;;) {
        enum cl_http_take got = cl_http_take(&c->h, &req);
        if (got == CL_HTTP_REQUEST) {
            if (!tserve(c, &req))
                return;
            continue;
        }
        if (got == CL_HTTP_BAD) {
            cl_server_count(&s->o->counts->bad);
            (void)send_all(c->fd, &c->h);
            return;
        }
        /* Idle, then check for a stop: the acceptor sets draining, then looks at
         * idle (both sequentially consistent), so one of the two sees the other. */
        atomic_store(&c->idle, c->h.in_len == 0);
        if (atomic_load(&c->idle) && atomic_load(&s->draining))
            return;
        ssize_t n = read(c->fd, c->h.in + c->h.in_len, cl_http_in_room(&c->h));
        atomic_store(&c->idle, false);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* the client closed, or a stop shut the socket down */
            return;
        c->h.in_len += (size_t)n;
    }
}
/* [end threads] */

static void *tconn_main(void *arg)
{
    struct tconn *c = arg;
    struct tserver *s = c->s;
    tconn_serve(c);
    CL_PT(pthread_mutex_lock(&s->mu));
    *(c->prev ? &c->prev->next : &s->conns) = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = s->finished;
    s->finished = c;
    s->open--;
    CL_SYS(close(c->fd)); /* off the list first: the acceptor no longer shuts it down */
    cl_server_closed(s->o->counts);
    CL_SYS(eventfd_write(s->ended_fd, 1));
    CL_PT(pthread_mutex_unlock(&s->mu));
    return NULL;
}

static void tjoin_finished(struct tserver *s)
{
    CL_PT(pthread_mutex_lock(&s->mu));
    struct tconn *done = s->finished;
    s->finished = NULL;
    CL_PT(pthread_mutex_unlock(&s->mu));
    while (done != NULL) {
        struct tconn *next = done->next;
        CL_PT(pthread_join(done->th, NULL));
        free(done);
        done = next;
    }
}

static void taccept(struct tserver *s, pthread_attr_t *attr, bool *paused)
{
    const struct cl_server_opts *o = s->o;
    for (;;) {
        CL_PT(pthread_mutex_lock(&s->mu));
        bool full = s->open >= o->max_connections;
        CL_PT(pthread_mutex_unlock(&s->mu));
        if (full) {
            *paused = true;
            return;
        }
        int fd = (int)accept4(o->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            *paused = out_of_files(errno);
            if (*paused)
                return;
            continue; /* a connection gone before it was accepted */
        }
        set_nodelay(fd);
        struct tconn *c = cl_xcalloc(1, sizeof *c);
        c->s = s;
        c->fd = fd;
        cl_http_conn_init(&c->h, ++s->next_id);
        CL_PT(pthread_mutex_lock(&s->mu));
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->open++;
        cl_server_opened(o->counts);
        int rc = pthread_create(&c->th, attr, tconn_main, c);
        if (rc != 0) { /* no thread: this connection is refused */
            s->conns = c->next;
            if (s->conns)
                s->conns->prev = NULL;
            s->open--;
            cl_server_closed(o->counts);
            cl_server_count(&o->counts->refused);
            CL_SYS(close(fd));
            free(c);
        }
        CL_PT(pthread_mutex_unlock(&s->mu));
    }
}

/* Shut the connections down: idle ones only (a graceful stop), or all. */
static void tshutdown(struct tserver *s, bool all)
{
    CL_PT(pthread_mutex_lock(&s->mu));
    if (all)
        CL_PT(pthread_cond_broadcast(&s->cv));
    for (struct tconn *c = s->conns; c != NULL; c = c->next)
        if (all || atomic_load(&c->idle))
            (void)shutdown(c->fd, all ? SHUT_RDWR : SHUT_RD);
    CL_PT(pthread_mutex_unlock(&s->mu));
}

enum phase { SERVING, DRAINING, ABORTING };

struct tstate {
    enum phase phase;
    int listen_fd;      /* -1 once closed */
    uint64_t drain_end; /* when a drain gives up */
};

static void tdrain(struct tserver *s, struct tstate *st, uint64_t now)
{
    st->phase = DRAINING;
    CL_SYS(close(st->listen_fd));
    st->listen_fd = -1;
    st->drain_end = now + s->o->drain_ns;
    atomic_store(&s->draining, true);
    tshutdown(s, false);
}

static void tabort(struct tserver *s, struct tstate *st)
{
    st->phase = ABORTING;
    if (st->listen_fd >= 0)
        CL_SYS(close(st->listen_fd));
    st->listen_fd = -1;
    atomic_store(&s->draining, true);
    atomic_store(&s->aborting, true);
    tshutdown(s, true);
}

static int run_threads(const struct cl_server_opts *o)
{
    struct tserver s = {.o = o, .ended_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
    if (s.ended_fd < 0)
        return errno;
    CL_PT(pthread_mutex_init(&s.mu, NULL));
    CL_PT(cl_cond_init_monotonic(&s.cv));
    pthread_attr_t attr;
    CL_PT(pthread_attr_init(&attr));
    CL_PT(pthread_attr_setstacksize(&attr, THREAD_STACK));

    struct tstate st = {.phase = SERVING, .listen_fd = o->listen_fd};
    uint64_t start = cl_now_ns();
    bool paused = false;
    for (;;) {
        uint64_t now = cl_now_ns();
        if (st.phase == SERVING && o->duration_ns > 0 && now - start >= o->duration_ns)
            tdrain(&s, &st, now);
        if (st.phase == DRAINING && now >= st.drain_end)
            tabort(&s, &st);
        CL_PT(pthread_mutex_lock(&s.mu));
        uint64_t open = s.open;
        CL_PT(pthread_mutex_unlock(&s.mu));
        if (st.phase != SERVING && open == 0)
            break;
        uint64_t until = st.phase == DRAINING                    ? st.drain_end
                         : st.phase == SERVING && o->duration_ns ? start + o->duration_ns
                                                                 : UINT64_MAX;
        int ms = until == UINT64_MAX ? -1 : (int)((until - now + 999999) / 1000000);
        struct pollfd p[4] = {
            {.fd = s.ended_fd, .events = POLLIN},
            {.fd = st.phase == ABORTING ? -1 : o->abort_fd, .events = POLLIN},
            {.fd = st.phase == SERVING ? o->stop_fd : -1, .events = POLLIN},
            {.fd = st.phase == SERVING && !paused ? st.listen_fd : -1, .events = POLLIN},
        };
        if (poll(p, 4, ms) < 0 && errno != EINTR)
            cl_die(__FILE__, __LINE__, "poll", errno);
        if (p[0].revents) {
            eventfd_t ignored;
            (void)eventfd_read(s.ended_fd, &ignored);
            tjoin_finished(&s);
            paused = false;
        }
        if (p[1].revents)
            tabort(&s, &st);
        if (p[2].revents && st.phase == SERVING)
            tdrain(&s, &st, cl_now_ns());
        if (p[3].revents && st.phase == SERVING)
            taccept(&s, &attr, &paused);
    }
    tjoin_finished(&s);
    if (st.listen_fd >= 0)
        CL_SYS(close(st.listen_fd));
    CL_PT(pthread_attr_destroy(&attr));
    CL_PT(pthread_cond_destroy(&s.cv));
    CL_PT(pthread_mutex_destroy(&s.mu));
    CL_SYS(close(s.ended_fd));
    return 0;
}

/* ---- one loop, a task per connection -------------------------------------------- */

struct lconn;

struct lserver {
    const struct cl_server_opts *o;
    struct cl_loop *loop;
    struct cl_io listen_io, stop_io, abort_io;
    struct cl_timer duration, drain;
    struct lconn *conns; /* open connections */
    uint64_t open, next_id;
    enum phase phase;
    _Atomic bool never; /* the loop's work cannot be cut short: it runs alone */
};

struct lconn {
    struct cl_task task; /* first */
    struct lserver *s;
    int fd;
    bool idle;    /* waiting for a request with nothing buffered */
    bool pending; /* a request read and not yet answered */
    enum cl_http_take got;
    ssize_t n;
    struct lconn *next, *prev;
    struct cl_http_req req;
    struct cl_http_reply rep;
    struct cl_http_conn h;
};

static void on_listen(struct cl_io *io, uint32_t events);

static void lstop_when_empty(struct lserver *s)
{
    if (s->phase != SERVING && s->open == 0)
        cl_loop_stop(s->loop);
}

/* A connection's task ended: forget it, and accept again if the limit paused us. */
static void lconn_end(struct lconn *c)
{
    struct lserver *s = c->s;
    *(c->prev ? &c->prev->next : &s->conns) = c->next;
    if (c->next)
        c->next->prev = c->prev;
    CL_SYS(close(c->fd));
    s->open--;
    cl_server_closed(s->o->counts);
    if (s->phase == SERVING && !s->listen_io.active &&
        cl_io_start(s->loop, &s->listen_io, s->o->listen_fd, EPOLLIN, on_listen) != 0)
        cl_die(__FILE__, __LINE__, "cl_io_start", errno);
    lstop_when_empty(s);
}

/* [snippet loop] */
/* asyncio's handle_client: read a request, decide, wait, reply; again. */
static int lconn_run(struct cl_task *t)
{
    struct lconn *c = (struct lconn *)t;
    struct lserver *s = c->s;
    CL_BEGIN(t);
    for (;;) {
        c->got = cl_http_take(&c->h, &c->req);
        if (c->got == CL_HTTP_MORE) {
            c->idle = c->h.in_len == 0;
            if (c->idle && s->phase != SERVING)
                break;
            CL_READABLE(t, c->fd);
            c->idle = false;
            c->n = read(c->fd, c->h.in + c->h.in_len, cl_http_in_room(&c->h));
            if (c->n > 0)
                c->h.in_len += (size_t)c->n;
            else if (c->n == 0 || (errno != EAGAIN && errno != EINTR))
                break; /* the client closed, or an error */
            continue;
        }
        if (c->got == CL_HTTP_BAD) {
            cl_server_count(&s->o->counts->bad);
            (void)send(c->fd, c->h.out, c->h.out_len, MSG_NOSIGNAL);
            break;
        }
        cl_server_decide(s->o, &c->req, &c->rep);
        c->pending = true;
        if (c->rep.status == 0)
            break;
        cl_server_work(c->rep.work_ns, &s->never); /* every other connection waits */
        if (c->rep.delay_ns > 0)
            CL_SLEEP(t, c->rep.delay_ns);
        c->rep.close |= s->phase != SERVING;
        cl_http_put_reply(&c->h, &c->req, &c->rep);
        while (c->h.out_off < c->h.out_len) {
            c->n = send(c->fd, c->h.out + c->h.out_off, c->h.out_len - c->h.out_off, MSG_NOSIGNAL);
            if (c->n > 0) {
                c->h.out_off += (size_t)c->n;
            } else if (c->n < 0 && (errno == EAGAIN || errno == EINTR)) {
                CL_WRITABLE(t, c->fd);
            } else {
                break;
            }
        }
        if (c->h.out_off < c->h.out_len)
            break; /* the client is gone: pending, so dropped */
        c->pending = false;
        cl_server_count(&s->o->counts->responses);
        if (c->rep.close)
            break;
    }
    CL_FINALLY(t);
    if (c->pending)
        cl_server_count(&s->o->counts->dropped);
    lconn_end(c);
    CL_END(t);
}
/* [end loop] */

static void on_listen(struct cl_io *io, uint32_t events)
{
    (void)events;
    struct lserver *s = container_of(io, struct lserver, listen_io);
    while (s->open < s->o->max_connections) {
        int fd = (int)accept4(s->o->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (out_of_files(errno))
                break; /* until a connection closes */
            continue;
        }
        set_nodelay(fd);
        struct lconn *c =
            (struct lconn *)cl_task_new(s->loop, lconn_run, sizeof(struct lconn), "connection");
        c->s = s;
        c->fd = fd;
        cl_http_conn_init(&c->h, ++s->next_id);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->open++;
        cl_server_opened(s->o->counts);
        cl_future_unref(&c->task.fut); /* the loop keeps it until it ends */
    }
    cl_io_stop(s->loop, &s->listen_io); /* at the limit: the backlog holds the rest */
}

static void labort(struct lserver *s)
{
    s->phase = ABORTING;
    cl_timer_stop(s->loop, &s->drain);
    for (struct lconn *c = s->conns; c != NULL; c = c->next)
        cl_task_cancel(&c->task);
    lstop_when_empty(s);
}

static void on_drain_end(struct cl_timer *t)
{
    labort(container_of(t, struct lserver, drain));
}

/* Close the listener and the idle connections; the others finish their request. */
static void ldrain(struct lserver *s)
{
    if (s->phase != SERVING)
        return;
    s->phase = DRAINING;
    cl_timer_stop(s->loop, &s->duration);
    cl_io_stop(s->loop, &s->stop_io);
    cl_io_stop(s->loop, &s->listen_io);
    CL_SYS(close(s->o->listen_fd));
    for (struct lconn *c = s->conns; c != NULL; c = c->next)
        if (c->idle)
            cl_task_cancel(&c->task);
    if (s->o->drain_ns == 0)
        labort(s);
    else
        cl_timer_start(s->loop, &s->drain, s->o->drain_ns);
    lstop_when_empty(s);
}

static void on_duration(struct cl_timer *t)
{
    ldrain(container_of(t, struct lserver, duration));
}

static void on_stop(struct cl_io *io, uint32_t events)
{
    (void)events;
    ldrain(container_of(io, struct lserver, stop_io));
}

static void on_abort(struct cl_io *io, uint32_t events)
{
    (void)events;
    struct lserver *s = container_of(io, struct lserver, abort_io);
    cl_io_stop(s->loop, io);
    ldrain(s); /* the listener goes too */
    labort(s);
}

static int run_loop(const struct cl_server_opts *o)
{
    struct lserver s = {
        .o = o,
        .phase = SERVING,
        .duration = {.cb = on_duration},
        .drain = {.cb = on_drain_end},
    };
    s.loop = cl_loop_new(&(struct cl_loop_opts){0});
    if (s.loop == NULL)
        return errno;
    int rc = cl_io_start(s.loop, &s.listen_io, o->listen_fd, EPOLLIN, on_listen);
    if (rc == 0 && o->stop_fd >= 0)
        rc = cl_io_start(s.loop, &s.stop_io, o->stop_fd, EPOLLIN, on_stop);
    if (rc == 0 && o->abort_fd >= 0)
        rc = cl_io_start(s.loop, &s.abort_io, o->abort_fd, EPOLLIN, on_abort);
    if (rc == 0) {
        if (o->duration_ns > 0)
            cl_timer_start(s.loop, &s.duration, o->duration_ns);
        cl_loop_run(s.loop);
    }
    cl_io_stop(s.loop, &s.listen_io);
    cl_io_stop(s.loop, &s.stop_io);
    cl_io_stop(s.loop, &s.abort_io);
    cl_timer_stop(s.loop, &s.duration);
    cl_timer_stop(s.loop, &s.drain);
    if (rc == 0 && s.phase == SERVING)
        CL_SYS(close(o->listen_fd));
    cl_loop_free(s.loop); /* cancels and finishes what is left */
    return rc;
}

int cl_server_run(const struct cl_server_opts *o)
{
    return o->design == CL_SERVER_THREADS ? run_threads(o) : run_loop(o);
}

/* ---- the life of a server process ------------------------------------------------- */

uint64_t cl_server_raise_nofile(void)
{
    struct rlimit r;
    CL_SYS(getrlimit(RLIMIT_NOFILE, &r));
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        CL_SYS(setrlimit(RLIMIT_NOFILE, &r));
    }
    return r.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)r.rlim_cur;
}

uint64_t cl_server_max_connections(uint64_t nofile)
{
    return nofile > 64 ? nofile - 64 : 0;
}

int cl_server_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* The signal waiting on a signalfd, or 0. */
static int pending_signal(int fd)
{
    struct signalfd_siginfo si;
    return read(fd, &si, sizeof si) == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}

static int signal_fd(int a, int b)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, a);
    if (b != 0)
        sigaddset(&set, b);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int cl_server_serve(struct cl_serve *s)
{
    static struct cl_server_counts own;
    struct cl_server_opts *o = &s->opts;
    if (o->counts == NULL)
        o->counts = &own;
    /* The parent's death is a SIGTERM: the same orderly stop. */
    CL_SYS(prctl(PR_SET_PDEATHSIG, SIGTERM));
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-reply is an error, not a death */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGINT);
    CL_PT(pthread_sigmask(SIG_BLOCK, &block, NULL));
    /* A shell starts a background job with SIGINT ignored, and an ignored signal
     * never reaches a signalfd: take the default back (blocked, it kills nothing). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    o->stop_fd = signal_fd(SIGTERM, SIGHUP);
    o->abort_fd = signal_fd(SIGINT, 0);
    uint16_t port = 0;
    o->listen_fd = cl_server_listen(&port);
    if (o->stop_fd < 0 || o->abort_fd < 0 || o->listen_fd < 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1: %s\n", s->name, strerror(errno));
        return 1;
    }
    printf("listening 127.0.0.1:%u\n", (unsigned)port);
    fflush(stdout);
    int rc = s->run(o);
    if (rc != 0) {
        fprintf(stderr, "%s: the server could not start: %s\n", s->name, strerror(rc));
        return 1;
    }
    int aborted = pending_signal(o->abort_fd), stopped = pending_signal(o->stop_fd);
    const char *by = aborted             ? "SIGINT"
                     : stopped == SIGHUP ? "SIGHUP"
                     : stopped           ? "SIGTERM"
                                         : "duration";
    struct cl_server_counts *c = o->counts;
    struct rusage ru;
    CL_SYS(getrusage(RUSAGE_SELF, &ru));
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("{\"design\":\"%s\",\"stopped_by\":\"%s\",\"accepted\":%llu,\"requests\":%llu,"
           "\"responses\":%llu,\"dropped\":%llu,\"bad\":%llu,\"refused\":%llu,\"peak_open\":%llu,"
           "\"cpu_s\":%.6f,\"voluntary_cs\":%ld,\"involuntary_cs\":%ld}\n",
           s->name, by, (unsigned long long)atomic_load(&c->accepted),
           (unsigned long long)atomic_load(&c->requests),
           (unsigned long long)atomic_load(&c->responses),
           (unsigned long long)atomic_load(&c->dropped), (unsigned long long)atomic_load(&c->bad),
           (unsigned long long)atomic_load(&c->refused),
           (unsigned long long)atomic_load(&c->peak_open), cpu, ru.ru_nvcsw, ru.ru_nivcsw);
    fflush(stdout);
    CL_SYS(close(o->stop_fd));
    CL_SYS(close(o->abort_fd));
    return aborted ? 130 : 0;
}
