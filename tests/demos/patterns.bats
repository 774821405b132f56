#!/usr/bin/env bats
# Behaviour of demos/patterns, with the backend's own counts as the referee: the
# limiters' totals and windows, the semaphore's rate following the latency,
# retries in waves or spread (a 404 never retried), the breaker's cycle with
# exactly --trials trial calls, SIGTERM drained or cut; bad input, Ctrl-C in
# every phase, no backend left running or listening; plain and under
# ThreadSanitizer (silent everywhere: no variant is tagged racy).

# shellcheck disable=SC2154 # stderr: set by run
load common

setup() {
    P="$(demo patterns)"
}


# run_variant ARGS...: the variant in a session of its own (nothing may outlive
# it), exit 0, clean.
run_variant() {
    run_in_session --separate-stderr "$P" --json --variant "$@"
    [ "$status" -eq 0 ] || fail "$*: exit $status: $output $stderr"
    assert_clean "$*"
}

# --- the declaration -------------------------------------------------------

@test "patterns --list: the variants with their tags" {
    assert_list patterns 17
    for v in token-bucket min-interval conn-pool conn-pool-size retry-jitter circuit-breaker \
        graceful pipeline-stop occ-jitter; do
        assert_line --regexp "^$v"$'\t'"correct"$'\t'
    done
    for v in bucket-early-stamp fixed-window retry-bypass semaphore-not-rate retry-sync \
        event-first; do
        assert_line --regexp "^$v"$'\t'"wrong"$'\t'
    done
    [ "$(variants_tagged patterns hangs)" = conn-pool-grow ]
    [ "$(variants_tagged patterns slow)" = occ-sync ]
    [ -z "$(variants_tagged patterns racy)" ]
}

@test "--variant all runs each in turn; the summary names a variant that misbehaves" {
    # every variant with its defaults is run by its own test below; here, the loop,
    # short, with no down period: the breaker never opens, so it cannot cycle
    run_in_session --separate-stderr "$P" --variant all --duration-ms 200 --down-for-ms 0
    [ "$status" -eq 1 ] || fail "exit $status: $output"
    assert_output --partial "1 of 17 variants did not behave as declared: circuit-breaker (exit 1)"
    assert_clean "--variant all"
}

# --- limiters --------------------------------------------------------------

@test "token-bucket: the backend reads at most burst + rate x T, in any window too" {
    run_variant token-bucket
    assert_json '.exact == true'
    # 1.5 s at 40/s after a burst of 4: at most 65 in the run, 24 in any 0.5 s (and
    # what the longest delay from client to backend adds)
    assert_json '.metrics.server_requests <= 65 and .metrics.server_requests >= 40'
    assert_json '.metrics.max_in_window <= .metrics.allowed_in_window + 2'
    run_variant token-bucket --rate 100 --burst 1 --duration-ms 500 --window-ms 100
    assert_json '.exact == true and .metrics.server_requests <= 51'
    assert_json '.metrics.max_in_window <= .metrics.allowed_in_window + 2'
}

@test "bucket-early-stamp: the guides' bucket lets about twice the rate through" {
    run_variant bucket-early-stamp
    assert_json '.exact == false'
    assert_json '.metrics.achieved_rate > 1.5 * .metrics.configured_rate'
    assert_json '.metrics.server_requests > 90'
}

@test "fixed-window: twice the window's allowance across an edge" {
    run_variant fixed-window
    assert_json '.exact == false'
    # 20 a window: the backend reads 30 or more within 0.5 s (40 when nothing is late)
    assert_json '.metrics.max_in_window >= 30 and .metrics.max_in_window <= 40'
}

@test "min-interval: 500s retried, every attempt through the limiter: the rate holds" {
    run_variant min-interval
    assert_json '.exact == true and .metrics.retries > 0 and .metrics.bypassed == 0'
    # calls 25 ms apart for 1.5 s: at most 61 in the run, 21 (+2) in any 0.5 s
    assert_json '.metrics.server_requests <= 62'
    assert_json '.metrics.max_in_window <= .metrics.allowed_in_window + 2'
}

