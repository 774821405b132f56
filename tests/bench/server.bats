#!/usr/bin/env bats
# shellcheck disable=SC2154 # status, output, lines, stderr: set by bats's run
# The HTTP server (bench/server/httpd) in each design, and CPython's asyncio one
# beside it: every reply checked by the small client (http-client), the
# server's own counts, its first and last lines, SIGTERM, SIGINT, --duration and
# its parent's death, and nothing left running after any of them.

load '../demos/common'

B="$CONCLAB_BUILD/bench/server"
HTTPD="$B/httpd"
CLIENT="$B/http-client"
PYSERVER="$CONCLAB_SOURCE/bench/python/http_server.py"

# The designs built here: libuv's only where libuv is and no sanitizer.
designs() {
    echo threads loop
    uv_built && echo libuv
    return 0
}
uv_built() { "$HTTPD" --design libuv --duration 0.1 >/dev/null 2>&1; }

# serve SIGNAL CLIENT-ARGS -- SERVER...: start SERVER, wait for its first line,
# run the client against it, send SIGNAL, and print the server's exit status and
# its output. Meant for run_in_session.
# shellcheck disable=SC2016
SERVE='sig=$1; shift; args=(); while [ "$1" != -- ]; do args+=("$1"); shift; done; shift
out=$(mktemp); "$@" >"$out" 2>&1 & pid=$!
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.05; done
port=$(sed -n "1s/^listening 127.0.0.1://p" "$out")
"'"$CLIENT"'" --port "$port" "${args[@]}"; echo "client exit $?"
kill -"$sig" "$pid"; wait "$pid"; echo "server exit $?"; cat "$out"; rm -f "$out"'

serve() {
    run_in_session bash -c "$SERVE" _ "$@"
}

@test "httpd and http-client: --help, and bad input is one line and exit 2" {
    run --separate-stderr "$HTTPD" --help
    assert_success
    [[ "${lines[0]}" == "Usage: httpd [OPTION]..." ]]
    [[ "$output" == *"--design threads|loop|libuv"* ]]
    [[ "$output" == *"(default none: until SIGTERM; 0.1 to 3600)"* ]]
    bad_input "$HTTPD" <<'EOF'
--design fibers|--design: expected one of threads, loop, libuv, got 'fibers'
--delay-ms 10001|--delay-ms: expected an integer from 0 to 10000, got '10001'
--work-us -1|--work-us: expected an integer
--duration 0.05|--duration: expected a number from 0.1 to 3600, got '0.05'
--duration 3601|--duration: expected a number from 0.1 to 3600, got '3601'
--connections 1000000|--connections: expected at most
--drain-ms|--drain-ms needs a value
--port 80|unknown option '--port'
EOF
    bad_input "$CLIENT" <<'EOF'
--connections 5|--port is required
--port 0|--port: expected an integer from 1 to 65535, got '0'
--port 1 --pipeline 65|--pipeline: expected an integer from 1 to 64
EOF
}

@test "--connections is refused above the open-file limit less 64, after raising the limit" {
    local hard
    hard=$(ulimit -Hn)
    [ "$hard" != unlimited ] || skip "no file limit here"
    run --separate-stderr bash -c "ulimit -Sn 256; exec \"$HTTPD\" --connections $((hard - 63))"
    [ "$status" -eq 2 ]
    [ "$stderr" = "httpd: --connections: expected at most $((hard - 64)) (the open-file limit $hard less 64), got '$((hard - 63))'" ]
}

@test "each design answers every request: the client's check and the server's counts agree" {
    for d in $(designs); do
        serve TERM --connections 10 --requests 50 --pipeline 2 -- "$HTTPD" --design "$d"
        assert_success
        [[ "${lines[0]}" == '{"connections":10,"requests":500,"ok":500,"wrong":0,'* ]] || fail "$d: ${lines[0]}"
        assert_line --index 1 "client exit 0"
        assert_line --index 2 "server exit 0"
        [[ "${lines[3]}" =~ ^listening\ 127\.0\.0\.1:[0-9]+$ ]] || fail "$d: ${lines[3]}"
        output=${lines[4]}
        assert_json ".design == \"$d\" and .stopped_by == \"SIGTERM\" and .accepted == 10 and
            .requests == 500 and .responses == 500 and .dropped == 0 and .bad == 0 and .peak_open == 10"
    done
}

@test "CPython's asyncio server, the fourth column, answers every request too" {
    serve TERM --connections 10 --requests 50 --pipeline 2 -- python3 "$PYSERVER"
    assert_success
    [[ "${lines[0]}" == '{"connections":10,"requests":500,"ok":500,"wrong":0,'* ]] || fail "${lines[0]}"
    assert_line --index 2 "server exit 0"
    output=${lines[4]}
    assert_json '.design == "cpython-asyncio" and .requests == 500 and .responses == 500 and .accepted == 10'
}

