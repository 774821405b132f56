#!/usr/bin/env bats
# Behaviour of demos/barrier: every variant, plain and under ThreadSanitizer,
# exit codes, the bad-input table, tracing and the empty-phase mode.

load common

setup() {
    BARRIER="$(demo barrier)"
}

# Sizes for a run under TSan, which is 5 to 15 times slower: small, but with a
# band per thread of a few rows, so neighbours really read each other's edges.
small() { echo --size 48 --steps 20; }

# --- the declaration -------------------------------------------------------

@test "barrier --list: ten variants; none and in-place wrong,racy, naive-reuse hangs" {
    assert_list barrier 10
    assert_line --partial $'none\twrong,racy\t'
    assert_line --partial $'in-place\twrong,racy\t'
    assert_line --partial $'naive-reuse\thangs\t'
    [ "$(variants_tagged barrier correct | wc -l)" -eq 7 ]
    [ "$(variants_tagged barrier racy | tr '\n' ' ')" = "none in-place " ]
}

# --- the barrier kinds equal the sequential reference, bit for bit ------------

@test "pthread, condvar and spin equal seq for several sizes and thread counts" {
    local sizes="1 7 50 101" threads="1 2 3 4 7"
    under_tsan && { sizes="7 33"; threads="1 2 3 5"; } # and TSan must stay silent
    for v in pthread condvar spin; do
        for n in $sizes; do
            for t in $threads; do
                [ "$t" -le "$n" ] || continue
                run --separate-stderr "$BARRIER" --variant "$v" --size "$n" --steps 30 \
                    --threads "$t" --json
                [ "$status" -eq 0 ] || fail "$v size $n threads $t: exit $status $stderr"
                assert_json '.exact == true' || fail "$v $n $t: $output"
                assert_json '.metrics.differ == 0'
                assert_json ".metrics.cells == $((n * n))"
            done
        done
    done
}

@test "threads that do not divide the rows: 7 threads on 100 rows, and one row each" {
    for v in pthread condvar spin; do
        run "$BARRIER" --variant "$v" --size 100 --steps 15 --threads 7 --quiet
        assert_success
        assert_output --partial "identical to the sequential reference, bit for bit"
        run "$BARRIER" --variant "$v" --size 6 --steps 15 --threads 6 --quiet
        assert_success
        assert_output --partial "bit for bit (36 cells)"
    done
}

@test "every variant's default steps: 500 for the timed ones, 100 for the others" {
    run --separate-stderr "$BARRIER" --json --size 24
    assert_success
    [ "${#lines[@]}" -eq 9 ]
    for line in "${lines[@]}"; do
        jq -e 'if (.variant | IN("seq", "pthread", "condvar", "spin", "serial-action"))
               then .params.iters == 500 else .params.iters == 100 end' <<<"$line" >/dev/null ||
            fail "wrong default steps: $line"
    done
}

@test "seq ignores --threads and runs the default 500 steps" {
    skip_under_tsan
    run "$BARRIER" --variant seq --threads 4 --size 40 --json
    assert_success
    assert_json '.threads == 1'
    assert_json '.params.steps == 500' # not given: the variant's own
    assert_json '.params.iters == 500'
}

# --- none and in-place are wrong, and TSan says why ---------------------------

@test "none reports a difference for a default run, and exits 0" {
    skip_under_tsan "the TSan build checks for its report instead"
    # A race is a matter of timing: each try is a fresh run, five that all
    # match would be a bug (every cell changes every step, see new_grid).
    for _ in 1 2 3 4 5; do
        run "$BARRIER" --variant none --json
        assert_success
        json_holds '.exact == false' && break
    done
    assert_json '.exact == false'
    assert_json '.metrics.differ > 0'
    assert_output --partial '"verdict":"differs from the sequential reference in'
}

@test "in-place reports a difference for a default run, and exits 0" {
    skip_under_tsan
    run "$BARRIER" --variant in-place --quiet
    assert_success
    assert_output --regexp 'in-place +differs from the sequential reference in [0-9,]+ of 640,000 cells \(max error'
}

