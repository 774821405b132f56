#!/usr/bin/env bats
# Behaviour of demos/pools: the orders results arrive in, every error delivered,
# what a timeout and a cancel do (exact counts), the total deadline escaping its
# handler, chunked results by index on both pools, pools per request and never
# shut down, the table of futures that never shrinks, the hand-made pool's hang
# (exit 3, naming the stuck join) and its fix, the process pool's real cancel,
# nested threads in worker processes; bad input, Ctrl-C in every phase, no
# child process left behind; plain and under ThreadSanitizer (silent everywhere:
# no variant is tagged racy).

# shellcheck disable=SC2154 # stderr: set by run
load common

setup() {
    P="$(demo pools)"
}

# The run in $output / $status is exact and clean: exit 0, and no sanitizer report.
assert_exact_run() { # what
    [ "$status" -eq 0 ] || fail "$1: exit $status: $stderr"
    assert_json '.exact == true' || fail "$1: not exact: $output"
    assert_clean "$1"
}


# --- the declaration -------------------------------------------------------

@test "pools --list: seventeen variants with their tags" {
    assert_list pools 17
    for v in as-completed map-ordered exceptions cancel-pending cancel-token chunking \
        pool-reused hand-made-fixed process-map process-cancel; do
        assert_line --regexp "^$v"$'\t'"correct"$'\t'
    done
    for v in timeout-not-cancel total-timeout futures-leak; do
        assert_line --regexp "^$v"$'\t'"wrong"$'\t'
    done
    for v in pool-per-request no-shutdown nested; do
        assert_line --regexp "^$v"$'\t'"slow"$'\t'
    done
    [ "$(variants_tagged pools hangs)" = hand-made ]
    [ -z "$(variants_tagged pools racy)" ]
}

@test "pools with no flags runs every variant as declared, and leaves no process behind" {
    run_in_session "$P"
    assert_success
    assert_output --partial "all 17 variants behaved as declared"
    assert_output --partial "watchdog: no progress" # hand-made's hang, caught
    [[ "$output" != *ThreadSanitizer* ]] || fail "TSan report: $output"
    [[ "$output" != *AddressSanitizer* ]] || fail "ASan report: $output"
}

# --- orders ----------------------------------------------------------------

@test "as-completed: results as they finish, shortest first, every value right" {
    run --separate-stderr "$P" --variant as-completed --json
    assert_exact_run as-completed
    assert_json '.metrics.results == 5 and .metrics.in_order == 1'
    [[ "$(json_field .verdict "$output")" == *": 4 3 2 1 0;"* ]] || fail "$output"
}

@test "as-completed on fewer workers than tasks: the order the durations dictate" {
    # 250, 200, 150, 100, 50 ms on 2 workers end at 250, 200, 350, 350, 400 ms
    run --separate-stderr "$P" --variant as-completed --workers 2 --json
    assert_exact_run "as-completed --workers 2"
    [[ "$(json_field .verdict "$output")" =~ :\ 1\ 0\ (2\ 3|3\ 2)\ 4\; ]] || fail "$output"
}

@test "map-ordered: input order, whatever finished first" {
    run --separate-stderr "$P" --variant map-ordered --json
    assert_exact_run map-ordered
    assert_json '.metrics.results == 5 and .metrics.in_order == 1'
    [[ "$(json_field .verdict "$output")" == *": 0 1 2 3 4;"* ]] || fail "$output"
}

# --- errors ------------------------------------------------------------------

@test "exceptions: every result and every error arrives, and no worker dies" {
    run --separate-stderr "$P" --variant exceptions --json
    assert_exact_run exceptions
    assert_json '.metrics.results == 6 and .metrics.errors == 4 and .metrics.lost == 0'
    assert_json '.metrics.threads_after == 3'
    run --separate-stderr "$P" --variant exceptions --tasks 30 --workers 5 --json
    assert_exact_run "exceptions --tasks 30"
    assert_json '.metrics.results == 20 and .metrics.errors == 10 and .metrics.threads_after == 5'
}

# --- timeouts and cancellation -------------------------------------------------

