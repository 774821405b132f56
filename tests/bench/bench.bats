#!/usr/bin/env bats
# The harness itself: bench/run writes its report, tables and charts; keeps going
# past a failure; compares two runs; leaves nothing half-written when interrupted.

bats_require_minimum_version 1.7.0 # bats_load_library
bats_load_library bats-support
bats_load_library bats-assert

: "${CONCLAB_BUILD:?run through meson test}"
RUN="$CONCLAB_SOURCE/bench/run"
FIXTURES="$CONCLAB_SOURCE/tests/bench/fixtures"

sanitizer_build() { [ "${CONCLAB_SANITIZE:-none}" != none ]; }

setup_file() {
    sanitizer_build && return 0
    # One real quick run of the race chapter, shared by the tests that read it.
    "$RUN" --quick --only race --build "$CONCLAB_BUILD" --out "$BATS_FILE_TMPDIR/quick" \
        >"$BATS_FILE_TMPDIR/quick.log" 2>&1 || echo $? >"$BATS_FILE_TMPDIR/quick.status"
}

setup() {
    sanitizer_build && [[ $BATS_TEST_DESCRIPTION != *"sanitizer build"* ]] &&
        skip "bench/run refuses sanitizer builds (tested below)"
    Q="$BATS_FILE_TMPDIR/quick"
    # the tests' own harness runs need no floors: the quick run above has them
    export CONCLAB_CALIBRATE_ARGS="--repeats 2 --budget 0.5"
}

@test "a sanitizer build is refused: exit 2 and one line saying why" {
    sanitizer_build || skip "only in a sanitizer build"
    run --separate-stderr "$RUN" --quick --build "$CONCLAB_BUILD" --out "$BATS_TEST_TMPDIR/r"
    [ "$status" -eq 2 ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == *"refusing to benchmark"*"sanitizer build"* ]]
}

@test "the quick race run writes REPORT.md, CSV, JSON and SVG" {
    [ ! -e "$BATS_FILE_TMPDIR/quick.status" ] || fail "bench/run exited $(cat "$BATS_FILE_TMPDIR/quick.status")"
    for f in REPORT.md provenance.json provenance.md calibration.jsonl race.metrics.jsonl \
        race.summary.json race-variants.hyperfine.json race-variants.hyperfine.csv \
        race-variants.tsv race-variants.rows.json race-variants.svg race-variants.png \
        race-threads.svg race-timeline.svg race-window.csv; do
        [ -s "$Q/$f" ] || fail "missing or empty: $f"
    done
    grep -q '^| variant | tags | median ms' "$Q/REPORT.md"
    grep -q '^## Calibration' "$Q/REPORT.md"
    # the CPU taken by a hypervisor and by other programs, for the run and for each
    # of the 4 experiments in a quick run
    grep -Eq '^Of all the CPU time during the run, the hypervisor took [0-9]+\.[0-9]% \(steal\) and other programs used [0-9]+\.[0-9]%\.$' "$Q/REPORT.md"
    [ "$(grep -Ec '^_While this experiment ran: CPU steal [0-9]+\.[0-9]%, other programs [0-9]+\.[0-9]% of the CPU\._$' "$Q/REPORT.md")" -eq 4 ]
    grep -q '^\*\*Takeaway\*\* (computed from this run)' "$Q/REPORT.md"
    grep -q '<svg' "$Q/race-variants.svg"
    jq -e '.git_commit and .cpu_model and .nproc >= 1 and .build.buildtype' "$Q/provenance.json"
    # no temporary file is left behind
    [ -z "$(find "$Q" -name '.tmp.*')" ]
}

