#!/usr/bin/env bats
# Behaviour of demos/prodcons: every variant under every shutdown mode loses
# nothing, the lost wakeup ends in the watchdog's report, spsc-ring refuses more
# than one producer, backpressure keeps memory flat, the bad-input table; plain
# and under ThreadSanitizer (which must stay silent: the stall is a logic bug).

load common

setup() {
    PC="$(demo prodcons)"
}

# Small sizes that still exercise wrap-around, blocking and every shutdown path.
QUEUE_SIZE=(--items 20000)
BP_SIZE=(--items 1500 --consume-us 20 --produce-us 5)

sizes_for() { # variant: the flags that keep it short
    case "$1" in
    unbounded | bounded | watermarks) echo "${BP_SIZE[@]}" ;;
    priority) echo --duration 150 ;;
    *) echo "${QUEUE_SIZE[@]}" ;;
    esac
}

# The run in $output / $status is exact and clean: exit 0, every item exactly once,
# and (under TSan) no report at all.
assert_exact_run() { # what
    [ "$status" -eq 0 ] || fail "$1: exit $status: $stderr"
    assert_json '.exact == true' || fail "$1: not exact: $output"
    assert_json '.metrics.lost == 0' || fail "$1: lost items: $output"
    assert_json '.metrics.duplicated == 0' || fail "$1: duplicates: $output"
    if [ "$(json_field .variant "$output")" = priority ]; then # stops at --duration
        assert_json '.ops > 0 and .ops <= .params.items'
        assert_json '.metrics.checked == .ops and .metrics.out_of_order == 0' ||
            fail "$1: out of priority order: $output"
    else
        assert_json '.ops == .params.items'
    fi
    [[ "$stderr" != *ThreadSanitizer* ]] || fail "$1: TSan report: $stderr"
    [[ "$stderr" != *AddressSanitizer* && "$stderr" != *"runtime error"* ]] ||
        fail "$1: sanitizer report: $stderr"
}

# --- the declaration -------------------------------------------------------

@test "prodcons --list: ten variants, one-cond-signal hangs, the rest are correct" {
    assert_list prodcons 10
    assert_line --partial $'one-cond-signal\thangs\t'
    [ "$(variants_tagged prodcons correct | wc -l)" -eq 9 ]
    [ "$(variants_tagged prodcons hangs)" = one-cond-signal ]
    for v in condvar semaphore polling spsc-ring pipe unbounded bounded watermarks priority; do
        assert_line --regexp "^$v"$'\t'"correct"$'\t'
    done
}

# --- nothing lost, whatever the design and the shutdown ------------------------

@test "every correct variant under every shutdown mode: each item consumed exactly once" {
    for v in $(variants_tagged prodcons correct); do
        read -ra size <<<"$(sizes_for "$v")"
        for mode in close pill-per-consumer pass-along; do
            run --separate-stderr "$PC" --variant "$v" --shutdown "$mode" "${size[@]}" --json
            assert_exact_run "$v --shutdown $mode"
            assert_json ".params.shutdown == \"$mode\""
        done
    done
}

@test "many producers and consumers around one slot: still exactly once, every shutdown" {
    for v in condvar semaphore polling pipe priority; do
        for mode in close pill-per-consumer pass-along; do
            run --separate-stderr "$PC" --variant "$v" --producers 3 --consumers 5 --capacity 1 \
                --items 3000 --duration 60000 --shutdown "$mode" --json
            assert_exact_run "$v 3P5C capacity 1 --shutdown $mode"
            assert_json '.threads == 8'
        done
    done
}

@test "more producers than consumers, and one of each, for the lib queue" {
    for pc in "4 1" "1 4" "1 1"; do
        read -r p c <<<"$pc"
        run --separate-stderr "$PC" --variant condvar --producers "$p" --consumers "$c" \
            --capacity 3 --items 7001 --shutdown pill-per-consumer --json
        assert_exact_run "condvar ${p}P${c}C"
    done
}

