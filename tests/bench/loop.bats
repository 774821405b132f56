#!/usr/bin/env bats
# The event loop's benchmark programs (bench/loop/): one clear line and exit 2 on
# bad input, --help, and one JSON line of results from a small run.

bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${CONCLAB_BUILD:?run through meson test}"
B="$CONCLAB_BUILD/bench/loop"

# The libuv peer is built only without a sanitizer and where libuv is.
have_uv() { [ -x "$B/uv-timers" ] || skip "uv-timers is not built here"; }

json_line() { # exactly one line of output, a JSON object with every key named
    [ "${#lines[@]}" -eq 1 ] || fail "expected one line, got: $output"
    for key in "$@"; do
        jq -e --arg k "$key" 'has($k)' <<<"$output" >/dev/null || fail "no \"$key\" in $output"
    done
}

@test "--help says how to use each program, exit 0" {
    for p in loop-timers loop-sleepers loop-switch; do
        run --separate-stderr "$B/$p" --help
        assert_success
        [[ "${lines[0]}" == "Usage: $p [OPTION]..." ]]
        [ -z "$stderr" ]
    done
}

@test "bad input: exit 2, one line on stderr naming the flag, nothing on stdout" {
    local -a cases=(
        "loop-timers --timers 0|--timers: expected an integer from 1 to 100000000, got '0'"
        "loop-timers --per-ms x|--per-ms: expected an integer"
        "loop-sleepers --tasks|--tasks needs a value"
        "loop-sleepers --sleep-ms 1|--sleep-ms: expected an integer from 2 to 60000, got '1'"
        "loop-switch --mode fibers|--mode: expected one of task, thread, got 'fibers'"
        "loop-switch --switches -4|--switches: expected an integer"
        "loop-switch --frobnicate 1|unknown option '--frobnicate'"
    )
    for c in "${cases[@]}"; do
        read -ra argv <<<"${c%%|*}"
        run --separate-stderr "$B/${argv[0]}" "${argv[@]:1}"
        [ "$status" -eq 2 ] || fail "${c%%|*}: exit $status"
        [ -z "$output" ] || fail "${c%%|*}: wrote to stdout: $output"
        [ "${#stderr_lines[@]}" -eq 1 ] || fail "${c%%|*}: stderr: $stderr"
        [[ "$stderr" == "${argv[0]}: "*"${c#*|}"* ]] || fail "${c%%|*}: stderr: $stderr"
    done
}

@test "loop-timers fires every timer and reports its phases" {
    run --separate-stderr "$B/loop-timers" --timers 20000 --per-ms 5000
    assert_success
    json_line program timers per_ms total_s init_s dispatch_s cleanup_s init_cpu_ns dispatch_cpu_ns
    jq -e '.program == "loop-timers" and .timers == 20000 and .per_ms == 5000' <<<"$output"
}

@test "uv-timers, the libuv peer, prints the same fields" {
    have_uv
    run --separate-stderr "$B/uv-timers" --timers 20000 --per-ms 5000
    assert_success
    json_line program libuv timers per_ms total_s init_s dispatch_s cleanup_s init_cpu_ns \
        dispatch_cpu_ns
    run --separate-stderr "$B/uv-timers" --timers 0
    [ "$status" -eq 2 ]
}

@test "loop-sleepers: every task sleeps, and the memory per task is measured" {
    run --separate-stderr "$B/loop-sleepers" --tasks 3000 --sleep-ms 20
    assert_success
    json_line program tasks sleep_ms wall_s create_s cpu_s rss_per_task_bytes task_frame_bytes \
        max_rss_kib
    jq -e '.tasks == 3000 and .sleep_ms == 20 and .wall_s >= 0.02' <<<"$output"
}

@test "loop-switch: tasks and threads ping-pong" {
    run --separate-stderr "$B/loop-switch" --switches 20000
    assert_success
    json_line program mode switches seconds ns_per_switch
    jq -e '.mode == "task" and .switches == 20000' <<<"$output"
    run --separate-stderr "$B/loop-switch" --mode thread --cpus same --switches 2001
    assert_success
    json_line program mode cpus switches seconds ns_per_switch
    jq -e '.mode == "thread" and .cpus == "same" and .switches == 2000' <<<"$output"
}
