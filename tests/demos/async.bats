#!/usr/bin/env bats
# shellcheck disable=SC2154 # status, output, stderr, stderr_lines: set by bats's run
# Behaviour of demos/async: every variant's result (orders, counts, errnos,
# what the watchdog names), exit codes, the bad-input table, Ctrl-C in every
# phase of every variant, the trace of the blocked loop, and nothing left
# behind (the fan-out's responder process, sockets). Times appear only as
# bounds that cannot be missed (a sleep is never early) or with margins of 4x
# or more; what things cost is the benchmarks' business.

load common

setup() {
    ASYNC="$(demo async)"
}

# A run that ends through _exit while threads still run (Ctrl-C, the watchdog)
# makes ThreadSanitizer sleep a second first, to catch races at exit
# (atexit_sleep_ms); the tests that end dozens of runs that way skip the sleep.
no_exit_sleep() {
    export TSAN_OPTIONS="${TSAN_OPTIONS-} atexit_sleep_ms=0"
}

# One variant with --json: must exit 0; leaves the JSON line in $output.
json_run() {
    run --separate-stderr "$ASYNC" --json "$@"
    [ "$status" -eq 0 ] || fail "$* exit $status: $stderr"
}

# --- the declaration ------------------------------------------------------------

@test "async --list: 26 variants, their tags" {
    assert_list async 26
    [ "$(variants_tagged async hangs | tr '\n' ' ')" = "condition-signal queue-join " ]
    [ "$(variants_tagged async wrong | tr '\n' ' ')" = \
        "stop-no-drain race-across-await await-timer " ]
    [ "$(variants_tagged async slow | tr '\n' ' ')" = "blocking-call " ]
    [ -z "$(variants_tagged async racy)" ]
    [ -z "$(variants_tagged async lock-order)" ]
}

@test "async with no flags runs every variant, each behaving as declared" {
    run --separate-stderr "$ASYNC" --timeout 0.5
    assert_success # under TSan too: nothing here may race
    assert_output --partial "all 26 variants behaved as declared"
    for v in $(variants_tagged async '!hangs'); do
        assert_line --regexp "^$v \["
    done
    # the two that hang end through the watchdog, which names their tasks
    [ "$(grep -c '^watchdog: no progress for' <<<"$stderr")" -eq 2 ] || fail "$stderr"

}

# --- the basics -----------------------------------------------------------------

@test "gather: 2, 1 and 3 units take 3 to 5 units, with each result in order" {
    json_run --variant gather
    assert_json '.exact and .metrics.makespan_units >= 3 and .metrics.makespan_units < 5'
}

@test "many-waiters: every task wakes, never early; on threads too" {
    json_run --variant many-waiters --tasks 2000 --unit-ms 20
    assert_json '.exact and .metrics.tasks == 2000 and .ops == 2000 and
                 .metrics.rss_per_task_bytes > 0 and .threads == 1'
    json_run --variant many-waiters --on threads --tasks 50 --unit-ms 20
    assert_json '.exact and .metrics.tasks == 50 and .threads == 50'
}

@test "many-waiters: --tasks 1,000,000 on the loop" {
    skip_under_tsan "a million tasks: the plain and ASan builds"
    json_run --variant many-waiters --tasks 1000000 --unit-ms 10
    assert_json '.exact and .metrics.tasks == 1000000'
}

@test "switch-cost: every hand-off made, by tasks and by three kinds of thread" {
    json_run --variant switch-cost --iters 2000
    assert_json '.exact and .ops == 2000 and .threads == 2 and .metrics.tasks_ns > 0 and
                 .metrics.condvar_ns > 0 and .metrics.futex_ns > 0 and .metrics.pipe_ns > 0'
}

@test "starts-at-await: the child runs only at its creator's first await" {
    json_run --variant starts-at-await --unit-ms 20
    assert_json '.exact and (.verdict | startswith("created, worked, child-runs, resumed"))'
    assert_json '.metrics.child_waited_units >= 1' # the creator's unit of work came first
}

@test "timers: call_soon, call_later twice in arming order, then call_at; never early" {
    json_run --variant timers
    assert_json '.exact and (.verdict | startswith("call_soon, call_later A, call_later B, call_at"))'
}