@test "prodcons with no flags runs every variant, each behaving as declared" {
    run "$PC"
    assert_success
    assert_output --partial "all 10 variants behaved as declared"
    for v in $(variants_tagged prodcons correct); do
        assert_line --regexp "^$v \["
    done
    assert_output --partial "watchdog: no progress" # one-cond-signal's stall, caught
}

# --- the lost wakeup ------------------------------------------------------------

@test "one-cond-signal stalls with default flags: exit 3 and a report of the waiters" {
    for _ in 1 2 3; do # reliably, not once by luck
        run --separate-stderr "$PC" --variant one-cond-signal
        [ "$status" -eq 3 ] || fail "exit $status, expected 3: $stderr"
        [[ "$stderr" == *"watchdog: no progress"* ]]
        [[ "$stderr" == *"waits on the one condition (found the buffer "* ]]
        [[ "$stderr" =~ buffer:\ [01]\ of\ 1\ slots\ used\ \((FULL|EMPTY)\) ]] ||
            fail "no buffer state: $stderr"
        [[ "$stderr" == *"lost wakeup: the buffer is "* ]]
        [[ "$stderr" == *"no thread is awake to signal"* ]]
        # every one of the 8 threads is accounted for
        [ "$(grep -cE '^  T[0-9]+: ' <<<"$stderr")" -eq 8 ]
        [[ "$stderr" != *ThreadSanitizer* ]] || fail "TSan report: $stderr"
    done
}

@test "the same design with 1 producer and 1 consumer cannot lose a wakeup, and finishes" {
    run --separate-stderr "$PC" --variant one-cond-signal --producers 1 --consumers 1 \
        --items 20000 --json
    [ "$status" -eq 0 ]
    assert_json '.exact == true'
}

# --- priority: lowest number first ------------------------------------------------

@test "priority: once the producers stop, every item made is consumed, in priority order" {
    # the producer makes items 5 times as fast as the consumer takes them, for
    # --duration; each take is checked under the heap's lock against the counts of
    # queued items per priority (nothing more urgent queued, nothing overtaken)
    for _ in 1 2 3; do
        run --separate-stderr "$PC" --variant priority --duration 200 --json
        assert_exact_run priority
        assert_json '.params.duration == 200 and .params.produce_us == 2 and .params.consume_us == 10'
        assert_json '.metrics.peak_queued >= 1 and .metrics.peak_queued <= .params.capacity'
        assert_json '[.metrics.high_p99_ms, .metrics.low_p50_ms, .metrics.low_p99_ms] | all(. >= 0)'
        assert_json '.verdict | test("^all [0-9,]+ items consumed exactly once, .*; in priority order: priority 3 waited [0-9.]+ ms at p99, priority 0 [0-9.]+ ms$")'
    done
}

@test "priority: many producers and consumers, every shutdown, and --items before --duration" {
    for mode in close pill-per-consumer pass-along; do
        run --separate-stderr "$PC" --variant priority --producers 3 --consumers 2 --capacity 50 \
            --duration 100 --produce-us 0 --consume-us 0 --shutdown "$mode" --json
        assert_exact_run "priority 3P2C --shutdown $mode"
    done
    # the items run out first: every one of them is made and consumed
    run --separate-stderr "$PC" --variant priority --items 5000 --duration 60000 --json
    assert_exact_run "priority --items 5000"
    assert_json '.ops == 5000 and .metrics.checked == 5000'
}

# --- spsc-ring: one producer, one consumer ------------------------------------

@test "spsc-ring refuses 2 producers or 2 consumers: exit 2, one line" {
    for flags in "--producers 2" "--consumers 2" "--producers 3 --consumers 3"; do
        read -ra f <<<"$flags"
        run --separate-stderr "$PC" --variant spsc-ring "${f[@]}"
        [ "$status" -eq 2 ] || fail "$flags: exit $status"
        [ "${#stderr_lines[@]}" -eq 1 ]
        [[ "$stderr" == *"spsc-ring takes one producer and one consumer"* ]]
        [ -z "$output" ]
    done
}

