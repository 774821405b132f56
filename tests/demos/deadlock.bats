#!/usr/bin/env bats
# Behaviour of demos/deadlock: every variant, exit codes, the watchdog's wait-for
# cycle and how soon it comes, the cures' invariants, bad input, Helgrind and
# ThreadSanitizer both ways.

load common

setup() {
    DL="$(demo deadlock)"
}

# Where TSan reports a lock-order inversion, exit 0 becomes 66.
assert_lock_order_success() {
    if under_tsan; then
        [ "$status" -eq 66 ] || fail "exit $status, expected TSan's 66"
    else
        assert_success
    fi
}

# --- the declaration -------------------------------------------------------

@test "deadlock --list: 16 variants, with their tags" {
    assert_list deadlock 16
    for v in abba transfer philosophers; do
        assert_line --regexp "^$v"$'\thangs,lock-order\t'
    done
    assert_line --regexp $'^self\thangs\t'
    assert_line --regexp $'^leaked-lock\thangs\t'
    assert_line --regexp $'^lockdep\tlock-order\t'
    assert_line --regexp $'^philosophers-waiter\tcorrect,lock-order\t'
    for v in ordered trylock trylock-livelock timed errorcheck recursive global-lock \
        transfer-ordered philosophers-ordered; do
        assert_line --regexp "^$v"$'\tcorrect\t'
    done
}

# --- the deadlocks: exit 3, and the watchdog says why ---------------------------

@test "every variant tagged hangs ends through the watchdog with exit 3" {
    for v in $(variants_tagged deadlock hangs); do
        run --separate-stderr "$DL" --variant "$v" --timeout 0.5
        [ "$status" -eq 3 ] || fail "$v: exit $status"
        [[ "$stderr" == *"watchdog: no progress"* ]] || fail "$v: no watchdog report"
        if [ "$v" = leaked-lock ]; then # no cycle: the holder is gone
            [[ "$stderr" == *"which has exited"* ]] || fail "$v: no exited holder: $stderr"
        else
            [[ "$stderr" == *"wait-for cycle: T"* ]] || fail "$v: no cycle: $stderr"
        fi
    done
}

@test "leaked-lock: every run hangs on L, held by a thread that has exited" {
    for _ in 1 2 3; do # the order is forced: every run, not once by luck
        run --separate-stderr "$DL" --variant leaked-lock --timeout 0.5
        [ "$status" -eq 3 ] || fail "exit $status: $stderr"
        [[ "$stderr" == *"T1: 0 of 1,000 operations done, finished"* ]] || fail "$stderr"
        [[ "$stderr" == *"T2: 0 of 1,000 operations done, waits for L"* ]]
        [[ "$stderr" == *"lock L: held by T1, wanted by T2"* ]]
        [[ "$stderr" == *"wait-for cycle: none found"* ]]
        [[ "$stderr" == *"lock L held by T1, which has exited: nobody can unlock it now"* ]]
    done
    # every thread after the first waits for it
    run --separate-stderr "$DL" --variant leaked-lock --threads 4 --timeout 0.5
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"lock L: held by T1, wanted by T2, T3, T4"* ]] || fail "$stderr"
    [[ "$stderr" == *"lock L held by T1, which has exited"* ]]
}

@test "abba: the cycle names both locks and both threads" {
    run --separate-stderr "$DL" --variant abba
    [ "$status" -eq 3 ]
    # (it may finish a few transfers before the threads collide)
    [[ "$stderr" =~ T1:\ [0-9,]+\ of\ 1,000\ operations\ done,\ waits\ for\ B ]]
    [[ "$stderr" =~ T2:\ [0-9,]+\ of\ 1,000\ operations\ done,\ waits\ for\ A ]]
    [[ "$stderr" == *"lock A: held by T1, wanted by T2"* ]]
    [[ "$stderr" == *"lock B: held by T2, wanted by T1"* ]]
    [[ "$stderr" == *"wait-for cycle: T1 holds A, waits for B; T2 holds B, waits for A"* ]]
    [[ "$stderr" == *"deadlock: a cycle of 2 threads, T1 -> T2 -> T1"* ]]
}