@test "retry-bypass: the retries skip the limiter, and the backend reads past the rate" {
    run_variant retry-bypass
    assert_json '.exact == false and .metrics.bypassed == .metrics.retries'
    assert_json '.metrics.server_requests > 61 * 1.1'
}

@test "semaphore-not-rate: the same semaphore, a tenth of the latency, several times the rate" {
    run_variant semaphore-not-rate
    assert_json '.exact == false'
    assert_json '.metrics.rate_slow <= 4 / 0.05 + 1'
    assert_json '.metrics.rate_ratio > 3'
}

# --- connection pools -------------------------------------------------------

@test "conn-pool: grows from 2 to its max, the backend accepts exactly what it opened" {
    run_variant conn-pool
    assert_json '.exact == true and .metrics.peak_size == 5 and .metrics.server_peak_open <= 5'
    assert_json '.metrics.server_accepted == .metrics.opened and .metrics.recycled == 5'
    run_variant conn-pool --limit 3 --threads 4
    assert_json '.exact == true and .metrics.peak_size == 3 and .metrics.server_peak_open <= 3'
}

@test "conn-pool: connections the backend drops leave the pool; every query still answered" {
    run_variant conn-pool --drop-rate 0.1
    assert_json '.exact == true and .metrics.discarded > 0'
    assert_json '.metrics.server_accepted == .metrics.opened'
}

@test "conn-pool-grow hangs in every run: exit 3, the watchdog names the holder" {
    for _ in 1 2; do
        run_in_session --separate-stderr "$P" --variant conn-pool-grow
        [ "$status" -eq 3 ] || fail "exit $status: $stderr"
        [[ "$stderr" == *"watchdog: no progress"* ]] || fail "$stderr"
        [[ "$stderr" =~ self-deadlock:\ T[0-9]+\ waits\ for\ a\ lock\ it\ already\ holds ]] ||
            fail "$stderr"
        [[ "$stderr" == *"backend: "*" requests read"* ]] || fail "$stderr"
    done
}

@test "conn-pool-size: a pool below the backend's capacity starves; every query answered" {
    run_variant conn-pool-size
    assert_json '.exact == true'
    # 320 queries/s of 10 ms each: one connection serves 100/s, sixteen any of them
    assert_json '.metrics.p50_ms_1 > 50 and .metrics.p50_ms_1 > .metrics.p50_ms_16'
}

# --- retries ----------------------------------------------------------------

@test "retry-sync: every client's retry lands at once; every call succeeds; 404s asked once" {
    run_variant retry-sync
    assert_json '.exact == false'
    # every client planned each retry for the same moment as the others
    assert_json '.metrics.planned_peak == 16 and .metrics.client_errors == 16'
    # down for 300 ms: attempts at 0, 40, 120, 280 (and 600) ms, then the 404
    assert_json '.metrics.server_calls >= 16 * 4 + 16 and .metrics.server_calls <= 16 * 5 + 16'
}

@test "retry-jitter: the same calls succeed, the retries spread, no 404 retried" {
    run_variant retry-jitter
    assert_json '.exact == true'
    assert_json '.metrics.planned_peak < 16 and .metrics.client_errors == 16'
    assert_json '.metrics.server_calls == .metrics.retries + 32'
}

@test "a client error is never retried: with the backend up, two calls per client" {
    for v in retry-sync retry-jitter; do
        run_in_session --separate-stderr "$P" --json --variant $v --down-for-ms 0 --threads 8
        [ "$status" -eq 0 ] || fail "$v: exit $status: $stderr"
        assert_json '.metrics.server_calls == 16 and .metrics.retries == 0'
        assert_json '.metrics.client_errors == 8'
    done
}

@test "retries through 500s: --error-rate 0.5 still gets every call through" {
    run_variant retry-jitter --down-for-ms 0 --error-rate 0.5
    assert_json '.exact == true and .metrics.retries > 0 and .metrics.client_errors == 16'
}

@test "occ: every client writes the versioned record once; jitter needs fewer calls" {
    run_variant occ-sync
    assert_json '.exact == true and .metrics.conflicts > 0'
    sync_calls=$(json_field .metrics.server_calls "$output")
    run_variant occ-jitter
    assert_json '.exact == true'
    # the clients that collide without jitter collide again, round after round
    assert_json ".metrics.server_calls < $sync_calls"
}

