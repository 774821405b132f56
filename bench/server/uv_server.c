/* The HTTP server on libuv, as a libuv program is usually written: each
 * connection reads for as long as it is open (uv_read_start once), its requests
 * are cut out of the bytes as they come, and a reply goes out with uv_write. It
 * shares lib's parser, counts, handler hook and process life (cl_http,
 * cl_server), so it differs from lib's loop design only in its event loop. */
#include "uv_server.h"

#include <stdlib.h>
#include <uv.h>

#include "conclab.h"

enum phase { SERVING, DRAINING, ABORTING };

struct uconn;

struct userver {
    const struct cl_server_opts *o;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_poll_t stop_poll, abort_poll;
    uv_timer_t duration, drain;
    struct uconn *conns; /* open connections */
    uint64_t open, next_id;
    bool waiting_accept; /* a connection waits: we were at the limit */
    enum phase phase;
    _Atomic bool never; /* the loop's work cannot be cut short: it runs alone */
};

struct uconn {
    uv_tcp_t tcp;     /* the socket's handle; data points to the uconn */
    uv_timer_t delay; /* a reply's wait */
    uv_write_t wr;
    struct userver *s;
    int handles;   /* of tcp and delay, not yet closed: freed at 0 */
    bool busy;     /* a request is being answered: the next waits in the buffer */
    bool pending;  /* a request read and not yet answered */
    bool refusing; /* writing a refusal (a bad request), then closing */
    bool reading;  /* uv_read_start in force */
    bool closing;
    struct cl_http_req req;
    struct cl_http_reply rep;
    struct uconn *next, *prev;
    struct cl_http_conn h;
};

static void check(int rc, const char *call)
{
    if (rc != 0)
        cl_die(__FILE__, __LINE__, call, -rc);
}

static void stop_when_empty(struct userver *s)
{
    if (s->phase != SERVING && s->open == 0)
        uv_stop(&s->loop);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct uconn *c = h->data;
    if (--c->handles == 0)
        free(c);
}

static void accept_one(struct userver *s);

static void conn_close(struct uconn *c)
{
    if (c->closing)
        return;
    struct userver *s = c->s;
    c->closing = true;
    if (c->pending)
        cl_server_count(&s->o->counts->dropped);
    *(c->prev ? &c->prev->next : &s->conns) = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->delay, on_conn_closed);
    s->open--;
    cl_server_closed(s->o->counts);
    if (s->phase == SERVING && s->waiting_accept) {
        s->waiting_accept = false;
        accept_one(s);
    }
    stop_when_empty(s);
}

static void process(struct uconn *c);

static void on_written(uv_write_t *wr, int status)
{
    struct uconn *c = wr->data;
    if (c->closing)
        return;
    if (status < 0 || c->refusing) {
        conn_close(c); /* pending if a reply failed: dropped */
        return;
    }
    c->pending = c->busy = false;
    cl_server_count(&c->s->o->counts->responses);
    if (c->rep.close) {
        conn_close(c);
        return;
    }
    process(c); /* a pipelined request may be buffered already */
}

static void write_out(struct uconn *c)
{
    uv_buf_t buf = uv_buf_init(c->h.out, (unsigned)c->h.out_len);
    c->wr.data = c;
    int rc = uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc != 0)
        conn_close(c);
}

static void reply(struct uconn *c)
{
    c->rep.close |= c->s->phase != SERVING;
    cl_http_put_reply(&c->h, &c->req, &c->rep);
    write_out(c);
}

static void on_delay(uv_timer_t *t)
{
    reply(t->data);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct uconn *c = h->data;
    *buf = uv_buf_init(c->h.in + c->h.in_len, (unsigned)cl_http_in_room(&c->h));
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct uconn *c = stream->data;
    if (n == UV_ENOBUFS) { /* the buffer is full behind a request being answered */
        uv_read_stop(stream);
        c->reading = false;
        return;
    }
    if (n < 0) { /* UV_EOF: the client closed; or an error */
        conn_close(c);
        return;
    }
    c->h.in_len += (size_t)n;
    process(c);
}

/* [snippet libuv] */
/* Answer the buffered requests, one at a time and in order. */
static void process(struct uconn *c)
{
    struct userver *s = c->s;
    if (c->busy || c->closing)
        return;
    enum cl_http_take got = cl_http_take(&c->h, &c->req);
    if (got == CL_HTTP_MORE) {
        if (c->h.in_len == 0 && s->phase != SERVING) {
            conn_close(c); /* idle during a drain */
            return;
        }
        if (!c->reading) {
            check(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb), "uv_read_start");
            c->reading = true;
        }
        return;
    }
    c->busy = true;
    if (got == CL_HTTP_BAD) {
        cl_server_count(&s->o->counts->bad);
        c->refusing = true;
        write_out(c);
        return;
    }
    cl_server_decide(s->o, &c->req, &c->rep);
    c->pending = true;
    if (c->rep.status == 0) {
        conn_close(c);
        return;
    }
    cl_server_work(c->rep.work_ns, &s->never); /* every other connection waits */
    if (c->rep.delay_ns == 0) {
        reply(c);
        return;
    }
    /* libuv's timers count in ms: round up, never early */
    check(uv_timer_start(&c->delay, on_delay, (c->rep.delay_ns + 999999) / 1000000, 0),
          "uv_timer_start");
}
/* [end libuv] */

