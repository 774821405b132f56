#!/usr/bin/env bats
# Behaviour of demos/hybrid: blocking calls and CPU work offloaded from the loop
# (exact results, the stall the lag monitor sees), a service whose makespan is
# its longest part, the lost wake-up of the guides' two-sided queue (exit 3,
# naming the sleeping task) and lib's queue in the same window, loop state
# written from a thread (TSan's report), the skipped callback and its fix, the
# loop in a thread of its own, a message bus that drops late replies, a pool
# made in a callback; bad input, Ctrl-C in every phase, no child left behind.

# shellcheck disable=SC2154 # stderr: set by run
load common

setup() {
    H="$(demo hybrid)"
}


# The run in $output / $status is exact and clean: exit 0, and no sanitizer report.
assert_exact_run() { # what
    [ "$status" -eq 0 ] || fail "$1: exit $status: $stderr"
    assert_json '.exact == true' || fail "$1: not exact: $output"
    assert_clean "$1"
}

# --- the declaration -----------------------------------------------------------

@test "hybrid --list: thirteen variants with their tags" {
    assert_list hybrid 13
    for v in to-thread cpu-to-thread cpu-to-procs hybrid-service bridge-queue \
        callback-on-error-fixed loop-thread message-bus; do
        assert_line --regexp "^$v"$'\t'"correct"$'\t'
    done
    for v in blocking-in-loop pool-in-callback; do
        assert_line --regexp "^$v"$'\t'"slow"$'\t'
    done
    [ "$(variants_tagged hybrid wrong)" = callback-on-error ]
    [ "$(variants_tagged hybrid hangs)" = bridge-lost-wakeup ]
    [ "$(variants_tagged hybrid racy)" = cross-thread-unsafe ]
}

@test "hybrid with no flags runs every variant as declared, and leaves no process behind" {
    run_in_session "$H"
    assert_success # a racy variant's TSan report counts as behaving as declared
    assert_output --partial "all 13 variants behaved as declared"
    assert_output --partial "watchdog: no progress" # the lost wake-up, caught
}

# --- offloading ------------------------------------------------------------------

@test "blocking-in-loop: three 1-unit calls take 3 units, and the monitor sees the stall" {
    run --separate-stderr "$H" --variant blocking-in-loop --json
    assert_exact_run blocking-in-loop
    assert_json '.metrics.calls == 3 and .metrics.makespan_units >= 3'
    # the three calls run in one iteration: one sample at least as late as all of them
    assert_json '.metrics.lag_max_ms >= 3 * .params.unit_ms - 5'
}

@test "to-thread: the same calls on threads overlap, every result right" {
    run --separate-stderr "$H" --variant to-thread --json
    assert_exact_run to-thread
    assert_json '.metrics.calls == 3 and .metrics.makespan_units >= 1'
    # under 2 units needs the pool's threads to start at once: best of a few runs
    best_of 5 '-.metrics.makespan_units' -2 'true' "$H" --variant to-thread --json
    run --separate-stderr "$H" --variant to-thread --calls 5 --unit-ms 20 --json
    assert_exact_run "to-thread --calls 5"
    assert_json '.metrics.calls == 5 and .params.workers == 5'
}

@test "cpu-to-thread: every job's sum right, with and without the GIL" {
    run --separate-stderr "$H" --variant cpu-to-thread --json
    assert_exact_run cpu-to-thread
    assert_json ".metrics.jobs == 2 * $(nproc) and .params.workers == $(nproc)"
    run --separate-stderr "$H" --variant cpu-to-thread --gil on --jobs 3 --json
    assert_exact_run "cpu-to-thread --gil on"
    assert_json '.params.gil == "on" and .metrics.jobs == 3 and .metrics.gil_switches > 0'
    # the loop must wait a switch interval (5 ms) for the GIL the workers hold
    assert_json '.metrics.lag_max_ms >= 4'
}

@test "cpu-to-thread --on loop: the jobs hold the loop; the monitor sees a whole job" {
    run --separate-stderr "$H" --variant cpu-to-thread --on loop --jobs 2 --json
    assert_exact_run "cpu-to-thread --on loop"
    assert_json '.metrics.workers == 0 and .metrics.jobs == 2'
    # both jobs ran in one iteration of the loop: one sample nearly as late as the run
    assert_json '.metrics.lag_max_ms >= 0.9 * .metrics.makespan_units * .params.unit_ms'
}

