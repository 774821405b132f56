/* cl_server, in both of lib's designs: every request counted and answered, the
 * handler hook (another status, a dropped connection, a delay, close), a graceful
 * stop (the request in flight answered with "Connection: close", the idle
 * connection closed, the listener gone), a stop that drops what is in flight,
 * the connection limit, and --duration. The server runs in a thread of this
 * process, stopped through eventfds; every wait is bounded. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conclab.h"

struct srv {
    struct cl_server_opts o;
    struct cl_server_counts counts;
    pthread_t th;
    uint16_t port;
    int rc;
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    s->rc = cl_server_run(&s->o);
    return NULL;
}

static void srv_start(struct srv *s, enum cl_server_design d, cl_server_handler *h)
{
    s->o.design = d;
    s->o.handler = h;
    s->o.counts = &s->counts;
    s->o.listen_fd = cl_server_listen(&s->port);
    assert_true(s->o.listen_fd >= 0);
    s->o.stop_fd = eventfd(0, EFD_CLOEXEC);
    s->o.abort_fd = eventfd(0, EFD_CLOEXEC);
    if (s->o.max_connections == 0)
        s->o.max_connections = 100;
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_signal(int fd)
{
    assert_int_equal(eventfd_write(fd, 1), 0);
}

/* Join the server's thread within 10 s; its run returned 0. */
static void srv_join(struct srv *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    assert_int_equal(pthread_timedjoin_np(s->th, NULL, &until), 0);
    assert_int_equal(s->rc, 0);
    close(s->o.stop_fd);
    close(s->o.abort_fd);
    assert_int_equal(atomic_load(&s->counts.open), 0);
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void say(int fd, const char *req)
{
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
}

/* One whole reply into buf (NUL-terminated); 0 if the server closed first.
 * Fails the test if nothing comes within 5 s. A byte at a time, so that a
 * pipelined reply behind it stays for the next call. */
static size_t reply(int fd, char *buf, size_t cap)
{
    size_t have = 0, want = 0;
    for (;;) {
        assert_true(have + 1 < cap);
        ssize_t n = read(fd, buf + have, 1);
        if (n < 0)
            fail_msg("no reply within 5 s: %s", strerror(errno));
        if (n == 0) {
            assert_int_equal(have, 0); /* closed mid-reply */
            return 0;
        }
        have += (size_t)n;
        buf[have] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
        if (end != NULL && cl != NULL)
            want = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
        if (want > 0 && have >= want) {
            assert_int_equal(have, want);
            return have;
        }
    }
}

static const char GET[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

static void test_every_request_counted_and_answered(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        struct srv s = {0};
        srv_start(&s, d, NULL);
        int fds[4];
        char buf[1024];
        for (int i = 0; i < 4; i++)
            fds[i] = dial(s.port);
        for (int k = 0; k < 25; k++) {
            for (int i = 0; i < 4; i++)
                say(fds[i], GET);
            for (int i = 0; i < 4; i++) {
                assert_true(reply(fds[i], buf, sizeof buf) > 0);
                assert_contains(buf, "HTTP/1.1 200 OK\r\n");
                assert_contains(buf, "\r\n\r\nhello, world\n");
            }
        }
        for (int i = 0; i < 4; i++)
            close(fds[i]);
        srv_signal(s.o.stop_fd);
        srv_join(&s);
        assert_int_equal(atomic_load(&s.counts.accepted), 4);
        assert_int_equal(atomic_load(&s.counts.requests), 100);
        assert_int_equal(atomic_load(&s.counts.responses), 100);
        assert_int_equal(atomic_load(&s.counts.dropped), 0);
        assert_int_equal(atomic_load(&s.counts.peak_open), 4);
    }
}

/* The patterns chapter's kind of handler: errors, drops, latency, close. */
static void faults(void *arg, const struct cl_http_req *req, struct cl_http_reply *r)
{
    (void)arg;
    if (strcmp(req->target, "/drop") == 0) {
        r->status = 0;
    } else if (strcmp(req->target, "/slow") == 0) {
        r->delay_ns = CL_MS(300);
    } else if (strcmp(req->target, "/very-slow") == 0) {
        r->delay_ns = CL_MS(10000);
    } else if (strcmp(req->target, "/close") == 0) {
        r->close = true;
    } else if (req->seq == 2) {
        r->status = 503;
        r->body = "busy\n";
        r->body_len = 5;
        r->headers = "Retry-After: 1\r\n";
    }
}

static void test_the_handler_hook(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        struct srv s = {0};
        srv_start(&s, d, faults);
        char buf[1024];
        int a = dial(s.port), b = dial(s.port);
        say(a, GET);
        assert_true(reply(a, buf, sizeof buf) > 0);
        assert_contains(buf, "HTTP/1.1 200 OK\r\n");
        say(a, GET);
        assert_true(reply(a, buf, sizeof buf) > 0);
        assert_contains(buf, "HTTP/1.1 503 Service Unavailable\r\n");
        assert_contains(buf, "Retry-After: 1\r\n\r\nbusy\n");
        say(a, "GET /close HTTP/1.1\r\n\r\n");
        assert_true(reply(a, buf, sizeof buf) > 0);
        assert_contains(buf, "Connection: close\r\n");
        assert_int_equal(reply(a, buf, sizeof buf), 0); /* then closed */
        say(b, "GET /drop HTTP/1.1\r\n\r\n");
        assert_int_equal(reply(b, buf, sizeof buf), 0); /* closed, no reply */
        close(a);
        close(b);
        srv_signal(s.o.stop_fd);
        srv_join(&s);
        assert_int_equal(atomic_load(&s.counts.requests), 4);
        assert_int_equal(atomic_load(&s.counts.responses), 3);
        assert_int_equal(atomic_load(&s.counts.dropped), 1);
    }
}