@test "the CSV and TSV columns are as bench/README.md documents" {
    run head -n1 "$Q/race-variants.hyperfine.csv"
    assert_output "command,mean,stddev,median,user,system,min,max,parameter_iters,parameter_threads,parameter_variant"
    run head -n1 "$Q/race-variants.tsv"
    assert_output "$(printf '%s\t' variant threads iters runs median_s min_s max_s mean_s stddev_s \
        ops ns_op ns_op_min ns_op_max ops_per_s inproc_ns_op ratio lost_pct overdrawn tags)exit_codes"
    # every data row has as many fields as the header
    awk -F'\t' 'NR == 1 { n = NF } NF != n { exit 1 }' "$Q/race-variants.tsv"
    [ "$(tail -n +2 "$Q/race-variants.tsv" | wc -l)" -eq 12 ]
    run head -n1 "$Q/race-window.csv"
    assert_output "thread,kind,start_s,end_s"
    jq -e '.checks | length >= 3 and all(has("name") and has("value") and has("result"))' \
        "$Q/race.summary.json"
    # the twelve floors (cache_line needs two CPUs), each the median of its
    # interleaved repeats with the harness's interval, as a row of REPORT.md
    floors=$(($(nproc) > 1 ? 12 : 11))
    jq -se --argjson k "$floors" 'length == $k and all(.name and .ns > 0 and .n >= 6
        and (.samples | length) == .n and .lo <= .ns and .ns <= .hi and .ops >= 1)' "$Q/calibration.jsonl"
    [ "$(sed -n '/^## Calibration/,/^(\[calibration.jsonl\]/p' "$Q/REPORT.md" | grep -Ec '^\| [a-z_]+ \| [0-9.]+ (ns|µs|ms) \(')" -eq "$floors" ]
}

@test "calibrate: its floors are the ones a figure may name; bad input exits 2" {
    run "$CONCLAB_BUILD/bench/calibrate" --list
    assert_success
    want=$(cd "$CONCLAB_SOURCE/bench" && python3 -c 'from harness import schema; print(*schema.FLOORS)')
    [ "$(cut -f1 <<<"$output" | xargs)" = "$want" ]
    # two repeats, no time budget to cut them short: every floor, each with its samples
    run "$CONCLAB_BUILD/bench/calibrate" --repeats 2
    assert_success
    jq -se 'length >= 11 and all((.samples | length) == 2 and .ns > 0)' <<<"$output"
    jq -se 'map(select(.name == "memcpy"))[0].bytes == 1048576' <<<"$output"
    for args in "--repeats 0" "--repeats x" "--budget -1" "--budget" "--frobnicate"; do
        read -ra argv <<<"$args"
        run --separate-stderr "$CONCLAB_BUILD/bench/calibrate" "${argv[@]}"
        [ "$status" -eq 2 ] || fail "'$args' gave exit $status"
        [ "${#stderr_lines[@]}" -eq 1 ] && [[ "$stderr" == calibrate:* ]] || fail "'$args': $stderr"
    done
}

@test "runs are interleaved rounds, and a ratio is the median of the rounds' ratios" {
    # bench/race.toml, [experiment.variants] quick: nine rounds of one run per
    # configuration, after one warm-up
    [ "$(grep -c '^# round [0-9]* of 9$' "$Q/race-variants.hyperfine.log")" -eq 9 ]
    jq -e '.rounds == 9 and all(.results[]; (.times | length) == 9)' "$Q/race-variants.hyperfine.json"
    # each row's ratio against mutex, recomputed from hyperfine's times round by round
    jq -en --slurpfile h "$Q/race-variants.hyperfine.json" --slurpfile r "$Q/race-variants.rows.json" '
        def median: sort | .[length / 2 | floor];
        ($h[0].results | map({key: .parameters.variant, value: .times}) | from_entries) as $t
        | ($r[0] | map({key: .params.variant, value: .ops}) | from_entries) as $ops
        | [$r[0][] | select(.ratio) | .params.variant as $v
           | ([$t[$v], $t.mutex] | transpose | map(.[0] / .[1]) | median) * $ops.mutex / $ops[$v]
           ] as $want
        | [$r[0][] | select(.ratio) | .ratio] as $got
        | ($got | length) >= 5 and ([$want, $got] | transpose | all(.[0] - .[1] | fabs < 1e-9))'
}

