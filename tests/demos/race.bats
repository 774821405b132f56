#!/usr/bin/env bats
# Behaviour of demos/race: every variant, both ways (plain and ThreadSanitizer),
# exit codes, the bad-input table, the watchdog and Ctrl-C.

load common

setup() {
    RACE="$(demo race)"
}

# --- the declaration -------------------------------------------------------

@test "race --list: one line per variant, name TAB tags TAB description" {
    assert_list race 12
    assert_line --partial $'none\tracy\t'
    assert_line --partial $'split-atomic\twrong\t'
    assert_line --partial $'window\tracy\t'
    assert_line --partial $'vector-append\tracy\t'
    assert_line --partial $'sloppy\tcorrect\t'
    assert_line --partial $'check-then-act\tracy\t'
    [ "$(variants_tagged race correct | wc -l)" -eq 7 ]
}

# --- correct variants are exact ----------------------------------------------

@test "every correct variant counts exactly, and says so" {
    skip_under_tsan "the TSan build checks these for reports instead"
    for v in $(variants_tagged race correct); do
        run "$RACE" --variant "$v" --threads 4 --iters 200000 --json
        assert_success
        assert_json '.exact == true'
        assert_json '.exit == 0'
        case "$v" in
        check-then-act-locked)
            assert_json '.metrics.paid_out == 400000'
            assert_json '.metrics.balance == 0'
            assert_json '.metrics.overdrawn == 0' ;;
        *)
            assert_json '.metrics.final == 800000'
            assert_json '.metrics.lost == 0' ;;
        esac
    done
}

@test "a correct variant at 1 thread and at 64 threads is still exact" {
    skip_under_tsan
    for t in 1 64; do
        run "$RACE" --variant atomic --threads "$t" --iters 1000 --json
        assert_success
        assert_json ".metrics.final == $((t * 1000))"
        assert_json '.exact == true'
    done
}

# --- broken variants are broken in the documented way -------------------------

# A race is a matter of chance, so each try is a fresh run; five tries that all
# happen to lose nothing would take a one-core machine (skipped) or a bug.
loses_updates() { # variant [flags...]
    local v="$1"; shift
    for _ in 1 2 3 4 5; do
        run "$RACE" --variant "$v" --json "$@"
        assert_success # showing a race is documented behaviour: exit 0
        json_holds '.exact == false' && return 0
    done
    fail "$v lost nothing in 5 runs"
}

@test "none loses updates, and exits 0 because that is its lesson" {
    skip_under_tsan
    need_cores 2
    loses_updates none --threads 2 --iters 2000000
    assert_json '.metrics.lost > 0'
    assert_json '.metrics.lost + .metrics.final == 4000000'
}

@test "split-atomic loses updates without a data race" {
    skip_under_tsan
    need_cores 2
    loses_updates split-atomic --threads 2 --iters 2000000
}

@test "window at 10 threads x 100 loses at least half of the 1000 increments" {
    skip_under_tsan
    run "$RACE" --variant window --json
    assert_success
    assert_json '.threads == 10'
    assert_json '.metrics.expected == 1000'
    assert_json '.metrics.lost >= 500'
}

@test "window caps --iters so it cannot run for minutes" {
    skip_under_tsan
    run "$RACE" --variant window --threads 2 --iters 1000000000 --window-us 1 --json
    assert_success
    assert_json '.params.iters == 1000'
    assert_json '.params.window_us == 1'
}

@test "vector-append loses items, and every one is accounted for" {
    skip_under_tsan
    need_cores 2
    for _ in 1 2 3 4 5; do
        run "$RACE" --variant vector-append --threads 2 --iters 1000000 --json
        assert_success # losing items is its lesson: exit 0
        json_holds '.exact == false' && break
    done
    assert_json '.exact == false'
    assert_json '.metrics.expected == 2000000'
    assert_json '.metrics.lost > 0'
    # every slot below the length holds a distinct item; every item is kept,
    # overwritten, or stranded past a length that went back; nothing else
    assert_json '.metrics.kept == .metrics.length'
    assert_json '.metrics.kept + .metrics.overwritten + .metrics.stranded == .metrics.expected'
    assert_json '.metrics.corrupt == 0'
    assert_json '.verdict | test("^kept [0-9,]+ of 2,000,000 items, lost [0-9,]+ \\([0-9.]+%\\): [0-9,]+ overwritten, [0-9,]+ past the end$")'
}