@test "self: one thread waits for the lock it holds" {
    run --separate-stderr "$DL" --variant self --timeout 0.5
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"wait-for cycle: T1 holds M, waits for M"* ]]
    [[ "$stderr" == *"self-deadlock: T1 waits for a lock it already holds"* ]]
}

@test "philosophers: a ring of N, each holding its left fork" {
    run --separate-stderr "$DL" --variant philosophers --philosophers 5 --timeout 0.5
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"T1 holds fork 0, waits for fork 1;"*"T5 holds fork 4, waits for fork 0"* ]]
    [[ "$stderr" == *"a cycle of 5 threads"* ]]
    run --separate-stderr "$DL" --variant philosophers --philosophers 64 --timeout 0.5
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"a cycle of 64 threads"* ]]
}

@test "transfer: the naive bank deadlocks, with --accounts 2 and 50" {
    for n in 2 50; do
        run --separate-stderr "$DL" --variant transfer --accounts "$n" --threads 4 --timeout 0.5
        [ "$status" -eq 3 ] || fail "--accounts $n: exit $status"
        [[ "$stderr" == *"wait-for cycle: T"* ]]
    done
}

# Seconds since the epoch, with nanoseconds, as a whole number of ms.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

@test "detection latency: a deadlock ends within --timeout + 0.5 s (margin for load)" {
    # The contract is timeout + 0.5 s from the deadlock; the run also includes
    # start-up and the time to deadlock. Sanitizer builds start slower (TSan
    # adds about a second), so they get a wider margin.
    local margin=1500
    under_tsan && margin=3000
    [ "$SANITIZE" = none ] || margin=3000
    for v in abba self philosophers; do
        local t0=$(now_ms)
        run --separate-stderr "$DL" --variant "$v" --timeout 1
        local took=$(($(now_ms) - t0))
        [ "$status" -eq 3 ] || fail "$v: exit $status"
        [ "$took" -ge 1000 ] || fail "$v: fired after $took ms, before its timeout"
        [ "$took" -le $((1000 + margin)) ] || fail "$v: took $took ms"
        # the watchdog's own measure of the stall is close to the timeout
        stall=$(sed -n 's/^watchdog: no progress for \([0-9.]*\) s.*/\1/p' <<<"$stderr")
        awk -v s="$stall" 'BEGIN { exit !(s >= 1.0 && s <= 1.5) }' ||
            fail "$v: stall of $stall s"
    done
}

@test "--trace of abba: both threads' waits stay open until the watchdog" {
    run --separate-stderr "$DL" --variant abba --timeout 0.3 --trace "$BATS_TEST_TMPDIR/a.csv"
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"trace so far written to"* ]]
    run cat "$BATS_TEST_TMPDIR/a.csv"
    assert_line --index 0 "thread,kind,start_s,end_s"
    [ "$(grep -c ',run,' <<<"$output")" -eq 2 ]
    # each thread's last wait is still open when the watchdog fires: it ends
    # with the run, at the watchdog's time, after the thread took its first lock
    for t in 1 2; do
        end_wait=$(awk -F, -v t="$t" '$1 == t && $2 == "wait" { e = $4 } END { print e }' \
            "$BATS_TEST_TMPDIR/a.csv")
        end_run=$(awk -F, -v t="$t" '$1 == t && $2 == "run" { print $4 }' "$BATS_TEST_TMPDIR/a.csv")
        [ "$end_wait" = "$end_run" ]
        awk -v e="$end_wait" 'BEGIN { exit !(e >= 0.3) }'
        grep -q "^$t,hold," "$BATS_TEST_TMPDIR/a.csv"
    done
}

