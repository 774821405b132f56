#!/usr/bin/env bats
# Behaviour of demos/sync: the semaphore pool and its stray release, the lost
# wake-up and the join that keeps state, the event hand-off with and without an
# acknowledgement, the semaphore waited on under a mutex, the reader-writer locks
# (mixes, and the writer starved by hand-over-hand readers), double-checked
# initialisation; every failure forced, so asserted in every run. Bad input,
# Ctrl-C in every phase, Helgrind, and ThreadSanitizer both ways.

# shellcheck disable=SC2154 # stderr: set by run
load common

setup() {
    S="$(demo sync)"
}


# --- the declaration -------------------------------------------------------

@test "sync --list: 22 variants, with their tags" {
    assert_list sync 22
    for v in semaphore-pool bounded join-state event-handshake semaphore-mutex-fixed \
        rwlock-reader-pref rwlock-writer-pref rwlock-fair rwlock-mutex dcl-atomic once \
        starting-gun state-machine primitive-costs; do
        assert_line --regexp "^$v"$'\tcorrect\t'
    done
    for v in over-release event-no-ack cond-timed-signal; do
        assert_line --regexp "^$v"$'\twrong\t'
    done
    [ "$(variants_tagged sync hangs | tr '\n' ' ')" = \
        "lost-wakeup semaphore-mutex-deadlock rwlock-starve rwlock-recursive-read " ]
    [ "$(variants_tagged sync racy)" = dcl-broken ]
}

@test "sync with no flags runs every variant as declared" {
    run_in_session "$S" --quiet
    assert_success # under TSan too: dcl-broken's 66 is what it declares
    assert_output --partial "all 22 variants behaved as declared"
}

# --- semaphores ---------------------------------------------------------------

@test "semaphore-pool: 10 workers, never more than 3 holders" {
    run --separate-stderr "$S" --variant semaphore-pool --json
    assert_success
    assert_json '.exact == true and .metrics.permits == 3'
    assert_json '.metrics.high_water >= 1 and .metrics.high_water <= 3'
    assert_json '.threads == 10 and .ops == 100'
    assert_clean semaphore-pool
}

@test "over-release: the stray post lets a fourth holder in, every run" {
    for _ in 1 2 3; do
        run --separate-stderr "$S" --variant over-release --json
        assert_success
        assert_json '.exact == false and .metrics.high_water == 4 and .metrics.refused == 0'
        assert_json '.verdict == "4 holders at once with 3 permits: the stray release let one more in"'
        assert_clean over-release
    done
}

@test "bounded: the stray release is refused, and 3 holders at most" {
    for _ in 1 2 3; do
        run --separate-stderr "$S" --variant bounded --json
        assert_success
        assert_json '.exact == true and .metrics.refused == 1 and .metrics.high_water <= 3'
        assert_json '.verdict | startswith("the stray release was refused (EOVERFLOW)")'
        assert_clean bounded
    done
}

# --- conditions and events ----------------------------------------------------------

@test "lost-wakeup: the watchdog names the sleeper, every run" {
    for _ in 1 2; do
        run --separate-stderr "$S" --variant lost-wakeup --timeout 0.5
        [ "$status" -eq 3 ] || fail "exit $status: $stderr"
        [[ "$stderr" == *"watchdog: no progress for"* ]]
        [[ "$stderr" == *"T2: 0 of 1 operations done, sleeps in pthread_cond_wait for the child's signal"* ]] ||
            fail "$stderr"
        [[ "$stderr" == *"T1: 1 of 1 operations done, finished"* ]]
        [[ "$stderr" =~ lost\ wake-up:\ T1\ signalled\ [0-9.]+\ us\ before\ T2\ began\ to\ wait ]]
        assert_clean lost-wakeup
    done
}

@test "join-state: the same order completes, the state read instead of waiting" {
    run --separate-stderr "$S" --variant join-state --json
    assert_success
    assert_json '.exact == true and .ops == 2'
    assert_clean join-state
}

@test "event-handshake: every item consumed, none skipped, at 20 and 500 items" {
    for n in 20 500; do
        run --separate-stderr "$S" --variant event-handshake --iters "$n" --json
        assert_success
        assert_json ".exact == true and .metrics.consumed == $n and .metrics.skipped == 0"
        assert_clean event-handshake
    done
}