# --- the combinators ---------------------------------------------------------------

@test "wait-modes: 1 done and 2 pending, then 1 and 1, then 1 and 0" {
    json_run --variant wait-modes
    assert_json '.exact and (.verdict | test("FIRST_COMPLETED: 1 done, 2 pending .* FIRST_EXCEPTION: 1, 1 .* ALL_COMPLETED: 1, 0"))'
}

@test "as-completed: url2, url3, url1" {
    json_run --variant as-completed
    assert_json '.exact and (.verdict | test("url2, url3, url1"))'
}

@test "gather-errors: every outcome kept, or the first error while the others run on" {
    json_run --variant gather-errors
    assert_json '.exact and (.verdict | test("\\[10, EIO, 30\\]"))'
}

@test "taskgroup: a failure cancels the sibling, the group raises it, nothing is left" {
    json_run --variant taskgroup
    assert_json '.exact and (.verdict | test("worker 1 done, worker 3 cancelled, the group raises EIO; 0 tasks left"))'
}

@test "wait-for: ETIMEDOUT after the operation's cleanup ran once" {
    json_run --variant wait-for
    assert_json '.exact and (.verdict | test("ETIMEDOUT"))'
}

@test "shield: the caller is cancelled, the shielded operation finishes with its result" {
    json_run --variant shield
    assert_json '.exact and (.verdict | test("with its result"))'
}

@test "cancel-cleanup drains; stop-no-drain cuts every item and ignores its timeout" {
    json_run --variant cancel-cleanup
    assert_json '.exact and .metrics.finished_after_stop == 2 and .metrics.cut == 1 and
                 .metrics.cut_needlessly == 0 and .metrics.stop_units >= 2'
    json_run --variant stop-no-drain
    assert_json '(.exact | not) and .exit == 0 and .metrics.finished_after_stop == 0 and
                 .metrics.cut == 3 and .metrics.cut_needlessly == 2 and .metrics.stop_units < 0.5'
}

# --- locks on one thread -------------------------------------------------------------

@test "race-across-await loses 10 of 15 updates with no thread at all; async-lock none" {
    json_run --variant race-across-await
    assert_json '(.exact | not) and .metrics.final == 5 and .metrics.lost == 10'
    json_run --variant async-lock
    assert_json '.exact and .metrics.final == 15 and .metrics.lost == 0'
}

@test "lock-over-compute: each key computed once; one lock at least 4 x 0.3 units" {
    json_run --variant lock-over-compute
    # one lock runs the four computes in turn: never under 1.2 units; a lock
    # per key runs them together (0.3 units; 4x below that bound)
    assert_json '.exact and .metrics.one_lock_units >= 1.2 and .metrics.per_key_units >= 0.3 and
                 .metrics.per_key_units < 1.2'
}

@test "semaphore: 2 inside at most, 6 tasks in 3 to 5 units" {
    json_run --variant semaphore
    assert_json '.exact and .metrics.most_inside == 2 and .metrics.makespan_units >= 3 and
                 .metrics.makespan_units < 5'
}

@test "event: the waiters wake in one batch; the handshake keeps the order" {
    json_run --variant event
    assert_json '.exact and (.verdict | test("3 waiters woke together"))'
}

# --- the hangs: the watchdog names every stuck task and what it awaits -------------------

@test "condition-signal hangs in every run; the watchdog names all four tasks" {
    no_exit_sleep
    for _ in 1 2 3; do
        run --separate-stderr "$ASYNC" --variant condition-signal --timeout 0.3
        [ "$status" -eq 3 ] || fail "exit $status: $output"
        for who in "consumer 1' #1" "consumer 2' #2" "producer 1' #3" "producer 2' #4"; do
            [[ "$stderr" == *"task '$who: awaiting 'not empty or not full'"* ]] ||
                fail "$who not named: $stderr"
        done
        [[ "$stderr" == *"loop: waiting in epoll_wait"* ]] || fail "$stderr"
    done
}