@test "Ctrl-C during a deadlock: exit 130 quickly" {
    "$DL" --variant abba --timeout 30 >"$BATS_TEST_TMPDIR/out" 2>&1 &
    local pid=$!
    # the header is flushed once the SIGINT handler is in place: wait for it
    for _ in $(seq 100); do
        grep -q '^deadlock:' "$BATS_TEST_TMPDIR/out" && break
        sleep 0.1
    done
    sleep 0.3
    local t0=$(now_ms)
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 130 ]
    [ $(($(now_ms) - t0)) -lt 3000 ]
    grep -q "abba: interrupted after [0-9,]* of 2,000 operations" "$BATS_TEST_TMPDIR/out" ||
        fail "$(cat "$BATS_TEST_TMPDIR/out")"
}

@test "Ctrl-C in every phase (setup, run, check, report, teardown): exit 130" {
    sigint_every_phase "$DL" --variant ordered --iters 50
    sigint_every_phase "$DL" --variant trylock-livelock --duration 100
    sigint_every_phase "$DL" --variant timed --iters 50
    sigint_every_phase "$DL" --variant philosophers-ordered --duration 100
    sigint_every_phase "$DL" --variant philosophers-waiter --duration 100
    sigint_every_phase "$DL" --variant errorcheck
    sigint_every_phase "$DL" --variant recursive --iters 1000
    sigint_every_phase "$DL" --variant lockdep --iters 100
    sigint_every_phase "$DL" --variant global-lock --iters 1000
}

# --- the cures: complete, with their invariants -----------------------------------

@test "the bank cures conserve money, at 2 and 16 accounts and 4 threads" {
    for v in ordered trylock timed global-lock transfer-ordered; do
        for n in 2 16; do
            run --separate-stderr "$DL" --variant "$v" --accounts "$n" --threads 4 \
                --iters 300 --hold-us 0 --json
            assert_success
            assert_json '.exact == true'
            assert_json ".metrics.money == $((n * 1000))"
            assert_json '.metrics.transfers == 1200'
        done
    done
}

@test "ordered, trylock and timed complete the AB/BA pattern with the default pause" {
    for v in ordered trylock timed; do
        run "$DL" --variant "$v" --iters 50 --json
        assert_success
        assert_json '.metrics.transfers == 100'
        assert_json '.metrics.money == 2000'
    done
    run "$DL" --variant trylock --iters 50 --json
    assert_json '(.metrics.retries | type) == "number"'
    assert_json '.metrics.retries_per_op | type == "number" and . >= 0'
    run "$DL" --variant timed --iters 50 --json
    assert_json '(.metrics.timeouts | type) == "number"'
}

@test "transfer-ordered handles transfer(a, a): many self-transfers at 2 accounts" {
    # one transfer in two is to the same account; the naive one deadlocks on it
    run "$DL" --variant transfer-ordered --accounts 2 --threads 2 --iters 10000 --quiet
    assert_success
    assert_output --partial "money conserved (2,000)"
}

@test "trylock-livelock ends at --duration with a verdict from the retry ratio" {
    local t0=$(now_ms)
    run --separate-stderr "$DL" --variant trylock-livelock --duration 300 --json
    local took=$(($(now_ms) - t0))
    assert_success
    [ "$took" -lt 10000 ]
    assert_json '.params.duration == 300'
    assert_json '.exact == true'
    assert_json '.verdict | test("^(livelock|no livelock this run):.*retries per transfer.*with jitter")'
    assert_json '(.metrics.ref_retries_per_op | type) == "number"'
    assert_json '.metrics.ref_transfers == 100'
}

@test "the fixed philosophers: every philosopher eats, at 5 and 16" {
    for v in philosophers-ordered philosophers-waiter; do
        for n in 5 16; do
            run --separate-stderr "$DL" --variant "$v" --philosophers "$n" --duration 400 --json
            if [ "$v" = philosophers-waiter ] && under_tsan; then
                # TSan reports the fork ring at 5; a ring of 16 may exceed what its
                # detector follows, so either status is fine here (tested below)
                [ "$status" -eq 0 ] || [ "$status" -eq 66 ] || fail "exit $status"
            else
                assert_success
            fi
            assert_json ".threads == $n"
            assert_json '.metrics.min_meals > 0' || fail "$v/$n: $output"
            assert_json '.metrics.max_meals >= .metrics.min_meals'
            assert_json '.verdict | startswith("every philosopher ate")'
        done
    done
}