@test "event-no-ack: sets are lost and items skipped, every run" {
    for _ in 1 2 3; do
        run --separate-stderr "$S" --variant event-no-ack --json
        assert_success
        assert_json '.exact == false and .metrics.skipped > 0'
        assert_json '.metrics.consumed + .metrics.skipped == 20'
        assert_clean event-no-ack
    done
}

@test "semaphore-mutex-deadlock: T1 holds M and waits for an item only T2 can add" {
    for _ in 1 2; do
        run --separate-stderr "$S" --variant semaphore-mutex-deadlock --timeout 0.5
        [ "$status" -eq 3 ] || fail "exit $status: $stderr"
        [[ "$stderr" == *"T1: 0 of 10 operations done, holds M, waits for an item (sem items)"* ]] ||
            fail "$stderr"
        [[ "$stderr" == *"T2: 0 of 10 operations done, waits for the buffer lock M"* ]]
        [[ "$stderr" == *"lock M: held by T1, wanted by T2"* ]]
        [[ "$stderr" == *"sem items: 0; T1 holds M while it waits for an item"* ]]
    done
}

@test "semaphore-mutex-fixed: the semaphore before the mutex, every item through" {
    run --separate-stderr "$S" --variant semaphore-mutex-fixed --iters 1000 --json
    assert_success
    assert_json '.exact == true and .ops == 2000'
    assert_clean semaphore-mutex-fixed
}

@test "starting-gun: every worker wakes in every round, by the event and the barrier" {
    run --separate-stderr "$S" --variant starting-gun --threads 9 --iters 10 --json
    assert_success
    assert_json '.exact == true and .metrics.rounds == 10 and .ops == 90'
    assert_json '.metrics.skew_event_us >= 0 and .metrics.skew_barrier_us >= 0'
    assert_json '.metrics.first_wake_event_us > 0 and .metrics.first_wake_barrier_us > 0'
    assert_clean starting-gun
}

@test "state-machine: one broadcast condition wakes each waiter at every change up to its state" {
    for t in 11 4; do
        run --separate-stderr "$S" --variant state-machine --threads "$t" --json
        assert_success
        assert_json '.exact == true and .metrics.wakeups_per_state == .metrics.waiters'
        # states 1..5 in turn: waiter k is woken k times by the one condition
        assert_json ".metrics.waiters == $((t - 1))"
        assert_clean state-machine
    done
    run --separate-stderr "$S" --variant state-machine --json
    assert_json '.metrics.wakeups_broadcast == 30 and .metrics.wakeups_per_waiter_broadcast == 3'
}

@test "cond-timed-signal: a timeout is taken for the end, and puts drop items" {
    for _ in 1 2; do
        run --separate-stderr "$S" --variant cond-timed-signal --json
        assert_success
        assert_json '.exact == false and .metrics.dropped > 0 and .metrics.consumed < 10'
        assert_json '.metrics.consumed + .metrics.dropped + .metrics.left == 10'
        assert_clean cond-timed-signal
    done
}

# --- reader-writer locks ------------------------------------------------------------

@test "rwlock mixes: no torn read, every write counted, at 50, 90 and 99% reads" {
    for v in rwlock-reader-pref rwlock-writer-pref rwlock-fair rwlock-mutex; do
        for r in 50 90 99; do
            run --separate-stderr "$S" --variant "$v" --reads "$r" --duration 100 --json
            assert_success
            assert_json '.exact == true and .metrics.torn == 0 and .metrics.reads > 0'
            assert_json '.metrics.write_wait_p99_us >= .metrics.write_wait_p50_us'
            assert_clean "$v"
        done
    done
    run --separate-stderr "$S" --variant rwlock-mutex --duration 100 --json
    assert_json '.metrics.max_readers_inside == 1' # a mutex lets one reader in
    run --separate-stderr "$S" --variant rwlock-fair --reads 0 --duration 50 --json
    assert_json '.metrics.reads == 0 and .metrics.writes > 0'
}

@test "rwlock-starve: writers: no progress for 2.0 s while readers read" {
    run --separate-stderr "$S" --variant rwlock-starve
    [ "$status" -eq 3 ] || fail "exit $status: $stderr"
    [[ "$stderr" =~ watchdog:\ writers:\ no\ progress\ for\ 2\.[0-9]+\ s\;\ readers\ completed\ [0-9,]+\ reads ]] ||
        fail "$stderr"
    [[ "$stderr" == *"T1 writers: 0 of 5 operations done, waits for the write lock"* ]]
    [[ "$stderr" == *"reader-pref lock: the readers hold it hand over hand"* ]]
}

