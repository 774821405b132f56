#!/usr/bin/env bats
# Behaviour of demos/gil: every variant, plain and under ThreadSanitizer, the
# parallelism each one reaches, the convoy's latencies, the trace, exit codes,
# the bad-input table, the watchdog and Ctrl-C.

load common

setup() {
    GIL="$(demo gil)"
}

# CPU work small enough for a TSan build, and still many switch intervals long:
# --iters is each thread's slices over all the phases.
cpu_args() { echo --threads 2 --iters 6000; }

# --- the declaration -------------------------------------------------------

@test "gil --list: four variants, all correct" {
    assert_list gil 4
    [ "$(variants_tagged gil correct | tr '\n' ' ')" = \
        "cpu-threads io-threads convoy release-in-native " ]
}

# --- cpu-threads: parallelism as CPU time over wall time -------------------------

@test "cpu-threads: exact sums; with the GIL parallelism < 1.3, without it > 1.5" {
    need_cores 2
    # With the GIL the bound holds in every run: one thread runs at a time. The
    # other needs two idle cores, so the best of five runs counts.
    best_of 5 .metrics.parallelism_nogil 1.5 '.metrics.parallelism_gil < 1.3' \
        "$GIL" --variant cpu-threads $(cpu_args) --json
}

@test "cpu-threads: the GIL hands over (switches and forced drops) and each phase is timed" {
    # 90 ms of work per thread under a 1 ms interval: the two threads overlap for
    # many intervals unless one of them is kept off the CPU for most of that time
    run --separate-stderr "$GIL" --variant cpu-threads --threads 2 --iters 30000 \
        --switch-interval-ms 1 --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    jq -e '.metrics.switches > 0 and .metrics.forced_drops > 0 and .metrics.one_s > 0 and
           .metrics.nogil_s > 0 and .metrics.gil_s > 0 and .metrics.gil_wait_s > 0 and
           .params.iters == 30000 and .ops == 2 * 30000 and .params.switch_interval_ms == 1' \
        <<<"$output" >/dev/null || fail "$output"
}

@test "cpu-threads with one thread: never switches, never waits" {
    run --separate-stderr "$GIL" --variant cpu-threads --threads 1 --iters 3000 --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    jq -e '.exact and .metrics.switches == 0 and .metrics.forced_drops == 0' <<<"$output" \
        >/dev/null || fail "$output"
}

@test "cpu-threads with more threads than cores is still exact and still one at a time" {
    run --separate-stderr "$GIL" --variant cpu-threads --threads 5 --iters 1500 --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    jq -e '.exact and .metrics.parallelism_gil < 1.3' <<<"$output" >/dev/null || fail "$output"
}

# --- release-in-native ----------------------------------------------------------

@test "release-in-native: exact, and parallel again (> 1.5) with the GIL released" {
    need_cores 2
    # TSan instruments the take and drop around every slice: parallelism is then
    # TSan's, so that build checks the sums and the absence of reports only.
    if under_tsan; then
        run "$GIL" --variant release-in-native $(cpu_args) --json
        assert_success
        assert_json '.exact == true'
        skip "the parallelism bound: not in the ThreadSanitizer build"
    fi
    best_of 5 .metrics.parallelism_native 1.5 true \
        "$GIL" --variant release-in-native $(cpu_args) --json
}

# --- io-threads -------------------------------------------------------------------

@test "io-threads: 100 threads x 100 ms of I/O overlap under the GIL" {
    local threads=100
    under_tsan && threads=20
    run --separate-stderr "$GIL" --variant io-threads --threads "$threads" --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_json '.exact == true'
    # sequentially this is threads x 0.1 s; overlapped, a little over 0.1 s
    jq -e --argjson t "$threads" '.wall_s < 1.0 and .metrics.overlap > $t / 10' \
        <<<"$output" >/dev/null || fail "$output"
}

@test "io-threads: several calls each, with a chosen I/O time" {
    run "$GIL" --variant io-threads --threads 8 --iters 5 --io-us 2000 --quiet
    assert_success
    assert_output --partial "8 threads x 5 blocking calls of 2 ms"
}

# --- convoy -------------------------------------------------------------------------

@test "convoy: against a CPU-bound thread an I/O waits at least one switch interval" {
    for ms in 1 5; do
        run --separate-stderr "$GIL" --variant convoy --switch-interval-ms "$ms" --iters 20 \
            --io-us 20000 --json
        [ "$status" -eq 0 ] || fail "exit $status: $stderr"
        # The second phase starts once the CPU-bound thread holds the GIL. It never
        # lets go unasked, and the I/O thread asks only after a whole interval with
        # no switch: a lower bound, as long as the CPU-bound thread takes the GIL
        # back while the I/O thread is in its call. With 20 ms calls that needs a
        # wake-up within 20 ms, not luck (at 0.5 ms, a busy machine misses it).
        # Throughput against the alone phase is a benchmark figure: at 1 ms the
        # convoy costs 5% of a 20 ms call, within a busy machine's noise.
        jq -e --argjson ms "$ms" '.exact and .metrics.p50_us >= $ms * 1000 * 0.95 and
               .metrics.alone_p50_us < .metrics.p50_us
               and .metrics.forced_drops >= 10 and .ops == 40' <<<"$output" >/dev/null ||
            fail "interval $ms ms: $output"
    done
}