# --- the circuit breaker ----------------------------------------------------

@test "circuit-breaker: closed, open, half-open, closed; exactly --trials trial calls" {
    run_variant circuit-breaker
    assert_json '.exact == true and .metrics.half_open_periods >= 1'
    assert_json '.metrics.rejected > 0 and .metrics.server_calls < .metrics.calls'
    [[ "$(json_field .verdict "$output")" =~ ^closed\ 0\ ms,\ open\ [0-9]+\ ms,\ half-open.*closed\ [0-9]+\ ms\; ]] ||
        fail "$output"
    run_variant circuit-breaker --trials 3 --threads 6 --recovery-ms 100
    assert_json '.exact == true and .metrics.half_open_periods >= 2'
}

# --- shutdown ----------------------------------------------------------------

@test "graceful: every request read is answered; the drain ends with the last one" {
    run_variant graceful
    assert_json '.exact == true'
    assert_json '.metrics.server_dropped == 0 and .metrics.no_reply == .metrics.idle_resets'
    assert_json '.metrics.server_requests == .metrics.server_responses'
    assert_json '.metrics.completed == .metrics.server_responses and .metrics.refused > 0'
    assert_json '.metrics.drain_ms <= 150 + 500'
}

@test "event-first: the requests in flight at SIGTERM are dropped" {
    run_variant event-first
    assert_json '.exact == false'
    assert_json '.metrics.server_dropped >= 1'
    assert_json '.metrics.server_requests == .metrics.server_responses + .metrics.server_dropped'
    assert_json '.metrics.drain_ms < 150 and .metrics.no_reply >= .metrics.server_dropped'
}

@test "graceful and event-first under wrk's load: drained, or the in-flight requests cut" {
    command -v wrk >/dev/null || skip "wrk is not installed"
    run_variant graceful --load wrk --threads 16
    assert_json '.exact == true and .threads == 1'
    assert_json '.metrics.server_requests == .metrics.server_responses'
    assert_json '.metrics.completed == .metrics.server_responses and .metrics.server_dropped == 0'
    assert_json '.metrics.wrk_errors > 0 and .metrics.drain_ms <= 150 + 500'
    [[ "$(json_field .verdict "$output")" == *"wrk's 16 connections got"* ]] || fail "$output"
    run_variant event-first --load wrk --threads 16
    assert_json '.exact == false and .metrics.server_dropped >= 1'
    assert_json '.metrics.server_requests == .metrics.server_responses + .metrics.server_dropped'
    assert_json '.metrics.completed == .metrics.server_responses'
}

@test "pipeline-stop: the producer blocked in put hands its item back; none lost or doubled" {
    run_variant pipeline-stop
    assert_json '.exact == true and .metrics.blocked_at_close == 1 and .metrics.lost == 0'
    assert_json '.metrics.server_read == .metrics.put and .metrics.handed_back == .metrics.taken'
    run_variant pipeline-stop --threads 6 --latency-ms 5
    assert_json '.exact == true and .metrics.server_read == .metrics.put'
}

@test "--trace also writes the server's arrivals per slot: they add up to its count" {
    run_variant token-bucket --duration-ms 300 --trace "$BATS_TEST_TMPDIR/t.csv"
    [ -s "$BATS_TEST_TMPDIR/t.samples.tsv" ] || fail "no samples file"
    total=$(awk -F'\t' 'NR > 1 { n += $2 / 10 } END { printf "%d", n + 0.5 }' \
        "$BATS_TEST_TMPDIR/t.samples.tsv")
    assert_json ".metrics.server_requests == $total"
    run_variant retry-sync --trace "$BATS_TEST_TMPDIR/r.csv"
    retries=$(awk -F'\t' 'NR > 1 { n += $3 / 100 } END { printf "%d", n + 0.5 }' \
        "$BATS_TEST_TMPDIR/r.samples.tsv")
    assert_json ".metrics.retries == $retries"
}