@test "SIGINT stops each design at once: exit 130, its counts, nothing left running" {
    for d in $(designs); do
        serve INT --connections 2 --requests 5 -- "$HTTPD" --design "$d" --drain-ms 60000
        assert_success
        assert_line --index 2 "server exit 130"
        output=${lines[4]}
        assert_json ".stopped_by == \"SIGINT\" and .requests == 10 and .responses == 10"
    done
    serve INT --connections 2 --requests 5 -- python3 "$PYSERVER"
    assert_line --index 2 "server exit 130"
}

@test "--duration ends the run by itself, exit 0" {
    for d in $(designs); do
        run_in_session "$HTTPD" --design "$d" --duration 0.2
        assert_success
        assert_line --index 0 --regexp '^listening 127\.0\.0\.1:[0-9]+$'
        output=${lines[1]}
        assert_json '.stopped_by == "duration" and .accepted == 0'
    done
}

@test "the server stops when its parent dies (PR_SET_PDEATHSIG)" {
    local d="$BATS_TEST_TMPDIR"
    for design in $(designs); do
        # a parent shell that starts the server and waits; then it is killed
        # shellcheck disable=SC2016
        bash -c '"$1" --design "$2" >"$3/out" & echo $! >"$3/pid"; wait' _ "$HTTPD" "$design" "$d" &
        local parent=$!
        for _ in $(seq 100); do [ -s "$d/out" ] && break; sleep 0.05; done
        kill -KILL "$parent"
        wait "$parent" || true
        local pid gone=""
        pid=$(cat "$d/pid")
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || { gone=1; break; }
            sleep 0.05
        done
        [ -n "$gone" ] || { kill -KILL "$pid"; fail "$design: still running after its parent died"; }
        grep -q '"stopped_by":"SIGTERM"' "$d/out" || fail "$design: $(cat "$d/out")"
        rm -f "$d/out" "$d/pid"
    done
}

@test "keep-alive, HTTP/1.0, HEAD, a body, pipelining, and refusals, in each design" {
    local q='GET / HTTP/1.1\r\n\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
    q+='POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n'
    for d in $(designs); do
        serve TERM --raw "$q" -- "$HTTPD" --design "$d"
        assert_success
        # four replies in order; the HTTP/1.0 one without keep-alive closes
        [ "$(grep -c '^HTTP/1.1 200 OK' <<<"$output")" -eq 4 ] || fail "$d: $output"
        assert_line "Connection: keep-alive"$'\r'
        assert_line "Connection: close"$'\r'
        assert_line "[closed]"
        serve TERM --raw 'GET / HTTP/2.0\r\n\r\n' -- "$HTTPD" --design "$d"
        assert_line "HTTP/1.1 505 HTTP Version Not Supported"$'\r'
        assert_line "[closed]"
        serve TERM --raw 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n' -- "$HTTPD" --design "$d"
        assert_line "HTTP/1.1 501 Not Implemented"$'\r'
        output=${lines[-1]}
        assert_json '.bad == 1 and .requests == 0'
    done
}

@test "--connections holds the ones past the limit in the backlog until a slot frees" {
    for d in $(designs); do
        # the client closes each connection after its reply, freeing a slot
        serve TERM --connections 6 --requests 1 -- "$HTTPD" --design "$d" --connections 2
        assert_success
        [[ "${lines[0]}" == '{"connections":6,"requests":6,"ok":6,"wrong":0,'* ]] || fail "$d: ${lines[0]}"
        output=${lines[4]}
        assert_json '.accepted == 6 and .responses == 6 and .peak_open <= 2'
    done
}

@test "--delay-ms overlaps in every design; --work-us holds up the loop designs" {
    for d in $(designs); do
        # 20 connections, one request each, 500 ms each: 10 s if they queued
        serve TERM --connections 20 --requests 1 -- "$HTTPD" --design "$d" --delay-ms 500
        assert_success
        output=${lines[0]}
        assert_json '.ok == 20 and .wall_s >= 0.5 and .wall_s < 2.0'
    done
    for d in $(designs); do
        [ "$d" = threads ] && continue
        # one thread does all the work: 10 requests of 50 ms take at least 0.5 s
        serve TERM --connections 10 --requests 1 -- "$HTTPD" --design "$d" --work-us 50000
        assert_success
        output=${lines[0]}
        assert_json '.ok == 10 and .wall_s >= 0.5'
    done
}

@test "--design libuv says so where it is not built" {
    uv_built && skip "libuv is built here"
    run --separate-stderr "$HTTPD" --design libuv
    [ "$status" -eq 2 ]
    [ "$stderr" = "httpd: --design libuv: not built here (no libuv, or a sanitizer build)" ]
    [ -z "$output" ]
}