@test "errorcheck: every relock returns EDEADLK, exit 0" {
    run "$DL" --variant errorcheck --iters 500 --json
    assert_success
    assert_json '.metrics.edeadlk == 500'
    assert_json '.verdict | contains("EDEADLK")'
}

@test "recursive: exact under nesting, and its cost against a plain mutex" {
    run "$DL" --variant recursive --threads 2 --iters 100000 --json
    assert_success
    assert_json '.metrics.count == 200000'
    jq -e '.metrics.plain_ns > 0 and .metrics.recursive_ns > 0 and
           .metrics.recursive_over_plain > 0' <<<"$output" >/dev/null
}

@test "lockdep: no deadlock, but the inversion is named, once" {
    run --separate-stderr "$DL" --variant lockdep --json
    assert_lock_order_success
    assert_json '.exact == true'
    assert_json '.metrics.inversions == 1'
    [ "$(grep -c '^lockdep: ' <<<"$stderr")" -eq 1 ]
    [[ "$stderr" == *"lockdep: possible deadlock: T2 takes A while holding B"* ]]
    [[ "$stderr" == *"lock order A -> B inverted"* ]]
    jq -e '.metrics.lockdep_ns > 0 and .metrics.plain_ns > 0' <<<"$output" >/dev/null
}

@test "no variant runs long: sizes are capped per variant" {
    skip_under_tsan
    run "$DL" --variant ordered --hold-us 0 --iters 1000000000 --json
    assert_success
    assert_json '.params.iters == 20000'
    run "$DL" --variant timed --hold-us 0 --iters 1000000000 --json
    assert_success
    assert_json '.params.iters == 20000'
}

# --- running everything ------------------------------------------------------

@test "deadlock with no variant runs all 16, each behaving as declared" {
    run "$DL" --timeout 0.5 --quiet --duration 200
    assert_success
    assert_output --partial "all 16 variants behaved as declared"
}

@test "--json: one line per variant that completes, none for a hang" {
    run --separate-stderr "$DL" --json --timeout 0.5 --duration 100 --iters 100
    assert_success
    [ "${#lines[@]}" -eq 11 ] # 16 variants, 5 of them hang
    # --hold-us, not given, is resolved per variant: 100 for the two-lock pattern
    # and the philosophers, 0 for the others
    for line in "${lines[@]}"; do
        jq -e '(.chapter == "deadlock") and (.params.accounts == 2) and
               (.params.philosophers == 5) and
               (.params.hold_us == (if .variant | test("^(ordered|trylock|trylock-livelock|timed|philosophers-.*)$") then 100 else 0 end)) and
               (.params.duration == 100) and (.exact == true) and (.exit == 0)' \
            <<<"$line" >/dev/null || fail "bad JSON line: $line"
    done
}

# --- bad input ---------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$DL" <<'TABLE'
--timeout -3|--timeout: -3 is out of range
--timeout 0|--timeout: 0 is out of range
--timeout soon|--timeout: 'soon' is not a number of seconds
--accounts 1|--accounts: 1 is out of range (allowed: 2 to 100000)
--accounts many|--accounts: 'many' is not a whole number
--accounts 100001|--accounts: 100001 is out of range
--philosophers 1|--philosophers: 1 is out of range (allowed: 2 to 256)
--philosophers 257|--philosophers: 257 is out of range
--hold-us -1|--hold-us: -1 is out of range (allowed: 0 to 100000)
--duration 0|--duration: 0 is out of range (allowed: 1 to 60000)
--duration|--duration needs a value
--variant nosuch|no variant 'nosuch'
--variant abba --threads 1|abba needs at least 2 threads
--variant transfer --threads 1|transfer needs at least 2 threads
--variant lockdep --threads 1|lockdep needs at least 2 threads
--variant leaked-lock --threads 1|leaked-lock needs at least 2 threads, one to leak the lock and one to wait for it
--variant philosophers-ordered --threads 3|use --philosophers N
TABLE
}

