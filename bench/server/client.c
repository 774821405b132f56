/* http-client: the small client the server's tests use. It opens N connections
 * to 127.0.0.1:PORT and sends M requests on each (P at a time, pipelined), every
 * connection's requests in flight together, and checks every reply byte for byte
 * against the server's fixed one. A connection closes as soon as its last reply
 * is in, so a server at its connection limit can take the next.
 *
 *   http-client --port P [--connections N] [--requests M] [--pipeline P]
 *   http-client --port P --raw 'GET / HTTP/1.0\r\n\r\n'   (prints what comes back)
 *
 * One JSON line: {"connections","requests","ok","wrong","wall_s"}. Exit 0 when
 * every reply was right, 1 when one was wrong or missing (the first is named on
 * stderr), 2 on bad input, 3 when the server did not answer within --timeout-ms. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "conclab.h"

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
static const char expected[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
    "\r\n" CL_HTTP_BODY;

struct conn {
    int fd;
    uint64_t sent, got; /* requests sent, replies received */
    size_t have;        /* bytes of the current reply received */
};

static uint64_t timeout_ms = 5000;

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Exit statuses of a failed read: the server closed, answered wrongly, or not at all. */
static int read_reply(struct conn *c, uint64_t i)
{
    char buf[sizeof expected];
    while (c->have < sizeof expected - 1) {
        ssize_t n = read(c->fd, buf + c->have, sizeof expected - 1 - c->have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fprintf(stderr, "http-client: connection %llu: no reply within %llu ms\n",
                    (unsigned long long)i + 1, (unsigned long long)timeout_ms);
            return CL_EXIT_HANG;
        }
        if (n <= 0) {
            fprintf(stderr, "http-client: connection %llu: closed after %llu of its replies\n",
                    (unsigned long long)i + 1, (unsigned long long)c->got);
            return CL_EXIT_WRONG;
        }
        if (memcmp(buf + c->have, expected + c->have, (size_t)n) != 0) {
            buf[c->have + (size_t)n] = '\0';
            fprintf(stderr, "http-client: connection %llu, reply %llu: unexpected bytes: %s\n",
                    (unsigned long long)i + 1, (unsigned long long)c->got + 1, buf);
            return CL_EXIT_WRONG;
        }
        c->have += (size_t)n;
    }
    c->have = 0;
    c->got++;
    return CL_EXIT_OK;
}

static bool send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* --raw: the text with \r and \n written out, sent once; print what comes back. */
static int raw(uint16_t port, const char *text)
{
    char msg[4096];
    size_t len = 0;
    for (const char *p = text; *p && len < sizeof msg; p++) {
        if (p[0] == '\\' && (p[1] == 'r' || p[1] == 'n')) {
            msg[len++] = p[1] == 'r' ? '\r' : '\n';
            p++;
        } else {
            msg[len++] = *p;
        }
    }
    int fd = connect_to(port);
    if (fd < 0 || !send_all(fd, msg, len)) {
        fprintf(stderr, "http-client: 127.0.0.1:%u: %s\n", port, strerror(errno));
        return CL_EXIT_WRONG;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            printf("[no more within %llu ms]\n", (unsigned long long)timeout_ms);
            break;
        }
        if (n <= 0) {
            printf("[closed]\n");
            break;
        }
        fwrite(buf, 1, (size_t)n, stdout);
    }
    close(fd);
    return CL_EXIT_OK;
}

int main(int argc, char **argv)
{
    uint64_t port = 0, nconn = 10, nreq = 100, pipeline = 1, raw_mode = 0;
    struct flag flags[] = {
        {"port", "the server's port on 127.0.0.1", &port, 1, 65535, .unset = "none: required"},
        {"connections", "connections, their requests in flight together", &nconn, 1, 10000,
         .words = NULL},
        {"requests", "requests per connection", &nreq, 1, 1000000, .words = NULL},
        {"pipeline", "requests sent back to back before reading their replies", &pipeline, 1, 64,
         .words = NULL},
        {"timeout-ms", "how long to wait for a reply before giving up (exit 3)", &timeout_ms, 1,
         600000, .words = NULL},
    };
    /* --raw TEXT takes a string, which the flags do not: take it out first */
    const char *raw_text = NULL;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--raw") == 0) {
            raw_text = argv[i + 1];
            raw_mode = 1;
            memmove(&argv[i], &argv[i + 2], (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    int rc = PARSE_FLAGS(argc, argv,
                         "Requests to 127.0.0.1:PORT, every reply checked; one JSON line.\n"
                         "--raw TEXT sends TEXT (with \\r and \\n) and prints what comes back.",
                         flags);
    if (rc >= 0)
        return rc;
    if (!flags[0].given) {
        fprintf(stderr, "http-client: --port is required\n");
        return CL_EXIT_USAGE;
    }
    if (raw_mode)
        return raw((uint16_t)port, raw_text);
    (void)cl_server_raise_nofile();

    struct conn *conns = cl_xcalloc(nconn, sizeof *conns);
    uint64_t t0 = cl_now_ns();
    rc = CL_EXIT_OK;
    for (uint64_t i = 0; i < nconn && rc == CL_EXIT_OK; i++) {
        conns[i].fd = connect_to((uint16_t)port);
        if (conns[i].fd < 0) {
            fprintf(stderr, "http-client: connection %llu to 127.0.0.1:%llu: %s\n",
                    (unsigned long long)i + 1, (unsigned long long)port, strerror(errno));
            rc = CL_EXIT_WRONG;
        }
    }
    char batch[64 * sizeof request];
    for (uint64_t k = 0; k < pipeline; k++)
        memcpy(batch + k * (sizeof request - 1), request, sizeof request - 1);
    uint64_t ok = 0;
    for (uint64_t round = 0; round * pipeline < nreq && rc == CL_EXIT_OK; round++) {
        uint64_t n = nreq - round * pipeline < pipeline ? nreq - round * pipeline : pipeline;
        for (uint64_t i = 0; i < nconn && rc == CL_EXIT_OK; i++) {
            if (!send_all(conns[i].fd, batch, n * (sizeof request - 1))) {
                fprintf(stderr, "http-client: connection %llu: send: %s\n",
                        (unsigned long long)i + 1, strerror(errno));
                rc = CL_EXIT_WRONG;
            }
            conns[i].sent += n;
        }
        for (uint64_t i = 0; i < nconn && rc == CL_EXIT_OK; i++) {
            while (conns[i].got < conns[i].sent && rc == CL_EXIT_OK)
                if ((rc = read_reply(&conns[i], i)) == CL_EXIT_OK)
                    ok++;
            if (conns[i].got == nreq) { /* its last reply: free the server's slot */
                close(conns[i].fd);
                conns[i].fd = -1;
            }
        }
    }
    for (uint64_t i = 0; i < nconn; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(conns);
    uint64_t total = nconn * nreq;
    printf("{\"connections\":%llu,\"requests\":%llu,\"ok\":%llu,\"wrong\":%llu,\"wall_s\":%.6f}\n",
           (unsigned long long)nconn, (unsigned long long)total, (unsigned long long)ok,
           (unsigned long long)(total - ok), cl_seconds(cl_now_ns() - t0));
    return rc;
}