@test "--compare of two runs gives a ratio table" {
    for r in a b; do
        "$RUN" --experiments "$FIXTURES/ok" --only race --build "$CONCLAB_BUILD" \
            --out "$BATS_TEST_TMPDIR/$r" 2>/dev/null
    done
    run "$RUN" --compare "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
    assert_success
    assert_line "| experiment | parameters | A median ms | B median ms | B / A | relative: B / A |"
    assert_line --regexp '^\| race-tiny \| iters=1000 variant=atomic \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 1 \|$'
    assert_line --regexp '^2 configurations in both runs; median B / A [0-9.]+'
    # a run against itself: every ratio is exactly 1
    run "$RUN" --compare "$Q" "$Q"
    assert_success
    [ "$(grep -c '^| race-' <<<"$output")" -eq "$(jq -s 'map(length) | add' "$Q"/race-*.rows.json)" ]
    ! grep -E '^\| race-' <<<"$output" | awk -F'|' '$6 + 0 != 1 { bad = 1 } END { exit !bad }'
    grep -qE 'within 10%: ([1-9][0-9]*) of \1\.$' <<<"$output" # every relative figure is stable
    # and the race summary's numeric figures, each against itself: B / A is exactly
    # 1, with its interval over both runs' rounds; the two runs are settled alike,
    # and the closing line counts the figures marked as agreeing
    n=$(jq '[.checks[] | select((.value | type) == "number" and .value != 0)] | length' "$Q/race.summary.json")
    [ "$n" -ge 3 ]
    settled=$(jq '[.checks[] | select(.settled)] | length' "$Q/race.summary.json")
    agree=$(grep -c '^| race | .* | yes |$' <<<"$output" || true)
    assert_line "$n summary figures in both runs, $n with samples in both; settled: $settled in A, $settled in B; of the $settled settled in both, $agree agree."
    assert_line --regexp '^\| race \| atomic ns/op ÷ sharded ns/op \| ([0-9.]+× \([0-9.]+–[0-9.]+\)) \| \1 \| 1 \| [0-9.]+–[0-9.]+ \| (yes|\*\*no\*\*|–) \|$'
    run --separate-stderr "$RUN" --compare "$Q" /nonexistent
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"not a bench/run result folder"* ]]
}

@test "a summary warns when other programs took the CPU while its experiments ran" {
    # a busy loop per core: most of the CPU is theirs
    local hogs=()
    for _ in $(seq "$(nproc)"); do
        timeout 60 sh -c 'while :; do :; done' &
        hogs+=($!)
    done
    run "$RUN" --experiments "$FIXTURES/ok" --only race --build "$CONCLAB_BUILD" \
        --out "$BATS_TEST_TMPDIR/h"
    kill "${hogs[@]}" 2>/dev/null || true
    assert_success
    grep -q '^The tiny summary\.$' "$BATS_TEST_TMPDIR/h/REPORT.md"
    grep -Eq "^\*\*Note\*\*: the CPU was not all this run's while tiny \([0-9.]+% steal, [0-9.]+% other programs\) ran" \
        "$BATS_TEST_TMPDIR/h/REPORT.md"
    grep -Eq '^\*\*Warning\*\*: other programs used [0-9.]+% of the CPU time during the run' \
        "$BATS_TEST_TMPDIR/h/REPORT.md"
}

