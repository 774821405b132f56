/* cl_http: requests cut out of bytes however they arrive (whole, byte by byte,
 * pipelined), keep-alive by version and header, bodies, every refusal with its
 * status, and replies formatted byte for byte. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "cl_http.h"

static struct cl_http_conn conn;

static void feed(struct cl_http_conn *c, const char *s)
{
    size_t n = strlen(s);
    assert_true(n <= cl_http_in_room(c));
    memcpy(c->in + c->in_len, s, n);
    c->in_len += n;
}

static void test_a_get_with_keep_alive(void **state)
{
    (void)state;
    struct cl_http_req r;
    cl_http_conn_init(&conn, 7);
    feed(&conn, "GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.target, "/a?b=1");
    assert_int_equal(r.minor, 1);
    assert_true(r.keep_alive);
    assert_false(r.head);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.conn, 7);
    assert_int_equal(r.seq, 1);
    assert_true(r.read_ns > 0);
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_MORE);
    assert_int_equal(conn.in_len, 0);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    const char *req = "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    struct cl_http_req r;
    cl_http_conn_init(&conn, 1);
    for (size_t i = 0; req[i] != '\0'; i++) {
        assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_MORE);
        conn.in[conn.in_len++] = req[i];
    }
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    assert_string_equal(r.method, "POST");
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "hello", 5);
}

static void test_pipelined_requests_in_order(void **state)
{
    (void)state;
    struct cl_http_req r;
    cl_http_conn_init(&conn, 1);
    feed(&conn, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET /3 HT");
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    assert_string_equal(r.target, "/1");
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    assert_string_equal(r.target, "/2");
    assert_memory_equal(r.body, "xy", 2);
    assert_int_equal(r.seq, 2);
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_MORE);
    feed(&conn, "TP/1.1\r\n\r\n");
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    assert_string_equal(r.target, "/3");
    assert_int_equal(r.seq, 3);
}

static void test_keep_alive_by_version_and_header(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        bool keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\nHost: lf-only\n\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cl_http_req r;
        cl_http_conn_init(&conn, 1);
        feed(&conn, cases[i].req);
        assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
        if (r.keep_alive != cases[i].keep)
            fail_msg("%s: keep_alive %d", cases[i].req, r.keep_alive);
    }
}

static void expect_refusal(const char *req, const char *status_line)
{
    struct cl_http_req r;
    cl_http_conn_init(&conn, 1);
    memcpy(conn.in, req, strlen(req));
    conn.in_len = strlen(req);
    if (cl_http_take(&conn, &r) != CL_HTTP_BAD)
        fail_msg("not refused: %s", req);
    conn.out[conn.out_len] = '\0';
    if (strncmp(conn.out, status_line, strlen(status_line)) != 0)
        fail_msg("%s: got %s", req, conn.out);
    assert_contains(conn.out, "Connection: close\r\n");
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refusal("GET /\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n");
    expect_refusal("GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n");
    expect_refusal("GET / HTTQ/1.1\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal("G(T / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal("GET / HTTP/1.1\r\nNoColon\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                   "HTTP/1.1 400 ");
    expect_refusal("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                   "HTTP/1.1 501 Not Implemented\r\n");
    expect_refusal("POST / HTTP/1.1\r\nContent-Length: 9000\r\n\r\n",
                   "HTTP/1.1 413 Content Too Large\r\n");
    /* a head that never ends within the buffer */
    cl_http_conn_init(&conn, 1);
    feed(&conn, "GET / HTTP/1.1\r\n");
    while (cl_http_in_room(&conn) > 0)
        conn.in[conn.in_len++] = 'x';
    struct cl_http_req r;
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_BAD);
    assert_memory_equal(conn.out, "HTTP/1.1 431 ", 13);
}

static void test_replies_byte_for_byte(void **state)
{
    (void)state;
    struct cl_http_req r;
    struct cl_http_reply rep;
    cl_http_conn_init(&conn, 1);
    feed(&conn, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    cl_http_reply_init(&rep, &r);
    cl_http_put_reply(&conn, &r, &rep);
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                       "hello, world\n";
    assert_int_equal(conn.out_len, strlen(want));
    assert_memory_equal(conn.out, want, strlen(want));

    rep = (struct cl_http_reply){.status = 503,
                                 .body = "down\n",
                                 .body_len = 5,
                                 .headers = "Retry-After: 1\r\n",
                                 .close = true};
    cl_http_put_reply(&conn, &r, &rep);
    want = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
           "Connection: close\r\nRetry-After: 1\r\n\r\ndown\n";
    assert_int_equal(conn.out_len, strlen(want));
    assert_memory_equal(conn.out, want, strlen(want));

    feed(&conn, "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_http_take(&conn, &r), CL_HTTP_REQUEST);
    assert_true(r.head);
    cl_http_reply_init(&rep, &r);
    cl_http_put_reply(&conn, &r, &rep);
    want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
           "Connection: keep-alive\r\n\r\n";
    assert_int_equal(conn.out_len, strlen(want));
    assert_memory_equal(conn.out, want, strlen(want));
    assert_string_equal(cl_http_reason(429), "Too Many Requests");
    assert_string_equal(cl_http_reason(299), "Unknown");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_get_with_keep_alive),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_pipelined_requests_in_order),
        cmocka_unit_test(test_keep_alive_by_version_and_header),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_replies_byte_for_byte),
    };
    return UNIT_MAIN("http", tests);
}