@test "queue-join hangs in join; queue-join-fixed returns with every item done once" {
    no_exit_sleep
    for _ in 1 2; do
        run --separate-stderr "$ASYNC" --variant queue-join --timeout 0.3 --unit-ms 10
        [ "$status" -eq 3 ] || fail "exit $status: $output"
        [[ "$stderr" == *"task 'main' #4: awaiting 'every item task_done'"* ]] || fail "$stderr"
        [[ "$stderr" != *"task 'consumer'"* ]] || fail "a consumer still runs: $stderr"
    done
    json_run --variant queue-join-fixed --unit-ms 10
    assert_json '.exact and (.verdict | test("10 items processed once each, and join\\(\\) returned"))'
}

# --- blocking ----------------------------------------------------------------------

@test "blocking-call: every ticker and the lag monitor see the 300 ms call" {
    json_run --variant blocking-call
    # a tick and a sample fall due at most 100 ms into the call and run at its
    # end: each is at least 200 ms late, whatever the machine does
    assert_json '.exact and .metrics.blocked_ms >= 300 and .metrics.late_max_ms >= 200 and
                 .metrics.lag_max_ms >= 200 and .metrics.lag_warnings >= 1 and .ops == 30'
    [[ "$stderr" == *"loop lag: a timer ran "*" ms late (threshold 150.0 ms)"* ]] || fail "$stderr"
}

@test "blocking-call --trace: a row per ticker, the call, the monitor; samples beside" {
    local t="$BATS_TEST_TMPDIR/blk.csv"
    run --separate-stderr "$ASYNC" --variant blocking-call --trace "$t" --quiet
    assert_success
    run cat "$t"
    assert_line --index 0 "thread,kind,start_s,end_s"
    [ "$(grep -c '^[123],wait,' "$t")" -eq 30 ] || fail "not 10 sleeps per ticker"
    [ "$(grep -c '^[123],run,' "$t")" -eq 3 ] || fail "not a run span per ticker"
    awk -F, '$1 == 4 && $2 == "hold" && $4 - $3 >= 0.3 { found = 1 } END { exit !found }' "$t" ||
        fail "no 300 ms hold on row 4"
    awk -F, '$1 == 5 && $2 == "wait" && $4 - $3 >= 0.2 { found = 1 } END { exit !found }' "$t" ||
        fail "the monitor's row shows no lag of 200 ms"
    run cat "$BATS_TEST_TMPDIR/blk.samples.tsv"
    assert_line --index 0 $'t_s\tlag_ms'
    awk -F'\t' 'NR > 1 && $2 >= 200 { found = 1 } END { exit !found }' \
        "$BATS_TEST_TMPDIR/blk.samples.tsv" || fail "no sample of 200 ms lag"
}

@test "await-timer flags the plain sleep too; the lag monitor only the blocking call" {
    json_run --variant await-timer
    assert_json '(.exact | not) and .metrics.detector_flags == 2 and .metrics.monitor_flags == 1'
    assert_json '.verdict | test("a plain sleep: YES; the lag monitor flagged the blocking call: yes, the sleep: no")'
}

@test "file-io: EPERM from epoll; the pool reads every byte; no file is left" {
    local before after
    before=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'conclab-async-*' | wc -l)
    json_run --variant file-io
    assert_json '.exact and .metrics.epoll_errno == 1 and .metrics.chunks == 64 and
                 .metrics.calls_from_threads == 64 and (.verdict | test("EPERM"))'
    after=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'conclab-async-*' | wc -l)
    [ "$before" -eq "$after" ]
}

@test "file-io --file-io uring: reads every byte, or is refused with one line" {
    run --separate-stderr "$ASYNC" --variant file-io --file-io uring --json
    case "$status" in
    0) assert_json '.exact and .metrics.chunks == 64 and .metrics.calls_from_threads == 0' ;;
    4) [ "${#stderr_lines[@]}" -eq 1 ] && [[ "$stderr" == *"io_uring"* ]] || fail "$stderr" ;;
    2) [[ "$stderr" == *"liburing"* ]] || fail "$stderr" ;; # a build without liburing
    *) fail "exit $status: $stderr" ;;
    esac
}

# --- sockets ---------------------------------------------------------------------------