@test "a failing experiment is recorded, the run goes on, and the exit is non-zero" {
    run --separate-stderr "$RUN" --experiments "$FIXTURES/failing" --only race \
        --build "$CONCLAB_BUILD" --out "$BATS_TEST_TMPDIR/f"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"[1/2] race broken"* && "$stderr" == *"[2/2] race tiny"* ]]
    grep -q $'^race\tbroken\t' "$BATS_TEST_TMPDIR/f/failures.txt"
    ! grep -q $'\ttiny\t' "$BATS_TEST_TMPDIR/f/failures.txt"
    grep -q '^\*\*2 failure(s)\*\*' "$BATS_TEST_TMPDIR/f/REPORT.md" # its metrics and its timing
    [ -s "$BATS_TEST_TMPDIR/f/race-tiny.hyperfine.json" ] # the good experiment still ran
}

@test "a command other than the demo is timed in its place; a missing one is skipped" {
    run --separate-stderr "$RUN" --experiments "$FIXTURES/program" --only race \
        --build "$CONCLAB_BUILD" --out "$BATS_TEST_TMPDIR/p"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"skipped: conclab-no-such-program is not installed"* ]]
    [ ! -e "$BATS_TEST_TMPDIR/p/failures.txt" ] || [ ! -s "$BATS_TEST_TMPDIR/p/failures.txt" ]
    run jq -r '[.[] | "\(.params.iters) \(.ops)"] | join(",")' "$BATS_TEST_TMPDIR/p/race-ref.rows.json"
    [ "$output" = "10 10,20 20" ]
    # both JSON lines of each run are kept, each with its configuration
    run jq -sr 'map(select(._bench.experiment == "ref") | "\(.variant) \(._bench.params.iters)") | join(",")' \
        "$BATS_TEST_TMPDIR/p/race.metrics.jsonl"
    [ "$output" = "ref 10,ref-again 10,ref 20,ref-again 20" ]
    grep -q 'Command: `bash tests/bench/fixtures/program/reference.sh --iters {iters}`' \
        "$BATS_TEST_TMPDIR/p/REPORT.md"
    grep -q 'Skipped: `conclab-no-such-program` is not installed' "$BATS_TEST_TMPDIR/p/REPORT.md"
}

@test "a service experiment runs wrk against each server, and no server outlives it" {
    command -v wrk >/dev/null || skip "wrk is not installed"
    out="$BATS_TEST_TMPDIR/s"
    run --separate-stderr "$RUN" --experiments "$FIXTURES/service" --only race \
        --build "$CONCLAB_BUILD" --out "$out"
    [ "$status" -eq 0 ] || fail "exit $status: $stderr"
    # two servers x two points x two rounds: eight wrk runs, each with the server's counts
    run jq -sr 'map(select(._bench.experiment == "http")) |
        map("\(._bench.params.server)@\(._bench.params.connections) \(._bench.rep) \(.ops > 0) \(.metrics.server_responses >= .ops)") | join(",")' \
        "$out/race.metrics.jsonl"
    [ "$output" = "threads@4 1 true true,loop@4 1 true true,threads@8 1 true true,loop@8 1 true true,threads@4 2 true true,loop@4 2 true true,threads@8 2 true true,loop@8 2 true true" ] || fail "$output"
    for chart in race-http race-http-p99 race-http-cpu; do
        grep -q '<svg' "$out/$chart.svg" || fail "no $chart.svg"
    done
    grep -q '^| server | connections | runs | requests/s (95% interval)' "$out/REPORT.md"
    grep -q 'Not run: `server=absent connections=4`: `conclab-no-such-server` is not installed' "$out/REPORT.md"
    grep -q 'Not run: `server=threads connections=100000000`: needs 200000200 open files' "$out/REPORT.md"
    jq -e '.checks[0].name == "loop_over_threads" and .checks[0].n == 2' "$out/race.summary.json"
    ! pgrep -f "$CONCLAB_BUILD/bench/server/httpd" || fail "a server is still running"
}