@test "in-place is wrong even on one thread: it is a logic bug, not only a race" {
    run "$BARRIER" --variant in-place --threads 1 --size 30 --steps 10 --json
    assert_success # one thread: no race, so no TSan report either
    assert_json '.exact == false'
}

@test "TSan reports none and in-place (exit 66) and nothing else" {
    only_under_tsan
    for v in $("$BARRIER" --list | cut -f1); do
        run --separate-stderr "$BARRIER" --variant "$v" $(small) --threads 3 --quiet
        case "$v" in
        none | in-place)
            [ "$status" -eq 66 ] || fail "$v: exit $status, expected 66"
            [[ "$stderr" == *"WARNING: ThreadSanitizer: data race"* ]] ;;
        naive-reuse) # a hang, and no race: the forced order keeps the grid's accesses ordered
            [ "$status" -eq 3 ] || fail "$v: exit $status, expected 3"
            [[ "$stderr" != *ThreadSanitizer* ]] || fail "$v: $stderr" ;;
        *)
            [ "$status" -eq 0 ] || fail "$v: exit $status: $stderr"
            [[ "$stderr" != *ThreadSanitizer* ]] || fail "$v: $stderr" ;;
        esac
    done
}

# --- naive-reuse: the reusable barrier that fails ------------------------------

@test "naive-reuse hangs in every run: T1 laps the others, finishes, and strands them" {
    for _ in 1 2 3 4 5; do # the order is forced: every run, not once by luck
        run --separate-stderr "$BARRIER" --variant naive-reuse --timeout 0.3
        [ "$status" -eq 3 ] || fail "exit $status: $stderr"
        [[ "$stderr" == *"watchdog: no progress"* ]]
        [[ "$stderr" == *"T1: 3 of 3 operations done, finished"* ]] || fail "$stderr"
        [[ "$stderr" == *"T2: 1 of 3 operations done, waits at the turnstile"* ]]
        [[ "$stderr" == *"naive barrier: 1 of 2 threads arrived, turnstile 0 (closed)"* ]]
        [[ "$stderr" == *"T1 passed barrier 2 while T2 had not yet passed barrier 1: a lap ahead"* ]]
        [[ "$stderr" == *"=> left behind at barrier 2: T2; it opens when all 2 have arrived, and T1 finished, never to arrive again"* ]]
        [[ "$output" != *"=>"* ]] || fail "a verdict, from a run that hangs: $output"
    done
    for t in 3 4; do
        run --separate-stderr "$BARRIER" --variant naive-reuse --threads "$t" --timeout 0.3
        [ "$status" -eq 3 ] || fail "--threads $t: exit $status"
        [[ "$stderr" == *"naive barrier: $((t - 1)) of $t threads arrived, turnstile 0 (closed)"* ]] ||
            fail "$stderr"
        [[ "$stderr" == *"=> left behind at barrier 2: T2, T3"* ]]
    done
}

@test "naive-reuse: its own 2 s timeout, and always 3 phases" {
    local t0=$(date +%s%N)
    run --separate-stderr "$BARRIER" --variant naive-reuse --steps 50 # --steps is ignored
    local ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$status" -eq 3 ]
    [[ "$stderr" =~ watchdog:\ no\ progress\ for\ 2\.[0-9]+\ s ]] || fail "$stderr"
    [[ "$stderr" == *"T1: 3 of 3 operations done, finished"* ]]
    [ "$ms" -lt 10000 ] || fail "took $ms ms: the chapter's 10 s applied" # 2 s, with margin
    run "$BARRIER" --help
    assert_output --partial "(default: 10; naive-reuse: 2)"
}

# --- broken: released, joined, never hangs -------------------------------------

@test "broken never hangs: every survivor is released at the failing phase; exit 0" {
    for t in 1 2 4; do
        run --separate-stderr timeout 60 "$BARRIER" --variant broken --threads "$t" $(small) --json
        [ "$status" -eq 0 ] || fail "threads $t: exit $status $stderr"
        assert_json '.exact == true'
        assert_json '.metrics.broken_phase == 11' # steps / 2 + 1
        assert_json ".metrics.released == $((t - 1))"
        assert_json '.metrics.timed_out == 0'
        assert_json ".metrics.joined == $t"
    done
    run "$BARRIER" --variant broken --threads 3 $(small) --quiet
    assert_output --partial 'phase 11 of 20 broke: T3 failed and aborted the barrier, 2 other threads were released with "barrier broken", all 3 joined, cleanup done'
}