# --- backpressure ---------------------------------------------------------------

@test "bounded keeps peak RSS under a tenth of unbounded's at the default flags" {
    [ "$SANITIZE" = none ] || skip "sanitizers change the memory figures"
    run --separate-stderr "$PC" --variant unbounded --json
    assert_success
    un=$(json_field .metrics.peak_rss_kib "$output")
    assert_json '.metrics.rss_growth_kib > 20000' || fail "unbounded grew too little"
    run --separate-stderr "$PC" --variant bounded --json
    assert_success
    assert_json ".metrics.peak_rss_kib * 10 < $un" || fail "unbounded: $un KiB"
}

@test "bounded: the producer blocks on the full queue, and the fill never passes capacity" {
    run --separate-stderr "$PC" --variant bounded --capacity 16 "${BP_SIZE[@]}" \
        --trace "$BATS_TEST_TMPDIR/b.csv" --json
    assert_exact_run bounded
    assert_json '.metrics.blocked_s > 0'
    run cat "$BATS_TEST_TMPDIR/b.samples.tsv"
    assert_line --index 0 $'t_s\trss_mib\tfill\tfill_pct'
    [ "${#lines[@]}" -gt 2 ]
    awk -F'\t' 'NR > 1 && $3 > 16 { exit 1 }' "$BATS_TEST_TMPDIR/b.samples.tsv"
}

@test "watermarks: pauses and resumes in pairs, fill stays within capacity" {
    run --separate-stderr "$PC" --variant watermarks --capacity 50 "${BP_SIZE[@]}" \
        --trace "$BATS_TEST_TMPDIR/w.csv" --json
    assert_exact_run watermarks
    assert_json '.metrics.pauses > 0'
    assert_json '.metrics.resumes == .metrics.pauses'
    awk -F'\t' 'NR > 1 && $3 > 50 { exit 1 }' "$BATS_TEST_TMPDIR/w.samples.tsv"
}

@test "unbounded: the list grows past any capacity while the consumer lags" {
    run --separate-stderr "$PC" --variant unbounded "${BP_SIZE[@]}" --capacity 8 \
        --trace "$BATS_TEST_TMPDIR/u.csv" --json
    assert_exact_run unbounded
    awk -F'\t' 'NR > 1 && $3 > m { m = $3 } END { exit !(m > 100) }' "$BATS_TEST_TMPDIR/u.samples.tsv"
}

# --- reports ---------------------------------------------------------------------

@test "--json: items_per_s is ops_per_s, and the chapter's metrics are there" {
    run --separate-stderr "$PC" --variant condvar --items 50000 --json
    assert_exact_run condvar
    jq -e '(.metrics.items_per_s > 0) and
           ((.metrics.items_per_s - .ops_per_s) | fabs) <= 1e-6 * .ops_per_s and
           (.metrics.p50_us >= 0) and (.metrics.p99_us >= .metrics.p50_us) and
           (.metrics.cpu_s >= 0) and (.metrics.cpu_per_wall >= 0) and (.metrics.peak_rss_kib > 0) and
           (.params.producers == 2) and (.params.consumers == 2) and (.params.capacity == 64) and
           (.params.items == 50000) and (.params.consume_us == 0) and
           (.params.shutdown == "close") and (.threads == 4)' <<<"$output" >/dev/null ||
        fail "bad JSON: $output"
}

@test "pipe: the kernel rounds a small capacity up to one page, and says so" {
    run --separate-stderr "$PC" --variant pipe --capacity 1 --items 5000 --json
    assert_exact_run pipe
    assert_json '.metrics.pipe_items >= 512'
}

