/* HTTP/1.1 requests cut out of a byte stream, and replies formatted: see cl_http.h. */
#include "cl_http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cl_check.h"
#include "cl_time.h"

void cl_http_conn_init(struct cl_http_conn *c, uint64_t id)
{
    c->id = id;
    c->seq = 0;
    c->in_len = c->in_used = c->scanned = 0;
    c->out_len = c->out_off = 0;
}

const char *cl_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

void cl_http_reply_init(struct cl_http_reply *r, const struct cl_http_req *req)
{
    *r = (struct cl_http_reply){
        .status = 200,
        .body = CL_HTTP_BODY,
        .body_len = sizeof CL_HTTP_BODY - 1,
        .close = !req->keep_alive,
    };
}

void cl_http_put_reply(struct cl_http_conn *c, const struct cl_http_req *req,
                       const struct cl_http_reply *r)
{
    const char *conn = r->close          ? "Connection: close\r\n"
                       : req->minor == 0 ? "Connection: keep-alive\r\n"
                                         : "";
    int n = snprintf(
        c->out, sizeof c->out,
        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s%s\r\n", r->status,
        cl_http_reason(r->status), r->body_len, conn, r->headers ? r->headers : "");
    size_t head = n < 0 ? sizeof c->out : (size_t)n; /* n < 0: an encoding error, never here */
    size_t body = req->head ? 0 : r->body_len;
    if (head + body > sizeof c->out)
        cl_fatal("cl_http_put_reply: a %zu-byte body and its head do not fit %d bytes", r->body_len,
                 CL_HTTP_OUT_CAP);
    memcpy(c->out + head, r->body, body);
    c->out_len = head + body;
    c->out_off = 0;
}

/* A refusal: its status line and reason as the body, then the connection closes. */
static enum cl_http_take refuse(struct cl_http_conn *c, int status)
{
    struct cl_http_req req = {.minor = 1};
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", cl_http_reason(status));
    struct cl_http_reply r = {.status = status, .body = body, .body_len = (size_t)n, .close = true};
    cl_http_put_reply(c, &req, &r);
    return CL_HTTP_BAD;
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* The end of the head (just past its blank line), or 0 if it is not all here.
 * A line may end in CRLF or, leniently, LF alone. */
static size_t head_end(struct cl_http_conn *c)
{
    size_t from = c->scanned;
    while (from < c->in_len) {
        const char *nl = memchr(c->in + from, '\n', c->in_len - from);
        if (nl == NULL)
            break;
        size_t i = (size_t)(nl - c->in);
        c->scanned = i; /* if the body is not all here, the search resumes here */
        if (i + 1 < c->in_len && c->in[i + 1] == '\n')
            return i + 2;
        if (i + 2 < c->in_len && c->in[i + 1] == '\r' && c->in[i + 2] == '\n')
            return i + 3;
        if (i + 2 >= c->in_len) /* the blank line may be on its way: look here again */
            return 0;
        from = i + 1;
    }
    c->scanned = c->in_len;
    return 0;
}

/* The start of the line after the one at p (end if there is none). */
static const char *next_line(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl + 1 : end;
}

/* A line [p, end) without its line ending. */
static const char *line_end(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    return (e > p && e[-1] == '\r') ? e - 1 : e;
}

static bool token_in(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < len;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i - start == tl && strncasecmp(v + start, token, tl) == 0)
            return true;
    }
    return false;
}

struct head {
    size_t method_len, target_off, target_len;
    int minor;
    bool close, keep_alive, has_length;
    size_t content_length;
};

/* Read the head in[0, end) without changing it: 0, or the status to refuse with. */
static int parse_head(const char *in, size_t end, struct head *h)
{
    const char *p = in, *stop = in + end;
    const char *le = line_end(p, stop);
    /* the request line: method SP target SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', (size_t)(le - p));
    if (sp1 == NULL || sp1 == p)
        return 400;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar(*q))
            return 400;
    const char *tgt = sp1 + 1;
    const char *sp2 = memchr(tgt, ' ', (size_t)(le - tgt));
    if (sp2 == NULL || sp2 == tgt)
        return 400;
    for (const char *q = tgt; q < sp2; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return 400;
    const char *ver = sp2 + 1;
    if (le - ver != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[6] != '.' || ver[5] < '0' ||
        ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
        return 400;
    if (ver[5] != '1' || ver[7] > '1')
        return 505;
    *h = (struct head){
        .method_len = (size_t)(sp1 - p),
        .target_off = (size_t)(tgt - in),
        .target_len = (size_t)(sp2 - tgt),
        .minor = ver[7] - '0',
    };
    /* the headers, up to the blank line */
    for (p = next_line(p, stop); p < stop; p = next_line(p, stop)) {
        le = line_end(p, stop);
        if (le == p)
            break; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return 400; /* obsolete line folding */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon == NULL || colon == p)
            return 400;
        for (const char *q = p; q < colon; q++)
            if (!is_tchar(*q))
                return 400;
        const char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t nlen = (size_t)(colon - p), vlen = (size_t)(ve - v);
        if (nlen == 10 && strncasecmp(p, "connection", 10) == 0) {
            h->close |= token_in(v, vlen, "close");
            h->keep_alive |= token_in(v, vlen, "keep-alive");
        } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
            size_t n = 0;
            if (vlen == 0 || vlen > 9)
                return vlen > 9 ? 413 : 400;
            for (const char *q = v; q < ve; q++) {
                if (*q < '0' || *q > '9')
                    return 400;
                n = n * 10 + (size_t)(*q - '0');
            }
            if (h->has_length && n != h->content_length)
                return 400;
            h->has_length = true;
            h->content_length = n;
        } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
            return 501;
        }
    }
    return 0;
}

enum cl_http_take cl_http_take(struct cl_http_conn *c, struct cl_http_req *req)
{
    if (c->in_used > 0) { /* drop the request answered last */
        c->in_len -= c->in_used;
        memmove(c->in, c->in + c->in_used, c->in_len);
        c->in_used = 0;
        c->scanned = 0;
    }
    size_t end = head_end(c);
    if (end == 0)
        return c->in_len == CL_HTTP_IN_CAP ? refuse(c, 431) : CL_HTTP_MORE;
    struct head h;
    int bad = parse_head(c->in, end, &h);
    if (bad != 0)
        return refuse(c, bad);
    if (h.content_length > CL_HTTP_IN_CAP - end)
        return refuse(c, 413);
    if (c->in_len < end + h.content_length)
        return CL_HTTP_MORE;
    c->in[h.method_len] = '\0';
    c->in[h.target_off + h.target_len] = '\0';
    *req = (struct cl_http_req){
        .method = c->in,
        .target = c->in + h.target_off,
        .body = c->in + end,
        .body_len = h.content_length,
        .minor = h.minor,
        .keep_alive = h.minor == 1 ? !h.close : (h.keep_alive && !h.close),
        .head = h.method_len == 4 && memcmp(c->in, "HEAD", 4) == 0,
        .conn = c->id,
        .seq = ++c->seq,
        .read_ns = cl_now_ns(),
    };
    c->in_used = end + h.content_length;
    return CL_HTTP_REQUEST;
}