@test "vector-append keeps every item with one thread: only the race loses them" {
    skip_under_tsan
    run "$RACE" --variant vector-append --threads 1 --iters 300000 --json
    assert_success
    assert_json '.exact == true and .metrics.kept == 300000 and .metrics.length == 300000'
    assert_json '.params.reserve == 300000' # not given: one slot per item
}

@test "vector-append's growing vector is refused outside an AddressSanitizer build" {
    [[ "$SANITIZE" != *address* ]] || skip "the AddressSanitizer build runs it (below)"
    for r in 0 1999; do
        run --separate-stderr "$RACE" --variant vector-append --reserve "$r" --iters 1000
        [ "$status" -eq 2 ] || fail "--reserve $r: exit $status"
        [ "${#stderr_lines[@]}" -eq 1 ]
        [[ "$stderr" == *"--reserve: below threads x iters (2000)"*"use-after-free"*"AddressSanitizer build"* ]]
        [ -z "$output" ]
    done
    run "$RACE" --variant vector-append --reserve 2001 --iters 1000 --quiet # more is fine
    assert_racy_success
}

@test "AddressSanitizer: vector-append with a growing vector writes to freed memory" {
    [[ "$SANITIZE" == *address* ]] || skip "AddressSanitizer build only"
    for _ in 1 2 3; do # the interleaving is forced: every run, not once by luck
        run --separate-stderr "$RACE" --variant vector-append --reserve 0
        [ "$status" -eq 1 ] || fail "exit $status, expected ASan's 1: $stderr"
        [[ "$stderr" == *"ERROR: AddressSanitizer: heap-use-after-free"* ]] || fail "$stderr"
        [[ "$stderr" =~ WRITE\ of\ size\ 8\ at\ 0x[0-9a-f]+\ thread\ T[0-9]+ ]] || fail "$stderr"
        [[ "$stderr" == *"in push_growing"* ]]
        [[ "$stderr" =~ freed\ by\ thread\ T[0-9]+\ here:.*in\ __interceptor_realloc.*in\ grow ]] ||
            fail "not freed by grow's realloc: $stderr"
    done
    # one thread cannot race: it grows the vector and keeps every item
    run "$RACE" --variant vector-append --reserve 0 --threads 1 --iters 100000 --json
    assert_success
    assert_json '.exact == true'
}

@test "sloppy is exact for any threshold, with one trip to the lock per S increments" {
    skip_under_tsan
    # threads x (iters / S, rounded up): the last trip flushes the remainder
    for s in 1 7 1024 1000000 5000000; do
        run "$RACE" --variant sloppy --threads 3 --iters 1000000 --threshold "$s" --json
        assert_success
        assert_json '.exact == true and .metrics.final == 3000000'
        assert_json ".metrics.flushes == 3 * ((1000000 + $s - 1) / $s | floor)"
        assert_json ".params.threshold == $s"
    done
}

@test "check-then-act overdraws the account; the locked one never does" {
    skip_under_tsan
    need_cores 2
    for _ in 1 2 3 4 5; do
        run "$RACE" --variant check-then-act --threads 2 --iters 1000000 --json
        assert_success
        json_holds '.metrics.overdrawn > 0' && break
    done
    assert_json '.metrics.overdrawn > 0'
    assert_output --partial '"verdict":"overdrawn: paid out'
    run "$RACE" --variant check-then-act-locked --threads 2 --iters 1000000 --quiet
    assert_success
    assert_output --partial "never overdrawn"
}

# --- running everything ------------------------------------------------------

@test "race with no flags runs every variant, each behaving as declared" {
    run "$RACE"
    assert_success
    assert_output --partial "all 12 variants behaved as declared"
    for v in $("$RACE" --list | cut -f1); do
        assert_line --regexp "^$v \["
    done
}

@test "--quiet prints one verdict line per variant, and the summary" {
    skip_under_tsan
    run "$RACE" --quiet --threads 2 --iters 10000
    assert_success
    [ "$(grep -cE '^(exact|lost|overdrawn|paid|kept)' <<<"$(cut -c24- <<<"$output")")" -eq 12 ]
}

# --- JSON Lines --------------------------------------------------------------