@test "polling keeps asking while it waits: many failed polls per item, CPU reported" {
    # one slow consumer and one slot: the producer must wait 100 us for every item, and
    # polling waits by asking again (the CPU against wall figure is a benchmark's, not a test's)
    run --separate-stderr "$PC" --variant polling --producers 1 --consumers 1 --capacity 1 \
        --items 2000 --consume-us 100 --json
    assert_exact_run polling
    assert_json '.metrics.failed_polls > 2000'
    jq -e '.metrics.cpu_s > 0 and .metrics.cpu_per_wall > 0' <<<"$output" >/dev/null
    run --separate-stderr "$PC" --variant condvar --producers 1 --consumers 1 --capacity 1 \
        --items 2000 --consume-us 100 --json
    assert_exact_run condvar
    assert_json '.metrics.failed_polls == null' # only polling polls
}

@test "--help lists the chapter's flags and the shutdown choices" {
    run "$PC" --help
    assert_success
    for f in --producers --consumers --capacity --items --consume-us --produce-us --duration; do
        assert_output --partial -- "$f"
    done
    assert_output --partial "close, pill-per-consumer, pass-along; default: close"
}

@test "Ctrl-C stops a long run with 130 and the partial count, blocked threads or not" {
    for v in bounded condvar; do
        "$PC" --variant "$v" --items 5000000 --consume-us 50 >"$BATS_TEST_TMPDIR/out" 2>&1 &
        pid=$!
        sleep 0.5
        kill -INT "$pid"
        status=0
        wait "$pid" || status=$?
        [ "$status" -eq 130 ] || fail "$v: exit $status"
        grep -q "$v: interrupted after" "$BATS_TEST_TMPDIR/out"
    done
}

@test "Ctrl-C in every phase (setup, run, check, report, teardown): exit 130" {
    sigint_every_phase "$PC" --variant condvar --items 1000
    sigint_every_phase "$PC" --variant semaphore --items 1000
    sigint_every_phase "$PC" --variant polling --items 1000
    sigint_every_phase "$PC" --variant spsc-ring --items 1000
    sigint_every_phase "$PC" --variant pipe --items 1000
    sigint_every_phase "$PC" --variant unbounded --items 100
    sigint_every_phase "$PC" --variant bounded --items 100
    sigint_every_phase "$PC" --variant watermarks --items 100
    sigint_every_phase "$PC" --variant priority --duration 20
}

# --- bad input ---------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$PC" <<'TABLE'
--capacity 0|--capacity: 0 is out of range (allowed: 1 to 65536)
--capacity 70000|--capacity: 70000 is out of range
--capacity|--capacity needs a value (1 to 65536)
--items -5|--items: -5 is out of range (allowed: 1 to 100000000)
--items 0|--items: 0 is out of range
--items 1e6|--items: '1e6' is not a whole number
--items 100000001|--items: 100000001 is out of range
--producers 0|--producers: 0 is out of range (allowed: 1 to 64)
--consumers 65|--consumers: 65 is out of range (allowed: 1 to 64)
--consumers two|--consumers: 'two' is not a whole number
--consume-us -1|--consume-us: -1 is out of range (allowed: 0 to 100000)
--produce-us 100001|--produce-us: 100001 is out of range
--shutdown nope|--shutdown: no such choice 'nope' (allowed: close, pill-per-consumer, pass-along)
--duration 0|--duration: 0 is out of range (allowed: 1 to 60000)
--duration 60001|--duration: 60001 is out of range
--shutdown|--shutdown needs a value (close, pill-per-consumer, pass-along)
--variant condvar --threads 4|--threads: not used here (allowed: --producers and --consumers)
--variant condvar --iters 10|--iters: not used here (allowed: --items)
--variant spsc-ring --producers 2|spsc-ring takes one producer and one consumer
--variant nosuch|no variant 'nosuch' (allowed: all, condvar, one-cond-signal
--frobnicate|unknown option '--frobnicate'
stray|unexpected argument 'stray'
TABLE
}