# --- imbalanced -----------------------------------------------------------------

@test "imbalanced is exact, reports its idle fraction, and traces every barrier wait" {
    run --separate-stderr "$BARRIER" --variant imbalanced --threads 3 --size 60 --steps 12 \
        --trace "$BATS_TEST_TMPDIR/i.csv" --json
    [ "$status" -eq 0 ] || fail "exit $status $stderr"
    assert_json '.exact == true'
    jq -e '.metrics.idle_pct > 0 and .metrics.idle_pct < 100' <<<"$output"
    run cat "$BATS_TEST_TMPDIR/i.csv"
    assert_line --index 0 "thread,kind,start_s,end_s"
    [ "$(grep -c ',run,' <<<"$output")" -eq 3 ]
    [ "$(grep -c ',wait,' <<<"$output")" -eq 36 ] # 3 threads x 12 phases
}

# --- serial-action ------------------------------------------------------------

@test "serial-action stops at the same step as a sequential convergence check" {
    local sizes="40 101" threads="1 2 3"
    under_tsan && { sizes="40"; threads="1 3"; }
    for n in $sizes; do
        for t in $threads; do
            run --separate-stderr "$BARRIER" --variant serial-action --size "$n" --threads "$t" \
                --steps 400 --eps 8000 --json
            [ "$status" -eq 0 ] || fail "size $n threads $t: exit $status $stderr"
            stopped=$(json_field .metrics.stopped_at "$output")
            assert_json '.metrics.stopped_at == .metrics.seq_stopped_at'
            assert_json '.metrics.stopped_at < 400' || fail "size $n threads $t did not stop early: $output"
            assert_json '.exact == true'
        done
    done
    # a looser eps stops sooner
    run "$BARRIER" --variant serial-action --size 40 --steps 400 --eps 20000 --json
    assert_json ".metrics.stopped_at < $stopped"
}

@test "serial-action with an eps never reached runs every step" {
    run "$BARRIER" --variant serial-action --size 20 --steps 5 --eps 1 --json
    assert_success
    assert_json '.metrics.stopped_at == 5'
    assert_json '.metrics.seq_stopped_at == 5'
}

# --- running everything -------------------------------------------------------

@test "barrier with no flags runs every variant, each behaving as declared" {
    local args=()
    under_tsan && args=(--size 48) # the defaults take a minute under TSan
    run "$BARRIER" "${args[@]}"
    assert_success # under TSan too: the reports are the children's, as declared
    assert_output --partial "all 10 variants behaved as declared"
    for v in $(variants_tagged barrier '!hangs'); do # a hang prints the watchdog's report instead
        assert_line --regexp "^$v \["
    done
}

@test "--json: one object per variant, with the chapter's params and metrics" {
    run --separate-stderr "$BARRIER" --json --size 40 --steps 10
    assert_success # the parent runs no threads: exit 0 even under TSan
    [ "${#lines[@]}" -eq 9 ] # naive-reuse hangs: no line
    for line in "${lines[@]}"; do
        jq -e '(.chapter == "barrier") and (.params.size == 40) and (.params.steps == 10) and
               (.params.eps == 8000) and (.params.phase_work == 1) and (.wall_s > 0) and
               (.metrics | type == "object") and (.verdict | length > 0) and (.exit == 0)' \
            <<<"$line" >/dev/null || fail "bad JSON line: $line"
    done
}

@test "--phase-work 0 times empty phases: one op per barrier episode" {
    for v in seq pthread condvar spin; do
        run "$BARRIER" --variant "$v" --phase-work 0 --steps 2000 --threads 2 --json
        assert_success
        assert_json '.ops == 2000'
        jq -e '.exact and .metrics.episode_ns > 0' <<<"$output" >/dev/null
    done
}