static void accept_one(struct userver *s)
{
    struct uconn *c = cl_xcalloc(1, sizeof *c);
    c->s = s;
    c->handles = 2;
    c->tcp.data = c->delay.data = c;
    check(uv_tcp_init(&s->loop, &c->tcp), "uv_tcp_init");
    check(uv_timer_init(&s->loop, &c->delay), "uv_timer_init");
    cl_http_conn_init(&c->h, ++s->next_id);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open++;
    cl_server_opened(s->o->counts);
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c); /* gone before it was accepted */
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1);
    process(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct userver *s = listener->data;
    if (status < 0 || s->phase != SERVING)
        return;
    if (s->open >= s->o->max_connections) {
        s->waiting_accept = true; /* libuv stops accepting until we take this one */
        return;
    }
    accept_one(s);
}

static void abort_all(struct userver *s)
{
    s->phase = ABORTING;
    (void)uv_timer_stop(&s->drain);
    while (s->conns != NULL)
        conn_close(s->conns);
    stop_when_empty(s);
}

static void on_drain_end(uv_timer_t *t)
{
    abort_all(t->data);
}

static void drain(struct userver *s)
{
    if (s->phase != SERVING)
        return;
    s->phase = DRAINING;
    (void)uv_timer_stop(&s->duration);
    (void)uv_poll_stop(&s->stop_poll);
    uv_close((uv_handle_t *)&s->listener, NULL);
    for (struct uconn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->busy && c->h.in_len == 0)
            conn_close(c);
    }
    if (s->o->drain_ns == 0)
        abort_all(s);
    else
        check(uv_timer_start(&s->drain, on_drain_end, (s->o->drain_ns + 999999) / 1000000, 0),
              "uv_timer_start");
    stop_when_empty(s);
}

static void on_duration(uv_timer_t *t)
{
    drain(t->data);
}

static void on_stop(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    drain(p->data);
}

static void on_abort(uv_poll_t *p, int status, int events)
{
    (void)status, (void)events;
    struct userver *s = p->data;
    (void)uv_poll_stop(p);
    drain(s);
    abort_all(s);
}

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int uv_server_run(const struct cl_server_opts *o)
{
    struct userver *s = cl_xcalloc(1, sizeof *s);
    s->o = o;
    s->phase = SERVING;
    int rc = uv_loop_init(&s->loop);
    if (rc != 0) {
        free(s);
        return -rc;
    }
    s->listener.data = s->stop_poll.data = s->abort_poll.data = s;
    s->duration.data = s->drain.data = s;
    check(uv_tcp_init(&s->loop, &s->listener), "uv_tcp_init");
    check(uv_timer_init(&s->loop, &s->duration), "uv_timer_init");
    check(uv_timer_init(&s->loop, &s->drain), "uv_timer_init");
    check(uv_poll_init(&s->loop, &s->stop_poll, o->stop_fd), "uv_poll_init");
    check(uv_poll_init(&s->loop, &s->abort_poll, o->abort_fd), "uv_poll_init");
    rc = uv_tcp_open(&s->listener, o->listen_fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, SOMAXCONN, on_connection);
    if (rc == 0) {
        check(uv_poll_start(&s->stop_poll, UV_READABLE, on_stop), "uv_poll_start");
        check(uv_poll_start(&s->abort_poll, UV_READABLE, on_abort), "uv_poll_start");
        if (o->duration_ns > 0)
            check(uv_timer_start(&s->duration, on_duration, (o->duration_ns + 999999) / 1000000, 0),
                  "uv_timer_start");
        (void)uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    /* close what is left, and let libuv finish closing it */
    close_if_open((uv_handle_t *)&s->listener);
    close_if_open((uv_handle_t *)&s->stop_poll);
    close_if_open((uv_handle_t *)&s->abort_poll);
    close_if_open((uv_handle_t *)&s->duration);
    close_if_open((uv_handle_t *)&s->drain);
    (void)uv_run(&s->loop, UV_RUN_DEFAULT);
    check(uv_loop_close(&s->loop), "uv_loop_close");
    free(s);
    return -rc;
}