@test "--json: one valid object per variant, with the documented fields and types" {
    run --separate-stderr "$RACE" --json --threads 2 --iters 10000 --variant all
    assert_success # the parent has no race of its own, even under TSan
    [ "${#lines[@]}" -eq 12 ]
    for line in "${lines[@]}"; do
        jq -e '
            (.chapter == "race") and (.variant | type == "string") and
            (.tags | type == "array" and length >= 1) and
            (.threads | type == "number") and
            (.params.iters | type == "number") and (.params.seed == 1) and
            (.params.window_us == 100) and (.params.threshold == 1024) and
            (.wall_s > 0) and (.ops > 0) and (.ops_per_s > 0) and (.ns_per_op > 0) and
            (.metrics | type == "object") and (.exact | type == "boolean") and
            (.verdict | type == "string" and length > 0) and (.exit == 0)' <<<"$line" >/dev/null ||
            fail "bad JSON line: $line"
    done
    # lost is a number, and lost + final adds up
    jq -se 'map(select(.metrics.final != null)) | length == 9 and
            all((.metrics.lost | type == "number") and
                .metrics.lost + .metrics.final == .metrics.expected)' <<<"$output" >/dev/null
}

# --- tracing -----------------------------------------------------------------

@test "--trace FILE.csv: a run span per thread and the wait spans of the window" {
    run --separate-stderr "$RACE" --variant window --threads 3 --iters 5 \
        --trace "$BATS_TEST_TMPDIR/w.csv" --quiet
    assert_racy_success
    run cat "$BATS_TEST_TMPDIR/w.csv"
    assert_line --index 0 "thread,kind,start_s,end_s"
    [ "$(grep -c ',run,' <<<"$output")" -eq 3 ]
    [ "$(grep -c ',wait,' <<<"$output")" -eq 15 ]
    # every interval ends after it starts
    awk -F, 'NR > 1 && $4 < $3 { exit 1 }' "$BATS_TEST_TMPDIR/w.csv"
}

@test "--trace FILE.json: Chrome trace events that Perfetto can open" {
    run --separate-stderr "$RACE" --variant window --threads 2 --iters 4 \
        --trace "$BATS_TEST_TMPDIR/w.json" --quiet
    assert_racy_success
    jq -e '.traceEvents | length == 10 and all(.ph == "X" and .dur >= 0 and .pid == 1)' \
        "$BATS_TEST_TMPDIR/w.json"
    jq -e '[.traceEvents[].tid] | unique == [1, 2]' "$BATS_TEST_TMPDIR/w.json"
}

@test "--trace to a file that cannot be written: exit 2, one line" {
    run --separate-stderr "$RACE" --variant none --trace /nonexistent/dir/t.csv
    [ "$status" -eq 2 ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"--trace"*"/nonexistent/dir/t.csv"* ]]
}

# --- bad input ---------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    # arguments | what the line must mention
    bad_input "$RACE" <<'TABLE'
--frobnicate|unknown option '--frobnicate'
-x|unknown option '-x'
--variant nosuch|no variant 'nosuch' (allowed: all, none, split-atomic
--variant|--variant needs a value
--threads|--threads needs a value (1 to 4096)
--threads abc|--threads: 'abc' is not a whole number (allowed: 1 to 4096)
--threads 12x|--threads: '12x' is not a whole number
--threads 0|--threads: 0 is out of range (allowed: 1 to 4096)
--threads -3|--threads: -3 is out of range
--threads 100000|--threads: 100000 is out of range
--iters 0|--iters: 0 is out of range (allowed: 1 to 1000000000)
--iters 1e6|--iters: '1e6' is not a whole number
--iters 99999999999999999999|--iters: '99999999999999999999' is not a whole number
--iters 1000000001|--iters: 1000000001 is out of range
--seed -1|--seed: '-1' is not a whole number
--timeout 0|--timeout: 0 is out of range
--timeout -1|--timeout: -1 is out of range
--timeout nan|--timeout: 'nan' is not a number of seconds
--timeout 3601|--timeout: 3601 is out of range
--window-us 0|--window-us: 0 is out of range (allowed: 1 to 100000)
--window-us|--window-us needs a value (1 to 100000)
--threshold 0|--threshold: 0 is out of range (allowed: 1 to 1000000000)
--threshold x|--threshold: 'x' is not a whole number
--reserve -1|--reserve: -1 is out of range (allowed: 0 to 100000000)
--variant vector-append --threads 200 --iters 1000000|vector-append keeps every item in memory (allowed: 100000000 items at most; got 200000000)
--trace out.txt|--trace: 'out.txt' must end in .csv or .json
--trace t.csv|--trace: needs one --variant
stray|unexpected argument 'stray'
TABLE
}