@test "--help lists the chapter's flags" {
    run "$DL" --help
    assert_success
    for f in --accounts --philosophers --hold-us --duration; do
        assert_output --partial -- "$f"
    done
}

# --- Helgrind (valgrind): lock-order reports, run from here, not as a wrapper ----

helgrind() { # variant [flags...]: runs it, leaves valgrind's report in $stderr
    [ "$SANITIZE" = none ] || skip "valgrind cannot run a sanitizer build"
    command -v valgrind >/dev/null || skip "valgrind is not installed"
    local v="$1"; shift
    run --separate-stderr timeout 300 valgrind --tool=helgrind "$DL" --variant "$v" \
        --timeout 60 --quiet "$@"
}

@test "Helgrind: lockdep's non-overlapping AB/BA is a lock order violation" {
    helgrind lockdep --iters 20
    assert_success
    [[ "$stderr" =~ lock\ order\ \"0x[0-9A-Fa-f]+\ before\ 0x[0-9A-Fa-f]+\"\ violated ]] ||
        fail "no lock-order report: $stderr"
}

@test "Helgrind: no lock order report for ordered, global-lock, transfer-ordered, philosophers-ordered" {
    for v in ordered global-lock transfer-ordered philosophers-ordered; do
        helgrind "$v" --iters 30 --accounts 4 --duration 200
        assert_success
        [[ "$stderr" != *"lock order"* ]] || fail "$v: $stderr"
    done
}

@test "Helgrind flags trylock's, timed's and the waiter's inverted acquisitions" {
    for v in trylock timed philosophers-waiter; do
        helgrind "$v" --iters 30 --duration 200
        assert_success
        [[ "$stderr" == *"lock order"*"violated"* ]] || fail "$v: no lock-order report"
    done
}

@test "Helgrind: leaked-lock's T1 exits still holding a lock" {
    helgrind leaked-lock --timeout 1
    [ "$status" -eq 3 ] || fail "exit $status: $stderr"
    [[ "$stderr" =~ Thread\ \#[0-9]+:\ Exiting\ thread\ still\ holds\ 1\ lock ]] ||
        fail "no report of the leaked lock: $stderr"
    [[ "$stderr" == *"lock L held by T1, which has exited"* ]]
}

# --- ThreadSanitizer: reports exactly where lock-order is declared ----------------

@test "TSan reports lockdep's lock-order inversion, and exits 66" {
    only_under_tsan
    run --separate-stderr "$DL" --variant lockdep --iters 50
    [ "$status" -eq 66 ]
    [[ "$stderr" == *"WARNING: ThreadSanitizer: lock-order-inversion (potential deadlock)"* ]]
}

@test "TSan is silent on every correct variant without lock-order (trylock and timed too)" {
    only_under_tsan
    for v in $(variants_tagged deadlock '!lock-order'); do
        [[ " $(variants_tagged deadlock hangs | tr '\n' ' ') " == *" $v "* ]] && continue
        run --separate-stderr "$DL" --variant "$v" --iters 100 --duration 200
        [ "$status" -eq 0 ] || fail "$v: exit $status: $stderr"
        [[ "$stderr" != *ThreadSanitizer* ]] || fail "$v: unexpected report: $stderr"
    done
}

@test "TSan: the waiter's fork ring is reported, and abba's inversion before the hang" {
    only_under_tsan
    run --separate-stderr "$DL" --variant philosophers-waiter --duration 200
    [ "$status" -eq 66 ]
    [[ "$stderr" == *"lock-order-inversion"* ]]
    run --separate-stderr "$DL" --variant abba --timeout 0.5
    [ "$status" -eq 3 ] # _exit(3) keeps its code under TSan
}

@test "TSan: leaked-lock hangs without a report (no race, no inversion)" {
    only_under_tsan
    run --separate-stderr "$DL" --variant leaked-lock --timeout 0.5
    [ "$status" -eq 3 ]
    [[ "$stderr" != *ThreadSanitizer* ]] || fail "unexpected report: $stderr"
    [[ "$stderr" == *"lock L held by T1, which has exited"* ]]
}