@test "fan-out: every reply right, --limit in flight, no faster than the schedule; no child left" {
    run_in_session --separate-stderr "$ASYNC" --variant fan-out --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_json '.exact and .ops == 6 and .metrics.most_in_flight == 3 and
                 .metrics.schedule_units == 5 and .metrics.sequential_units == 12 and
                 .metrics.makespan_units >= 5'
    run_in_session --separate-stderr "$ASYNC" --variant fan-out --requests 20 --limit 5 \
        --unit-ms 20 --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_json '.exact and .ops == 20 and .metrics.most_in_flight == 5'
}

@test "echo: one thread serves every client, every line back as sent" {
    run_in_session --separate-stderr "$ASYNC" --variant echo --clients 5 --iters 40 --json
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    assert_json '.exact and .metrics.echoed == 200 and .ops == 200'
}

# --- bad input -----------------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$ASYNC" <<'TABLE'
--unit-ms 0|--unit-ms: 0 is out of range (allowed: 1 to 1000)
--unit-ms 1001|--unit-ms: 1001 is out of range
--unit-ms fast|--unit-ms: 'fast' is not a whole number
--tasks 0|--tasks: 0 is out of range (allowed: 1 to 1000000)
--tasks 1000001|--tasks: 1000001 is out of range
--variant many-waiters --on threads --tasks 20000|--tasks: at most 10,000 with --on threads
--on fibres|--on
--requests 0|--requests: 0 is out of range
--limit 101|--limit: 101 is out of range
--clients 0|--clients: 0 is out of range
--block-ms 0|--block-ms: 0 is out of range
--file-io aio|--file-io
--variant gather --iters 5|--iters: not used by gather
--variant gather --threads 2|--threads: not used by variant gather
--variant many-waiters --threads 2|--threads: not used by many-waiters
--variant nosuch|no variant 'nosuch'
--trace t.csv|--trace: needs one --variant
--no-such-flag|--no-such-flag
TABLE
}

@test "--help lists the chapter's flags" {
    run "$ASYNC" --help
    assert_success
    for f in --unit-ms --tasks --on --requests --limit --clients --block-ms --file-io; do
        assert_output --partial "$f"
    done
}

# --- Ctrl-C ----------------------------------------------------------------------------

# Small sizes, so that the phases after the run come quickly.
sigint_args() {
    case "$1" in
    switch-cost) echo --iters 500 ;;
    many-waiters) echo --tasks 100 ;;
    blocking-call) echo --block-ms 20 ;;
    *) ;;
    esac
}

@test "Ctrl-C in every phase of every variant: exit 130, nothing left behind" {
    local v phase
    no_exit_sleep
    for v in $(variants_tagged async '!hangs'); do
        for phase in setup run check report teardown; do
            # shellcheck disable=SC2046 # the words of sigint_args are separate flags
            run_in_session env CONCLAB_TEST_SIGINT_AT="$phase" "$ASYNC" --variant "$v" \
                --unit-ms 2 $(sigint_args "$v")
            [ "$status" -eq 130 ] || fail "$v at $phase: exit $status: $output"
            [[ "$output" == *"$v: interrupted after "*" operations"* ]] || fail "$v: $output"
            [ "$phase" = run ] || [[ "$output" == *"(in $phase)"* ]] || fail "$v: $output"
        done
    done
}

@test "Ctrl-C in the setup and run phases of the hanging variants: exit 130" {
    local v phase
    no_exit_sleep
    for v in $(variants_tagged async hangs); do
        for phase in setup run; do
            run --separate-stderr env CONCLAB_TEST_SIGINT_AT="$phase" "$ASYNC" --variant "$v" \
                --unit-ms 2
            [ "$status" -eq 130 ] || fail "$v at $phase: exit $status"
        done
    done
}

@test "Ctrl-C while the fan-out waits for its responder: 130 at once, no child left" {
    local d="$BATS_TEST_TMPDIR"
    setsid "$ASYNC" --variant fan-out --unit-ms 1000 --timeout 30 >"$d/out" 2>&1 &
    local pid=$!
    sleep 0.5
    local t0
    t0=$(date +%s%N)
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 130 ] || fail "exit $status: $(cat "$d/out")"
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 3000 ] # the contract says 1 s; margin for load
    grep -q "fan-out: interrupted after" "$d/out"
    ! pgrep -s "$pid" >/dev/null || fail "left: $(ps -o pid,args -s "$pid")"
}