@test "cpu-to-procs: cores - 1 worker processes, results by index, none left behind" {
    run_in_session --separate-stderr "$H" --variant cpu-to-procs --json
    assert_exact_run cpu-to-procs
    n=$(nproc)
    assert_json ".params.workers == $((n > 1 ? n - 1 : 1)) and .metrics.jobs == 2 * $n"
    run_in_session --separate-stderr "$H" --variant cpu-to-procs --workers 3 --jobs 7 --json
    assert_exact_run "cpu-to-procs --workers 3 --jobs 7"
}

@test "hybrid-service: the makespan is the longest part, not the sum" {
    run_in_session --separate-stderr "$H" --variant hybrid-service --json
    assert_exact_run hybrid-service
    assert_json '.metrics.requests_units >= 1 and .metrics.blocking_units >= 1.5'
    assert_json '.metrics.makespan_units >= .metrics.longest_units - 0.01'
    assert_json '.metrics.makespan_units < .metrics.sum_units'
}

@test "hybrid-service --trace: a lane each for the loop, the threads and the process" {
    run_in_session --separate-stderr "$H" --variant hybrid-service \
        --trace "$BATS_TEST_TMPDIR/s.csv" --json
    assert_exact_run "hybrid-service --trace"
    run cat "$BATS_TEST_TMPDIR/s.csv"
    assert_line --index 0 "thread,kind,start_s,end_s"
    [ "$(grep -c ',wait,' <<<"$output")" -eq 3 ]
    [ "$(grep -c ',blocked,' <<<"$output")" -eq 2 ]
    [ "$(grep -c ',running,' <<<"$output")" -eq 1 ]
    awk -F, 'NR > 1 && $4 < $3 { exit 1 }' "$BATS_TEST_TMPDIR/s.csv"
}

@test "pool-in-callback: every request answered; the pools' start and stop stall the loop" {
    run_in_session --separate-stderr "$H" --variant pool-in-callback --json
    assert_exact_run pool-in-callback
    assert_json '.metrics.requests == 4'
    # a worker reaped in the callback costs the loop more than none at all
    assert_json '.metrics.stall_per_request_ms > .metrics.stall_shared_ms'
    run_in_session --separate-stderr "$H" --variant pool-in-callback --items 2 --workers 1 --json
    assert_exact_run "pool-in-callback --items 2"
    assert_json '.metrics.requests == 2'
}

# --- the bridge ------------------------------------------------------------------------

@test "bridge-lost-wakeup hangs in every run: exit 3, the sleeping task named" {
    for _ in 1 2 3; do
        run_in_session --separate-stderr "$H" --variant bridge-lost-wakeup
        [ "$status" -eq 3 ] || fail "exit $status, expected 3: $stderr"
        [[ "$stderr" == *"watchdog: no progress"* ]] || fail "$stderr"
        [[ "$stderr" == *"task 'getter' #1: awaiting 'a fresh event, armed after the check'"* ]] ||
            fail "$stderr"
        [[ "$stderr" == *"1 put, 0 taken, 1 waiting in it; 1 put found no event to set"* ]] ||
            fail "$stderr"
        assert_clean bridge-lost-wakeup
    done
}

@test "bridge-queue: the same window, every item received in order" {
    run --separate-stderr "$H" --variant bridge-queue --json
    assert_exact_run bridge-queue
    assert_json '.metrics.items == 5 and .metrics.received == 5 and .metrics.task_wakes == 5'
    run --separate-stderr "$H" --variant bridge-queue --items 100 --json
    assert_exact_run "bridge-queue --items 100"
    assert_json '.metrics.received == 100'
}

@test "cross-thread-unsafe: plain build exit 0; TSan reports the race" {
    run --separate-stderr "$H" --variant cross-thread-unsafe --items 200 --json
    if under_tsan; then
        [ "$status" -eq 66 ] || fail "exit $status, expected 66"
        [[ "$stderr" == *"WARNING: ThreadSanitizer: data race"* ]] || fail "no report: $stderr"
    else
        [ "$status" -eq 0 ] || fail "exit $status: $stderr"
        assert_json '.metrics.polls > 0'
    fi
}

@test "ThreadSanitizer reports exactly the racy variant" {
    only_under_tsan
    for v in $(variants_tagged hybrid '!hangs'); do
        run_in_session --separate-stderr "$H" --variant "$v"
        if [ "$v" = cross-thread-unsafe ]; then
            [ "$status" -eq 66 ] || fail "$v: exit $status, expected 66"
            [[ "$stderr" == *"WARNING: ThreadSanitizer: data race"* ]] || fail "$v: no report"
        else
            [ "$status" -eq 0 ] || fail "$v: exit $status: $stderr"
            assert_clean "$v"
        fi
    done
}