static void wait_for_requests(struct srv *s, uint64_t n)
{
    double end = now_s() + 5;
    while (atomic_load(&s->counts.requests) < n && now_s() < end)
        cl_sleep_ns(CL_MS(1));
    assert_int_equal(atomic_load(&s->counts.requests), n);
}

static void test_a_graceful_stop_answers_what_is_in_flight(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        struct srv s = {.o.drain_ns = CL_MS(5000)};
        srv_start(&s, d, faults);
        char buf[1024];
        int idle = dial(s.port), busy = dial(s.port);
        say(idle, GET);
        assert_true(reply(idle, buf, sizeof buf) > 0);
        say(busy, "GET /slow HTTP/1.1\r\n\r\n");
        wait_for_requests(&s, 2);
        srv_signal(s.o.stop_fd);
        assert_true(reply(busy, buf, sizeof buf) > 0); /* answered, and told to go */
        assert_contains(buf, "HTTP/1.1 200 OK\r\n");
        assert_contains(buf, "Connection: close\r\n");
        assert_int_equal(reply(busy, buf, sizeof buf), 0);
        assert_int_equal(reply(idle, buf, sizeof buf), 0); /* the idle one is closed */
        srv_join(&s);
        assert_int_equal(dial(s.port), -ECONNREFUSED); /* the listener is gone */
        close(idle);
        close(busy);
        assert_int_equal(atomic_load(&s.counts.requests), 2);
        assert_int_equal(atomic_load(&s.counts.responses), 2);
        assert_int_equal(atomic_load(&s.counts.dropped), 0);
    }
}

static void test_an_abort_drops_what_is_in_flight(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        for (int abort_fd = 0; abort_fd <= 1; abort_fd++) {
            /* a stop with no drain time, or an abort during a long drain */
            struct srv s = {.o.drain_ns = abort_fd ? CL_MS(10000) : 0};
            srv_start(&s, d, faults);
            char buf[1024];
            int fd = dial(s.port);
            say(fd, "GET /very-slow HTTP/1.1\r\n\r\n");
            wait_for_requests(&s, 1);
            double t0 = now_s();
            srv_signal(s.o.stop_fd);
            if (abort_fd)
                srv_signal(s.o.abort_fd);
            assert_int_equal(reply(fd, buf, sizeof buf), 0);
            srv_join(&s);
            assert_true(now_s() - t0 < 2.0); /* not the request's 10 s */
            close(fd);
            assert_int_equal(atomic_load(&s.counts.responses), 0);
            assert_int_equal(atomic_load(&s.counts.dropped), 1);
        }
    }
}

static void test_the_connection_limit(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        struct srv s = {.o.max_connections = 2};
        srv_start(&s, d, NULL);
        char buf[1024];
        int fds[5];
        for (int i = 0; i < 5; i++) { /* the kernel's backlog holds those past the limit */
            fds[i] = dial(s.port);
            say(fds[i], GET);
        }
        for (int i = 0; i < 5; i++) {
            assert_true(reply(fds[i], buf, sizeof buf) > 0);
            close(fds[i]); /* a slot for the next one */
        }
        srv_signal(s.o.stop_fd);
        srv_join(&s);
        assert_int_equal(atomic_load(&s.counts.responses), 5);
        assert_int_equal(atomic_load(&s.counts.accepted), 5);
        assert_true(atomic_load(&s.counts.peak_open) <= 2);
    }
}

static void test_bad_requests_are_refused_and_counted(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        struct srv s = {0};
        srv_start(&s, d, NULL);
        char buf[1024];
        int fd = dial(s.port);
        say(fd, "GET / HTTP/1.1\r\n\r\nBROKEN\r\n\r\n");
        assert_true(reply(fd, buf, sizeof buf) > 0);
        assert_contains(buf, "HTTP/1.1 200 OK\r\n");
        assert_true(reply(fd, buf, sizeof buf) > 0);
        assert_contains(buf, "HTTP/1.1 400 Bad Request\r\n");
        assert_int_equal(reply(fd, buf, sizeof buf), 0);
        close(fd);
        srv_signal(s.o.stop_fd);
        srv_join(&s);
        assert_int_equal(atomic_load(&s.counts.requests), 1);
        assert_int_equal(atomic_load(&s.counts.bad), 1);
    }
}

static void test_a_duration_ends_the_run(void **state)
{
    (void)state;
    for (int d = CL_SERVER_THREADS; d <= CL_SERVER_LOOP; d++) {
        struct srv s = {.o.duration_ns = CL_MS(100)};
        srv_start(&s, d, NULL);
        srv_join(&s); /* with no stop at all */
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_request_counted_and_answered),
        cmocka_unit_test(test_the_handler_hook),
        cmocka_unit_test(test_a_graceful_stop_answers_what_is_in_flight),
        cmocka_unit_test(test_an_abort_drops_what_is_in_flight),
        cmocka_unit_test(test_the_connection_limit),
        cmocka_unit_test(test_bad_requests_are_refused_and_counted),
        cmocka_unit_test(test_a_duration_ends_the_run),
    };
    return UNIT_MAIN("server", tests);
}