@test "rwlock-starve: glibc ignores PREFER_WRITER_NP, the writer starves there too" {
    run --separate-stderr "$S" --variant rwlock-starve --lock writer-np --timeout 0.5
    [ "$status" -eq 3 ] || fail "exit $status: $stderr"
    [[ "$stderr" == *"watchdog: writers: no progress"* ]]
}

@test "rwlock-starve: the writer-preferring and fair locks complete the same schedule" {
    for l in writer-pref fair; do
        for t in 3 5; do
            run --separate-stderr "$S" --variant rwlock-starve --lock "$l" --threads "$t" --json
            assert_success
            assert_json '.exact == true and .metrics.writes == 5 and .metrics.reads > 0'
            assert_json ".params.lock == \"$l\""
            assert_clean "rwlock-starve --lock $l"
        done
    done
}

@test "primitive-costs: a cost for every primitive, at 1 and 2 threads" {
    for t in 1 2; do
        run --separate-stderr "$S" --variant primitive-costs --threads "$t" --iters 20000 --json
        assert_success
        assert_json ".exact == true and .ops == $((t * 20000 * 8))"
        for m in mutex sem bsem event rw_read rw_write fair_read fair_write; do
            assert_json ".metrics.${m}_ns > 0"
        done
        assert_clean primitive-costs
    done
}

@test "rwlock-recursive-read: a second read behind a waiting writer deadlocks, every run" {
    for l in writer-pref fair; do
        for _ in 1 2; do
            run --separate-stderr "$S" --variant rwlock-recursive-read --lock "$l" --timeout 0.5
            [ "$status" -eq 3 ] || fail "--lock $l: exit $status: $stderr"
            [[ "$stderr" == *"T1: 0 of 1 operations done, holds a read lock, waits for a second one behind the writer"* ]] ||
                fail "$stderr"
            [[ "$stderr" == *"T2: 0 of 1 operations done, waits for the write lock (T1 holds a read lock)"* ]]
            [[ "$stderr" == *"$l lock: T1 holds a read lock and asks for it again"* ]]
        done
    done
    run --separate-stderr "$S" --variant rwlock-recursive-read --timeout 0.5 # writer-pref by default
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"writer-pref lock: T1 holds a read lock"* ]]
}

@test "rwlock-recursive-read: glibc's PREFER_WRITER_NP lets the new read pass the waiting writer" {
    for l in writer-np reader-pref; do
        run --separate-stderr "$S" --variant rwlock-recursive-read --lock "$l" --json
        assert_success
        assert_json ".exact == true and .params.lock == \"$l\""
        assert_json '.verdict | contains("second read lock got in while the writer waited")'
        assert_clean "rwlock-recursive-read --lock $l"
    done
}

# --- initialisation once ------------------------------------------------------------

@test "dcl-broken, dcl-atomic, once: one initialisation, every call sees it" {
    for v in dcl-broken dcl-atomic once; do
        run --separate-stderr "$S" --variant "$v" --threads 4 --json
        if [ "$v" = dcl-broken ]; then assert_racy_success; else assert_success; fi
        assert_json '.metrics.inits == 1 and .metrics.torn == 0 and .exact == true'
        assert_json '.metrics.call_ns > 0 and .metrics.floor_ns > 0 and .metrics.mutex_call_ns > 0'
    done
}

# --- bad input, Ctrl-C -----------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$S" <<'TABLE'
--timeout 0|--timeout: 0 is out of range
--hold-us -1|--hold-us: -1 is out of range (allowed: 0 to 100000)
--reads 101|--reads: 101 is out of range (allowed: 0 to 100)
--duration 0|--duration: 0 is out of range (allowed: 1 to 60000)
--work-ns many|--work-ns: 'many' is not a whole number
--lock nosuch|--lock
--variant nosuch|no variant 'nosuch'
--variant rwlock-fair --lock fair|--lock: only rwlock-starve and rwlock-recursive-read take a lock kind, not rwlock-fair
--variant rwlock-recursive-read --threads 3|rwlock-recursive-read runs exactly 2 threads (a reader and a writer)
--variant event-handshake --threads 3|event-handshake runs exactly 2 threads (a producer and a consumer)
--variant lost-wakeup --threads 1|lost-wakeup runs exactly 2 threads (a child and a parent)
--variant rwlock-starve --threads 2|rwlock-starve needs at least 3 threads, a writer and two readers
--variant cond-timed-signal --threads 3|cond-timed-signal runs exactly 2 threads (a producer and a consumer)
--variant starting-gun --threads 1|starting-gun needs at least 2 threads
--variant primitive-costs --threads 65|primitive-costs runs 1 to 64 threads
TABLE
}