@test "callback-on-error: the callback never runs for a task that raised" {
    run --separate-stderr "$H" --variant callback-on-error --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_clean callback-on-error
    assert_json '.exact == false and .metrics.tasks == 6 and .metrics.failed == 2'
    assert_json '.metrics.callbacks == 4 and .metrics.errors_reported == 0'
    run --separate-stderr "$H" --variant callback-on-error --items 30 --json
    assert_json '.metrics.failed == 10 and .metrics.callbacks == 20'
}

@test "callback-on-error-fixed: a done callback for every outcome, errors reported" {
    run --separate-stderr "$H" --variant callback-on-error-fixed --json
    assert_exact_run callback-on-error-fixed
    assert_json '.metrics.callbacks == 6 and .metrics.errors_reported == 2'
    run --separate-stderr "$H" --variant callback-on-error-fixed --items 30 --json
    assert_exact_run "callback-on-error-fixed --items 30"
    assert_json '.metrics.callbacks == 30 and .metrics.errors_reported == 10'
}

@test "loop-thread: every call from plain code answered, both round trips measured" {
    run --separate-stderr "$H" --variant loop-thread --items 500 --json
    assert_exact_run loop-thread
    assert_json '.metrics.round_trips == 500'
    assert_json '.metrics.round_trip_us > 0 and .metrics.eventfd_round_trip_us > 0'
    # every posted call runs; posts share wake-ups, never more wakes than posts
    assert_json '.metrics.posters == 10 and .metrics.posts == 10000 and .metrics.posts_run == 10000'
    assert_json '.metrics.wakes >= 1 and .metrics.wakes <= .metrics.posts'
    run --separate-stderr "$H" --variant loop-thread --items 10 --posters 100 --json
    assert_exact_run "loop-thread --posters 100"
    assert_json '.metrics.posts_run == 100000'
}

@test "message-bus: replies matched by id; the late one dropped, never misdelivered" {
    run --separate-stderr "$H" --variant message-bus --json
    assert_exact_run message-bus
    assert_json '.metrics.requests == 12 and .metrics.replies == 11 and .metrics.timeouts == 1'
    assert_json '.metrics.late_dropped == 1 and .metrics.mismatched == 0'
    run --separate-stderr "$H" --variant message-bus --items 1 --json
    assert_exact_run "message-bus --items 1"
    assert_json '.metrics.replies == 1 and .metrics.timeouts == 0 and .metrics.late_dropped == 0'
}

@test "the worker mode is only for the pool: a stray flag is a usage error" {
    run --separate-stderr "$H" --cl-procpool-worker
    [ "$status" -eq 2 ] || fail "exit $status"
}

# --- bad input, Ctrl-C -------------------------------------------------------------------

@test "bad input: one line and exit 2" {
    bad_input "$H" <<'EOF'
--threads 2|--threads
--iters 5|--iters
--unit-ms 5|--unit-ms
--calls 0|--calls
--calls 17|--calls
--jobs 65|--jobs
--workers 0|--workers
--gil maybe|--gil
--variant to-thread --gil on|--gil
--items 0|--items
--variant message-bus --items 1001|--items
--variant pool-in-callback --items 101|--items
--variant to-thread --on loop|--on
--variant cpu-to-procs --on loop|--on loop
--variant cpu-to-thread --on loop --gil on|--gil
--variant to-thread --posters 3|--posters
--variant loop-thread --posters 101|--posters
--variant to-thread --items 3|--items
--variant message-bus --workers 3|--workers
--variant loop-thread --calls 2|--calls
--variant hybrid-service --jobs 2|--jobs
--variant cross-thread-unsafe --items 20000|--items
--variant nope|nope
EOF
}

@test "Ctrl-C in every phase: exit 130 with the partial result, no child left" {
    for v in to-thread cpu-to-thread bridge-queue callback-on-error-fixed loop-thread \
        message-bus; do
        sigint_every_phase "$H" --variant "$v"
    done
    for v in cpu-to-procs hybrid-service pool-in-callback; do
        for phase in setup run check report teardown; do
            run_in_session --separate-stderr env CONCLAB_TEST_SIGINT_AT="$phase" "$H" \
                --variant "$v"
            [ "$status" -eq 130 ] || fail "$v at $phase: exit $status"
        done
    done
}

@test "a real Ctrl-C while the process pool works: 130 within 1 s, no child left" {
    ctrl_c_group 0.3 "$H" --variant cpu-to-procs --jobs 40
}