@test "spin does not live-lock with more threads than cores" {
    local t=$(($(nproc) * 4))
    under_tsan && t=$(($(nproc) * 2))
    run timeout 60 "$BARRIER" --variant spin --phase-work 0 --steps 2000 --threads "$t" --quiet
    assert_success
    assert_output --partial "2,000 barrier episodes"
}

# --- bad input ---------------------------------------------------------------

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$BARRIER" <<'TABLE'
--size 0|--size: 0 is out of range (allowed: 1 to 4096)
--size 5000|--size: 5000 is out of range
--size ten|--size: 'ten' is not a whole number
--size|--size needs a value
--steps -1|--steps: -1 is out of range (allowed: 1 to 10000000)
--steps 0|--steps: 0 is out of range
--eps 0|--eps: 0 is out of range
--imbalance 0|--imbalance: 0 is out of range (allowed: 1 to 100)
--phase-work 2|--phase-work: 2 is out of range (allowed: 0 to 1)
--verify 3|--verify: 3 is out of range
--threads 0|--threads: 0 is out of range
--variant nosuch|no variant 'nosuch' (allowed: all, seq, pthread
--variant pthread --size 4 --threads 5|--threads: 5 is more than the 4 rows of --size 4
--size 10 --threads 11|--threads: 11 is more than the 10 rows of --size 10
--variant seq --size 3 --threads 4|--threads: 4 is more than the 3 rows
--variant pthread --iters 10|--iters: not used here
--phase-work 0|--phase-work 0: needs --variant seq, pthread, condvar or spin
--variant none --phase-work 0|--phase-work 0: needs --variant
--trace t.csv|--trace: needs one --variant
--variant naive-reuse --threads 1|--threads: naive-reuse needs at least 2 threads to lap
TABLE
}

@test "--help lists the chapter's flags" {
    run "$BARRIER" --help
    assert_success
    for f in --size --steps --eps --imbalance --phase-work --verify; do
        assert_output --partial "$f"
    done
}

# --- never hangs: the watchdog and Ctrl-C ---------------------------------------

@test "the watchdog sees a thread waiting at the barrier for a phase that takes too long" {
    # band 0 is 100 times heavier: its first phase alone is 450M cell updates, far
    # longer than the 0.1 s timeout, while the other thread's band takes milliseconds
    run --separate-stderr "$BARRIER" --variant imbalanced --imbalance 100 --size 3000 \
        --steps 3 --timeout 0.1
    [ "$status" -eq 3 ]
    [[ "$stderr" == *"watchdog: no progress"* ]]
    [[ "$stderr" == *"T1: 0 of 3 operations done, not finished"* ]]
    if ! under_tsan; then # under TSan the light band may still be computing
        [[ "$stderr" == *"T2: 0 of 3 operations done, waits at the barrier"* ]]
    fi
}

@test "Ctrl-C prints the partial result and exits 130 quickly" {
    "$BARRIER" --variant condvar --size 1000 --steps 100000 >"$BATS_TEST_TMPDIR/out" 2>&1 &
    local pid=$!
    sleep 0.5
    local t0=$(date +%s%N)
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 130 ]
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 3000 ] # the contract says 1 s; margin for load
    grep -q "condvar: interrupted after .* of 200,000 operations" "$BATS_TEST_TMPDIR/out"
}

@test "Ctrl-C in every phase (setup, run, check, report, teardown): exit 130" {
    sigint_every_phase "$BARRIER" --variant seq --size 40 --steps 10
    sigint_every_phase "$BARRIER" --variant pthread --size 40 --steps 10
    sigint_every_phase "$BARRIER" --variant spin --size 40 --steps 10
    sigint_every_phase "$BARRIER" --variant broken --size 40 --steps 10
    sigint_every_phase "$BARRIER" --variant imbalanced --size 40 --steps 10
    sigint_every_phase "$BARRIER" --variant serial-action --size 40 --steps 10
    sigint_every_phase "$BARRIER" --variant condvar --phase-work 0 --steps 10
}