@test "timeout-not-cancel: healthy queued tasks reported as timed out; shutdown waits" {
    run --separate-stderr "$P" --variant timeout-not-cancel --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_clean timeout-not-cancel
    assert_json '.exact == false'
    assert_json '.metrics.timed_out == 8 and .metrics.healthy_timed_out == 4'
    assert_json '.metrics.cancel_refused == 2 and .metrics.cancelled == 6'
    # the 2 running long tasks (1 s) outlive the 0.4 s loop: shutdown waits ~0.6 s
    assert_json '.metrics.shutdown_s > 0.1'
}

@test "cancel-pending: cancels exactly what has not started, says what still runs" {
    run --separate-stderr "$P" --variant cancel-pending --json
    assert_exact_run cancel-pending
    assert_json '.metrics.done == 2 and .metrics.cancelled == 6 and .metrics.running == 2'
    assert_json '.metrics.stopped == 0'
}

@test "cancel-token: the same, and the running tasks stop at the token" {
    run --separate-stderr "$P" --variant cancel-token --json
    assert_exact_run cancel-token
    assert_json '.metrics.done == 2 and .metrics.cancelled == 6 and .metrics.running == 2'
    assert_json '.metrics.stopped == 2'
}

@test "total-timeout: the deadline escapes the handler, which never runs; results lost" {
    run --separate-stderr "$P" --variant total-timeout --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_clean total-timeout
    assert_json '.exact == false and .metrics.returned == 0 and .metrics.handler_hits == 0'
    assert_json '.metrics.finished + .metrics.unfinished == 16 and .metrics.unfinished > 0'
}

# --- chunking ---------------------------------------------------------------------

@test "chunking: the sweep on both pools, every result at its index" {
    run_in_session --separate-stderr "$P" --variant chunking --json
    assert_exact_run chunking
    for p in thread process; do
        for c in c1 c10 c100 c1000 cdef; do
            assert_json ".metrics.${p}_${c}_ns > 0"
        done
    done
    n=$(nproc) # multiprocessing.Pool.map's default chunk: ceil(items / (4 x workers))
    assert_json ".metrics.pool_default_chunk == $(((10000 + 4 * n - 1) / (4 * n)))"
}

@test "chunking at one size on one pool, uneven chunks included" {
    for args in "--pool process --chunk 7 --tasks 999" "--pool thread --chunk 1000 --tasks 1" \
        "--pool process --chunk 5000 --tasks 1234 --workers 3"; do
        read -ra a <<<"$args"
        run_in_session --separate-stderr "$P" --variant chunking "${a[@]}" --json
        assert_exact_run "chunking $args"
    done
    assert_json '.metrics.item_ns > 0'
}

# --- lifetimes --------------------------------------------------------------------------

@test "pool-per-request starts a thread per request; pool-reused a few" {
    run --separate-stderr "$P" --variant pool-per-request --tasks 200 --json
    assert_exact_run pool-per-request
    assert_json '.metrics.threads_started == 200'
    run --separate-stderr "$P" --variant pool-reused --tasks 200 --json
    assert_exact_run pool-reused
    assert_json '.metrics.threads_started >= 1 and .metrics.threads_started <= .params.workers'
}

@test "no-shutdown: every pool's threads stay, counted in /proc/self/task" {
    run --separate-stderr "$P" --variant no-shutdown --json
    assert_exact_run no-shutdown
    assert_json '.metrics.idle_threads_left == 80'
    assert_json '.metrics.threads_after - .metrics.threads_before == 80'
    run --separate-stderr "$P" --variant no-shutdown --pools 3 --workers 2 --json
    assert_exact_run "no-shutdown --pools 3"
    assert_json '.metrics.idle_threads_left == 6'
}

@test "futures-leak: the table keeps every future; the fixed callback keeps none" {
    run --separate-stderr "$P" --variant futures-leak --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_clean futures-leak
    assert_json '.exact == false and .metrics.table_leak == 10000 and .metrics.table_fixed == 0'
    assert_json '.metrics.peak_fixed <= 1000'
    run --separate-stderr "$P" --variant futures-leak --tasks 2500 --json
    assert_json '.metrics.table_leak == 2500 and .metrics.table_fixed == 0'
}

# --- the hand-made pool ------------------------------------------------------------