@test "--trace of the breaker: its state at every change, open only while the backend was down" {
    run_variant circuit-breaker --latency-ms 20 --trace "$BATS_TEST_TMPDIR/b.csv"
    f="$BATS_TEST_TMPDIR/b.samples.tsv"
    [ "$(head -1 "$f")" = $'t_s\tstate\tdown' ] || fail "$(head -3 "$f")"
    # the states in order, each change once: closed, then open and half-open in
    # turn, and closed at the end; no change to open while the backend was up
    states=$(awk -F'\t' 'NR == 1 { last = -1 } NR > 1 && $2 != last { printf "%s ", $2; last = $2 }' "$f")
    [[ "$states" =~ ^0\ 2\ (1\ 2\ )*1\ 0\ $ ]] || fail "states: $states"
    opened_up=$(awk -F'\t' 'NR > 1 && $2 == 2 && last != 2 && $3 == 0 { n++ } { last = $2 } END { print n + 0 }' "$f")
    [ "$opened_up" -eq 0 ] || fail "opened $opened_up times while the backend was up"
    changes=$(awk -F'\t' 'NR == 1 { last = -1 } NR > 1 && $2 != last { n++; last = $2 } END { print n }' "$f")
    assert_json ".metrics.state_changes == $changes"
}

@test "--trace of a shutdown: what the clients saw, in running counts, and the drain" {
    run_variant graceful --threads 8 --trace "$BATS_TEST_TMPDIR/g.csv"
    f="$BATS_TEST_TMPDIR/g.samples.tsv"
    [ "$(head -1 "$f")" = $'t_s\tanswered\trefused\tno_reply\terrors\tdraining' ] || fail "$(head -3 "$f")"
    read -r answered refused no_reply < <(tail -1 "$f" | cut -f2-4)
    assert_json ".metrics.completed == $answered and .metrics.refused == $refused"
    assert_json ".metrics.no_reply == $no_reply"
    # the drain starts at SIGTERM (400 ms) and nobody is refused before it
    first=$(awk -F'\t' 'NR > 1 && $6 == 1 { print $1; exit }' "$f")
    [[ "$first" == 0.39* || "$first" == 0.40* ]] || fail "draining from $first"
    early=$(awk -F'\t' 'NR > 1 && $1 < 0.39 { n = $3 } END { print n + 0 }' "$f")
    [ "$early" -eq 0 ] || fail "$early refused before SIGTERM"
}

# --- bad input, Ctrl-C, hangs -------------------------------------------------

@test "bad input: one line and exit 2" {
    bad_input "$P" <<'EOF'
--iters 5|--iters
--rate 0|--rate
--error-rate 1.5|--error-rate
--error-rate 0.0001|--error-rate
--latency-ms 20000|--latency-ms
--latency-dist normal|--latency-dist
--capacity 5000|--capacity
--variant semaphore-not-rate --latency-ms 5|--latency-ms
--variant retry-sync --threads 300|--threads
--variant conn-pool-grow --threads 2|--threads
--variant conn-pool --limit 1|--limit
--variant pipeline-stop --threads 2|--threads
--variant token-bucket --load wrk|--load
--variant graceful --load curl|--load
--variant nope|nope
EOF
}

@test "Ctrl-C in every phase: exit 130 with the partial result, no backend left" {
    for args in "token-bucket --duration-ms 200" "graceful --duration-ms 300" \
        "circuit-breaker --duration-ms 200"; do
        read -ra a <<<"$args"
        sigint_every_phase "$P" --variant "${a[@]}"
        for phase in setup run check; do
            run_in_session --separate-stderr env CONCLAB_TEST_SIGINT_AT="$phase" "$P" \
                --variant "${a[@]}"
            [ "$status" -eq 130 ] || fail "$args at $phase: exit $status"
        done
    done
}

@test "a real Ctrl-C to the whole process group while clients run: 130 within 1 s" {
    runs=(token-bucket retry-jitter graceful)
    # wrk in the group too: it must be gone with the rest
    command -v wrk >/dev/null && runs+=("graceful --load wrk --threads 8 --duration-ms 2000")
    for args in "${runs[@]}"; do
        read -ra a <<<"$args"
        ctrl_c_group 0.3 "$P" --variant "${a[@]}" # the demo and its backend
    done
}