@test "--help prints usage and exits 0" {
    run "$RACE" --help
    assert_success
    assert_output --partial "Usage: conclab-race [OPTION]..."
    assert_output --partial "--window-us"
}

@test "--version prints the program's name and version" {
    run "$RACE" --version
    assert_success
    assert_output --regexp '^race \(conclab\) [0-9]+\.[0-9]+\.[0-9]+$'
}

# --- never hangs ---------------------------------------------------------------

@test "the watchdog ends a run that makes no progress: exit 3 and a per-thread report" {
    # each window sleeps 0.5 s, far longer than the 0.1 s timeout
    run --separate-stderr "$RACE" --variant window --threads 2 --iters 3 --window-us 100000 \
        --timeout 0.05
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"watchdog: no progress"* ]]
    [[ "$stderr" == *"T1: 0 of 3 operations done, not finished"* ]]
    [[ "$stderr" == *"T2: "* ]]
}

# Start a long run, interrupt it, and return its exit status and how long it took.
interrupt_after() { # seconds args...
    local delay="$1"; shift
    "$RACE" "$@" >"$BATS_TEST_TMPDIR/out" 2>&1 &
    local pid=$!
    sleep "$delay"
    local t0=$(date +%s%N)
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
}

@test "Ctrl-C prints the partial result and exits 130 quickly" {
    interrupt_after 0.5 --variant window --threads 2 --iters 1000 --window-us 100000
    [ "$status" -eq 130 ]
    [ "$elapsed_ms" -lt 3000 ] # the contract says 1 s; the margin is for loaded machines
    grep -q "window: interrupted after .* of 2,000 operations" "$BATS_TEST_TMPDIR/out"
}

@test "Ctrl-C in every phase (setup, run, check, report, teardown): exit 130" {
    sigint_every_phase "$RACE" --variant none --iters 10000
    sigint_every_phase "$RACE" --variant mutex --iters 10000
    sigint_every_phase "$RACE" --variant sharded --iters 10000
    sigint_every_phase "$RACE" --variant check-then-act-locked --iters 10000
    sigint_every_phase "$RACE" --variant window --iters 2 --window-us 100
    sigint_every_phase "$RACE" --variant vector-append --iters 10000
    sigint_every_phase "$RACE" --variant sloppy --iters 10000 --threshold 16
}

@test "Ctrl-C during a run of all variants stops the run with 130" {
    interrupt_after 0.5 --window-us 100000
    [ "$status" -eq 130 ]
    [ "$elapsed_ms" -lt 3000 ]
    grep -q "interrupted after" "$BATS_TEST_TMPDIR/out"
    ! grep -q "behaved as declared" "$BATS_TEST_TMPDIR/out"
}

# --- ThreadSanitizer: reports exactly where racy is declared -------------------

@test "TSan reports a data race in every racy variant, and exits 66" {
    only_under_tsan
    for v in $(variants_tagged race racy); do
        run --separate-stderr "$RACE" --variant "$v" --threads 2 --iters 20000 --window-us 10
        [ "$status" -eq 66 ] || fail "$v: exit $status, expected 66"
        [[ "$stderr" == *"WARNING: ThreadSanitizer: data race"* ]] || fail "$v: no report"
    done
}

@test "TSan: vector-append pushes at most 50,000 items per thread, and is reported" {
    only_under_tsan
    # TSan compares each racy slot with every one before it: minutes at the default size
    run --separate-stderr "$RACE" --variant vector-append --json
    [ "$status" -eq 66 ] || fail "exit $status"
    assert_json '.params.iters == 50000 and .metrics.expected == 100000'
    [[ "$stderr" == *"WARNING: ThreadSanitizer: data race"* ]]
}

@test "TSan is silent on every variant not tagged racy (split-atomic and false-sharing too)" {
    only_under_tsan
    for v in $(variants_tagged race '!racy'); do
        run --separate-stderr "$RACE" --variant "$v" --threads 4 --iters 20000
        [ "$status" -eq 0 ] || fail "$v: exit $status: $stderr"
        [[ "$stderr" != *ThreadSanitizer* ]] || fail "$v: unexpected report: $stderr"
    done
}