@test "Ctrl-C during a service experiment stops wrk and the server at once" {
    command -v wrk >/dev/null || skip "wrk is not installed"
    out="$BATS_TEST_TMPDIR/c" t="$BATS_TEST_TMPDIR"
    # as in the test below: a process group of its own, SIGINT restored by env
    setsid env --default-signal=INT bash -c 'd=$1; shift; echo $$ >"$d/pgid"; "$@"; echo $? >"$d/status"' _ "$t" \
        "$RUN" --experiments "$FIXTURES/service-slow" --only race --build "$CONCLAB_BUILD" \
        --out "$out" 2>/dev/null &
    # the harness starts wrk and the server in groups of their own, in its session
    for _ in $(seq 200); do # until wrk runs against the server
        [ -s "$t/pgid" ] && pgrep -s "$(cat "$t/pgid")" -x wrk >/dev/null && break
        sleep 0.1
    done
    pgid=$(cat "$t/pgid")
    pgrep -s "$pgid" -x wrk >/dev/null || { pgrep -s "$pgid" | xargs -r kill -KILL; fail "wrk never started"; }
    kill -INT -- -"$pgid"
    for _ in $(seq 100); do [ -s "$t/status" ] && break; sleep 0.1; done
    [ -s "$t/status" ] || { pgrep -s "$pgid" | xargs -r kill -KILL; fail "still running 10 s after Ctrl-C"; }
    [ "$(cat "$t/status")" -eq 130 ]
    left=$(pgrep -a -s "$pgid" | grep -v '^[0-9]* bash ' || true)
    [ -z "$left" ] || { pgrep -s "$pgid" | xargs -r kill -KILL; fail "left running: $left"; }
}

@test "an interrupted run (Ctrl-C) exits 130 and leaves no half-written file" {
    out="$BATS_TEST_TMPDIR/i" t="$BATS_TEST_TMPDIR"
    # In a process group of its own, so the interrupt reaches bench/run and what it
    # runs, as Ctrl-C in a terminal does. The group leader is a shell that writes
    # down its pid (the group id) and then bench/run's exit status. A background
    # job starts with SIGINT ignored, which no shell can undo: env restores it.
    setsid env --default-signal=INT bash -c 'd=$1; shift; echo $$ >"$d/pgid"; "$@"; echo $? >"$d/status"' _ "$t" \
        "$RUN" --experiments "$FIXTURES/slow" --only race --build "$CONCLAB_BUILD" \
        --out "$out" 2>/dev/null &
    for _ in $(seq 100); do # until the slow command runs: its metrics file is open
        [ -s "$t/pgid" ] && [ -n "$(find "$out" -name '.tmp.race.metrics.jsonl.*' 2>/dev/null)" ] && break
        sleep 0.1
    done
    pgid=$(cat "$t/pgid")
    kill -INT -- -"$pgid"
    for _ in $(seq 300); do [ -s "$t/status" ] && break; sleep 0.1; done
    [ -s "$t/status" ] || { kill -KILL -- -"$pgid"; fail "still running 30 s after Ctrl-C"; }
    [ "$(cat "$t/status")" -eq 130 ]
    [ -z "$(find "$out" -name '.tmp.*')" ] || fail "left: $(find "$out" -name '.tmp.*')"
    [ ! -e "$out/REPORT.md" ] # never half a report
}

@test "bad arguments: exit 2 and one line" {
    while IFS='|' read -r args mention; do
        read -ra argv <<<"$args"
        run --separate-stderr "$RUN" "${argv[@]}"
        [ "$status" -eq 2 ] || fail "'$args' gave exit $status"
        [ "${#stderr_lines[@]}" -eq 1 ] || fail "'$args': $stderr"
        [[ "$stderr" == *"$mention"* ]] || fail "'$args': '$stderr' lacks '$mention'"
    done <<TABLE
--frobnicate|unknown argument '--frobnicate'
--only|--only needs a value
--only nosuch --build $CONCLAB_BUILD|--only: no demo 'nosuch'
--build /nonexistent|build folder '/nonexistent' not found
--experiments /nonexistent|--experiments: '/nonexistent' is not a folder
--compare onlyone|--compare needs two result folders
TABLE
}