@test "Ctrl-C in every phase: exit 130 with the partial result" {
    sigint_every_phase "$S" --variant semaphore-pool --iters 2
    sigint_every_phase "$S" --variant event-handshake
    sigint_every_phase "$S" --variant rwlock-fair --duration 50
    sigint_every_phase "$S" --variant once --iters 1000
    sigint_every_phase "$S" --variant starting-gun --iters 2
    sigint_every_phase "$S" --variant state-machine
    sigint_every_phase "$S" --variant primitive-costs --iters 1000
    sigint_every_phase "$S" --variant rwlock-starve --lock fair --iters 1
}

@test "Ctrl-C during a hang: exit 130 within a second" {
    for v in lost-wakeup rwlock-starve; do
        "$S" --variant "$v" --timeout 30 >"$BATS_TEST_TMPDIR/out" 2>&1 &
        local pid=$!
        for _ in $(seq 100); do
            grep -q '^sync:' "$BATS_TEST_TMPDIR/out" && break
            sleep 0.1
        done
        sleep 0.3
        local t0
        t0=$(date +%s%N)
        kill -INT "$pid"
        status=0
        wait "$pid" || status=$?
        [ "$status" -eq 130 ] || fail "$v: exit $status"
        [ $((($(date +%s%N) - t0) / 1000000)) -lt 1000 ] || fail "$v: slow to stop"
        grep -q "$v: interrupted after" "$BATS_TEST_TMPDIR/out" || fail "$(cat "$BATS_TEST_TMPDIR/out")"
    done
}

# --- Helgrind and ThreadSanitizer ---------------------------------------------------

helgrind() { # variant [flags...]: runs it, leaves valgrind's report in $stderr
    [ "$SANITIZE" = none ] || skip "valgrind cannot run a sanitizer build"
    command -v valgrind >/dev/null || skip "valgrind is not installed"
    local v="$1"
    shift
    run --separate-stderr timeout 300 valgrind --tool=helgrind "$S" --variant "$v" \
        --timeout 60 --quiet "$@"
}

# The function of each report's first frame. Helgrind does not model C11 atomics,
# so lib's progress counters and dcl's relaxed start flag show up in every run:
# what matters is whether the lesson's own code is named.
raced_in() {
    awk '/Possible data race/ { want = 1; next } want && / at 0x/ { print $4; want = 0 }' <<<"$stderr"
}

@test "Helgrind: dcl-broken is a possible data race; once and the rwlocks are clean" {
    helgrind dcl-broken --iters 1000
    assert_success
    raced_in | grep -qx get_broken || fail "no race in get_broken: $stderr"
    for v in once rwlock-reader-pref rwlock-writer-pref rwlock-fair; do
        helgrind "$v" --iters 1000 --duration 200
        assert_success
        [[ "$stderr" == *"ERROR SUMMARY"* ]] || fail "$v: no summary: $stderr"
        ! raced_in | grep -qE '^(get_once|init_once|make|read_once|rw_mix_worker|cl_rwlock_.*)$' ||
            fail "$v: $(raced_in)"
    done
}

@test "TSan reports dcl-broken's unlocked read, and exits 66" {
    only_under_tsan
    run --separate-stderr "$S" --variant dcl-broken --iters 1000
    [ "$status" -eq 66 ] || fail "exit $status"
    [[ "$stderr" == *"WARNING: ThreadSanitizer: data race"* ]]
    [[ "$stderr" == *get_broken* ]]
}

@test "TSan is silent on every variant not tagged racy" {
    only_under_tsan
    for v in $(variants_tagged sync '!racy'); do
        run --separate-stderr "$S" --variant "$v" --iters 20 --duration 100 --timeout 0.5
        [[ "$stderr" != *ThreadSanitizer* ]] || fail "$v: unexpected report: $stderr"
    done
}
