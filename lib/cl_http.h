/* HTTP/1.1 on one connection, without I/O: the bytes a design read go into the
 * connection's input buffer, cl_http_take cuts whole requests out of them, and
 * cl_http_put_reply writes a reply into its output buffer for the design to send.
 * The three server designs (lib/cl_server.c's threads and loop, bench/server's
 * libuv) share it, so they differ only in how they wait.
 *
 * What it understands: a request line (any method token, a target, HTTP/1.0 or
 * 1.1), headers, and a body of Content-Length bytes; keep-alive as RFC 9112 says
 * (1.1 keeps the connection unless "Connection: close", 1.0 closes it unless
 * "Connection: keep-alive"); pipelined requests, answered in order; HEAD (a reply
 * without its body).
 *
 * Limits: a request's head and body must fit CL_HTTP_IN_CAP bytes (else 431 or
 * 413); a chunked request body is refused (501); obsolete line folding is not
 * understood (400). Each refusal closes the connection after the reply. */
#ifndef CL_HTTP_H
#define CL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_HTTP_IN_CAP  8192 /* one request's head and body */
#define CL_HTTP_OUT_CAP 4096 /* one reply's head and body */

/* The body every server here sends unless its handler says otherwise. */
#define CL_HTTP_BODY "hello, world\n"

/* One request, as its handler sees it. The strings live in the connection's
 * input buffer: valid until the next cl_http_take on that connection. */
struct cl_http_req {
    const char *method; /* "GET", NUL-terminated */
    const char *target; /* "/index.html?q=1", NUL-terminated */
    const char *body;   /* Content-Length bytes, not terminated */
    size_t body_len;    /* 0 without a body */
    int minor;          /* HTTP/1.minor: 0 or 1 */
    bool keep_alive;    /* what the client asked for */
    bool head;          /* a HEAD request: the reply goes without its body */
    uint64_t conn;      /* the connection's number in this server, from 1 */
    uint64_t seq;       /* the request's number on its connection, from 1 */
    uint64_t read_ns;   /* CLOCK_MONOTONIC when its last byte was read */
};

/* What the server does with a request: the defaults come from the server's
 * flags, then its handler (cl_server.h) may change any field. */
struct cl_http_reply {
    int status;       /* 200; 0 drops the connection without a reply */
    const char *body; /* CL_HTTP_BODY; static, or alive until the reply is formatted */
    size_t body_len;
    const char *headers; /* extra header lines, each ending in "\r\n", or NULL */
    uint64_t work_ns;    /* CPU work on the serving thread first */
    uint64_t delay_ns;   /* then a wait (in the loop designs it blocks no other connection) */
    bool close;          /* "Connection: close", and close after the reply */
};

/* The result of cl_http_take. */
enum cl_http_take {
    CL_HTTP_MORE,    /* no whole request buffered yet: read more (in_room > 0) */
    CL_HTTP_REQUEST, /* a request: *req is filled in */
    CL_HTTP_BAD,     /* malformed or too large: out holds the refusal; close after it */
};

struct cl_http_conn {
    uint64_t id;               /* the connection's number, for requests' conn */
    uint64_t seq;              /* requests taken so far */
    size_t in_len;             /* bytes buffered in in[] */
    size_t in_used;            /* bytes of the last request taken: dropped at the next take */
    size_t scanned;            /* in[0, scanned) holds no blank line: resume the search there */
    size_t out_len, out_off;   /* the reply in out[]: its length, and what is sent of it */
    char in[CL_HTTP_IN_CAP];   /* requests as they came */
    char out[CL_HTTP_OUT_CAP]; /* the reply being sent */
};

/* A fresh connection numbered id. */
void cl_http_conn_init(struct cl_http_conn *c, uint64_t id);

/* Where a design reads to: room for this many bytes at in + in_len. */
static inline size_t cl_http_in_room(const struct cl_http_conn *c)
{
    return CL_HTTP_IN_CAP - c->in_len;
}

/* The next whole request buffered on c (CL_HTTP_REQUEST), or CL_HTTP_MORE, or
 * CL_HTTP_BAD with its refusal (400, 413, 431 or 501) formatted in out. */
enum cl_http_take cl_http_take(struct cl_http_conn *c, struct cl_http_req *req);

/* Defaults: 200, CL_HTTP_BODY, no work, no delay, close as the request asked. */
void cl_http_reply_init(struct cl_http_reply *r, const struct cl_http_req *req);

/* Format r, the reply to req, into c->out (out_off back to 0). A reply that does
 * not fit CL_HTTP_OUT_CAP is a programming error (cl_fatal). */
void cl_http_put_reply(struct cl_http_conn *c, const struct cl_http_req *req,
                       const struct cl_http_reply *r);

/* "OK", "Not Found", ...: the reason phrase of a status ("Unknown" if none). */
const char *cl_http_reason(int status);

#endif