@test "convoy runs exactly two threads" {
    run --separate-stderr "$GIL" --variant convoy --threads 3
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"--threads: convoy runs exactly 2"* ]]
}

# --- running everything ---------------------------------------------------------

@test "gil with no flags runs every variant, each behaving as declared" {
    local args=()
    under_tsan && args=(--slice-terms 2000)
    run "$GIL" "${args[@]}"
    assert_success # under TSan too: nothing in this chapter may race
    assert_output --partial "all 4 variants behaved as declared"
    for v in $("$GIL" --list | cut -f1); do
        assert_line --regexp "^$v \["
    done
}

@test "--json: one object per variant, with the chapter's params and metrics" {
    run --separate-stderr "$GIL" --json --iters 3 --io-us 1000 --switch-interval-ms 2
    assert_success
    [ "${#lines[@]}" -eq 4 ]
    for line in "${lines[@]}"; do
        jq -e '(.chapter == "gil") and (.params.switch_interval_ms == 2) and
               (.params.slice_terms == 10000) and (.params.io_us == 1000) and (.wall_s > 0) and
               (.metrics | type == "object") and (.verdict | length > 0) and (.exit == 0) and .exact' \
            <<<"$line" >/dev/null || fail "bad JSON line: $line"
    done
}

@test "--trace: two CPU threads' holds and waits, never holding at once" {
    run --separate-stderr "$GIL" --variant cpu-threads --threads 2 --iters 3000 \
        --switch-interval-ms 1 --trace "$BATS_TEST_TMPDIR/g.csv" --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    local switches
    switches=$(json_field .metrics.switches "$output")
    run cat "$BATS_TEST_TMPDIR/g.csv"
    assert_line --index 0 "thread,kind,start_s,end_s"
    # T1 holds it alone first, then each holds it at least once under the GIL, and
    # every switch after the first hold of the GIL phase is a hold of its own
    [ "$(grep -c "^1,hold," <<<"$output")" -ge 2 ] || fail "T1: too few holds"
    [ "$(grep -c "^2,hold," <<<"$output")" -ge 1 ] || fail "T2: no hold"
    [ "$(grep -c ',hold,' <<<"$output")" -ge $((switches + 1)) ] || fail "fewer holds than switches"
    # sorted by start, each hold ends before the next one begins
    grep ',hold,' "$BATS_TEST_TMPDIR/g.csv" | sort -t, -k3,3g |
        awk -F, 'NR > 1 && $3 < end { bad = 1 } { end = $4 } END { exit bad }' ||
        fail "two holds overlap"
}

# --- bad input ---------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$GIL" <<'TABLE'
--switch-interval-ms 0|--switch-interval-ms: 0 is out of range (allowed: 1 to 100)
--switch-interval-ms 101|--switch-interval-ms: 101 is out of range
--switch-interval-ms 5ms|--switch-interval-ms: '5ms' is not a whole number
--switch-interval-ms|--switch-interval-ms needs a value
--slice-terms 10|--slice-terms: 10 is out of range (allowed: 100 to 10000000)
--io-us -5|--io-us: -5 is out of range (allowed: 1 to 1000000)
--io-us 2000000|--io-us: 2000000 is out of range
--respond-terms 0|--respond-terms: 0 is out of range
--threads 0|--threads: 0 is out of range
--threads many|--threads: 'many' is not a whole number
--iters 0|--iters: 0 is out of range
--variant cpu-threads --iters 2|--iters: cpu-threads needs at least 3, a slice per phase
--variant release-in-native --iters 1|--iters: release-in-native needs at least 2
--variant nosuch|no variant 'nosuch' (allowed: all, cpu-threads, io-threads, convoy, release-in-native)
--variant convoy --threads 1|--threads: convoy runs exactly 2
--no-such-flag|--no-such-flag
--trace t.csv|--trace: needs one --variant
TABLE
}

@test "--help lists the chapter's flags" {
    run "$GIL" --help
    assert_success
    for f in --switch-interval-ms --slice-terms --io-us --respond-terms; do
        assert_output --partial "$f"
    done
}

# --- never hangs: the watchdog and Ctrl-C ---------------------------------------

@test "the watchdog reports who holds the GIL when no progress is made" {
    # one blocking call of 1 s, a watchdog of 0.2 s: no progress, so exit 3
    run --separate-stderr "$GIL" --variant io-threads --threads 2 --io-us 1000000 --timeout 0.2
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"watchdog: no progress"* ]]
    [[ "$stderr" == *"the GIL: free"* ]] # both threads are in their blocking call
}

@test "Ctrl-C prints the partial result and exits 130 quickly" {
    "$GIL" --variant cpu-threads --iters 3000000 >"$BATS_TEST_TMPDIR/out" 2>&1 &
    local pid=$!
    sleep 0.5
    local t0=$(date +%s%N)
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 130 ]
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 3000 ] # the contract says 1 s; margin for load
    grep -q "cpu-threads: interrupted after .* of 6,000,000 operations" "$BATS_TEST_TMPDIR/out"
}

@test "Ctrl-C in every phase (setup, run, check, report, teardown): exit 130" {
    sigint_every_phase "$GIL" --variant cpu-threads --iters 30 --slice-terms 1000
    sigint_every_phase "$GIL" --variant io-threads --threads 4 --io-us 1000
    sigint_every_phase "$GIL" --variant convoy --iters 5 --io-us 1000
    sigint_every_phase "$GIL" --variant release-in-native --iters 20 --slice-terms 1000
}