@test "hand-made hangs in every run: exit 3, the watchdog names the stuck join" {
    for _ in 1 2 3; do
        run --separate-stderr "$P" --variant hand-made --timeout 0.5
        [ "$status" -eq 3 ] || fail "exit $status, expected 3: $stderr"
        [[ "$stderr" == *"watchdog: no progress"* ]] || fail "$stderr"
        [[ "$stderr" == *"waits in wait_completion (queue join) for every task_done"* ]] ||
            fail "$stderr"
        [[ "$stderr" == *"5 tasks put, 4 marked done, 1 failed"* ]] || fail "$stderr"
        [[ "$stderr" == *"that the failing task skipped"* ]] || fail "$stderr"
        assert_clean hand-made
    done
}

@test "hand-made-fixed: every task marked done, the error reported, join returns" {
    run --separate-stderr "$P" --variant hand-made-fixed --json
    assert_exact_run hand-made-fixed
    assert_json '.metrics.marked_done == 5 and .metrics.errors == 1'
    run --separate-stderr "$P" --variant hand-made-fixed --tasks 500 --workers 16 --json
    assert_exact_run "hand-made-fixed --tasks 500"
    assert_json '.metrics.marked_done == 500'
}

# --- the process pool ----------------------------------------------------------------

@test "process-map: results by index, awaited on the completion fd, no child left" {
    run_in_session --separate-stderr "$P" --variant process-map --json
    assert_exact_run process-map
    assert_json '.metrics.workers_spawned == 4'
}

@test "process-cancel: the hung task's worker killed, reaped and replaced" {
    run_in_session --separate-stderr "$P" --variant process-cancel --json
    assert_exact_run process-cancel
    assert_json '.metrics.killed == 1 and .metrics.spawned == 3'
    run_in_session --separate-stderr "$P" --variant process-cancel --workers 1 --tasks 3 --json
    assert_exact_run "process-cancel --workers 1"
    assert_json '.metrics.killed == 1 and .metrics.spawned == 2'
}

@test "nested: W processes x T threads, every sum right, switches counted" {
    run_in_session --separate-stderr "$P" --variant nested --json
    assert_exact_run nested
    assert_json ".metrics.threads == $(nproc) * 8"
    assert_json '.metrics.ivcsw_nested >= 0 and .metrics.ivcsw_flat >= 0'
    run_in_session --separate-stderr "$P" --variant nested --workers 1 --inner-threads 3 --json
    assert_exact_run "nested --workers 1 --inner-threads 3"
    assert_json '.metrics.threads == 3'
}

@test "the worker mode is only for the pool: a stray flag is a usage error" {
    run --separate-stderr "$P" --cl-procpool-worker
    [ "$status" -eq 2 ] || fail "exit $status"
}

# --- bad input, Ctrl-C ----------------------------------------------------------------

@test "bad input: one line and exit 2" {
    bad_input "$P" <<'EOF'
--threads 2|--threads
--iters 5|--iters
--workers 0|--workers
--workers 2000|--workers
--variant as-completed --tasks 100|--tasks
--variant map-ordered --tasks 40|--step-ms
--pool fibre|--pool
--variant process-map --workers 300|--workers
--variant hand-made --workers 20|--workers
--variant no-shutdown --pools 1000 --workers 8|--pools
--hang-ms 2000|--hang-ms
--wait-ms 0|--wait-ms
--chunk 0|--chunk
--variant nested --workers 100 --inner-threads 100|--inner-threads
--variant nope|nope
EOF
}

@test "Ctrl-C in every phase: exit 130 with the partial result, no child left" {
    for v in as-completed exceptions cancel-token chunking pool-reused hand-made-fixed \
        process-map process-cancel nested; do
        sigint_every_phase "$P" --variant "$v"
    done
    for phase in setup run check report teardown; do
        run_in_session --separate-stderr env CONCLAB_TEST_SIGINT_AT="$phase" "$P" \
            --variant process-cancel
        [ "$status" -eq 130 ] || fail "process-cancel at $phase: exit $status"
    done
}

@test "a real Ctrl-C to the whole process group while workers run: 130 within 1 s" {
    # each still running at 0.2 s: a hung task waited for 1.5 s, 1 s of 10 ms tasks,
    # a million one-item chunks (at least 1.5 s even at 1.5 us each)
    for args in "process-cancel --wait-ms 1500" "process-map --tasks 400" \
        "chunking --pool process --chunk 1 --tasks 1000000"; do
        read -ra a <<<"$args"
        ctrl_c_group 0.2 "$P" --variant "${a[@]}" # the demo and its workers
    done
}
