#!/usr/bin/env bats
# Behaviour of demos/speedup: every executor with every kind of work gives the
# checked result, procs agrees with seq, --cpus, the bad-input table, 10,000
# threads, and (only on 2+ cores, with loose bounds) that CPU work runs in
# parallel, I/O overlaps and the GIL serialises. Speed itself is measured in
# bench/speedup.bench, never asserted here.

load common

setup() {
    SPEEDUP="$(demo speedup)"
}

# Small sizes: a few ms of CPU a task, a few ms of I/O; smaller still under TSan.
small() {
    case $1 in
    cpu) echo --tasks 6 --size 200000 ;;
    mixed) echo --tasks 8 --latency-ms 2 --cpu-fraction 0.2 ;;
    *) echo --tasks 12 --latency-ms 2 ;;
    esac
}

# CPU seconds over wall seconds says how many cores a run kept busy, but only
# when it had them: skip under a sanitizer (its runtime changes the timing) or
# when other processes already fill the cores.
need_idle_cores() {
    need_cores 2
    [ "$SANITIZE" = none ] || skip "timing is not measured in the $SANITIZE build"
    local load
    read -r load _ </proc/loadavg
    jq -e -n "$load < $(nproc) - 0.5" >/dev/null || skip "the machine is busy (load $load)"
}

# --- the declaration ------------------------------------------------------------

@test "speedup --list: five executors, all correct" {
    assert_list speedup 5
    [ "$(variants_tagged speedup correct | tr '\n' ' ')" = "seq threads pool procs gil " ]
}

# --- every executor with every kind of work --------------------------------------

@test "every executor x every workload: every task's result checked, exit 0" {
    for work in cpu io-sleep io-real mixed; do
        for v in seq threads pool procs gil; do
            for workers in 1 3; do
                # shellcheck disable=SC2046
                run --separate-stderr "$SPEEDUP" --variant "$v" --work "$work" $(small "$work") \
                    --workers "$workers" --json
                [ "$status" -eq 0 ] || fail "$v $work W=$workers: exit $status $stderr"
                assert_json '.exact == true' || fail "$v $work: $output"
                assert_json '.metrics.wrong == 0'
                assert_json '.metrics.tasks == .params.tasks'
            done
        done
    done
}

@test "the default run: all five executors behave as declared, on the default cpu work" {
    skip_under_tsan "the default sizes take seconds under TSan; the table above covers it"
    run "$SPEEDUP" --quiet
    assert_success
    assert_line --partial "all 5 variants behaved as declared"
    [ "$(grep -c 'tasks right' <<<"$output")" -eq 5 ]
}

@test "procs, threads, pool and gil return the same sum as seq" {
    run "$SPEEDUP" --work cpu --tasks 7 --size 1000003 --workers 3 --json
    assert_success
    [ "${#lines[@]}" -eq 5 ]
    local seq_sum
    seq_sum=$(jq -r 'select(.variant == "seq") | .verdict' <<<"$output" | grep -o 'sum [0-9]*')
    [ -n "$seq_sum" ]
    # the closed form, (n-1)n(2n-1)/6 mod 2^64 with n = 7 x 1000003
    [ "$seq_sum" = "sum $(python3 -c 'n = 7 * 1000003; print((n - 1) * n * (2 * n - 1) // 6 % 2**64)')" ]
    for v in threads pool procs gil; do
        [ "$(jq -r --arg v "$v" 'select(.variant == $v) | .verdict' <<<"$output" | grep -o 'sum [0-9]*')" = "$seq_sum" ] ||
            fail "$v differs from seq"
    done
}

@test "an all run gives each executor its speedup and efficiency over seq's run" {
    run "$SPEEDUP" --work io-sleep --tasks 8 --latency-ms 5 --workers 4 --json
    assert_success
    jq -se 'map(select(.variant == "seq")) | .[0].metrics | has("speedup") | not' <<<"$output" >/dev/null
    for v in threads pool procs gil; do
        jq -se --arg v "$v" 'map(select(.variant == $v)) | .[0].metrics
            | .speedup > 0 and (.efficiency - .speedup / 4 | fabs) < 1e-6' <<<"$output" >/dev/null ||
            fail "$v: no speedup: $output"
    done
}

@test "procs counts its children's CPU time" {
    run "$SPEEDUP" --variant procs --work cpu --tasks 2 --size 60000000 --workers 2 --json
    assert_success
    # Two children each computed about 20 ms here (twice that on a machine half as
    # fast, half on one twice as fast), which only their reaped CPU time shows; the
    # parent's own is counted apart. A ratio to the wall time would depend on load.
    assert_json '.metrics.children_cpu_s > 0.005 and .metrics.cpu_s >= .metrics.children_cpu_s'
}

# --- --cpus: concurrency without parallelism ---------------------------------------

@test "--cpus 1: every executor still right, and CPU work no longer runs in parallel" {
    for v in seq threads pool procs gil; do
        run "$SPEEDUP" --variant "$v" --cpus 1 --work cpu --tasks 4 --size 2000000 --workers 2 --json
        assert_success
        # one core cannot give more CPU seconds than wall seconds (rounding aside)
        jq -e '.exact and .metrics.parallelism < 1.15' <<<"$output" >/dev/null || fail "$v: $output"
    done
    run "$SPEEDUP" --variant threads --cpus 1 --work io-sleep $(small io-sleep) --quiet
    assert_success
}

# --- parallelism and overlap: loose bounds, real cores only ----------------------

@test "cpu on 2 threads uses more than one core; the gil executor does not" {
    need_idle_cores
    best_of 3 .metrics.parallelism 1.3 true \
        "$SPEEDUP" --variant threads --work cpu --tasks 2 --workers 2 --size 100000000 --json
    run "$SPEEDUP" --variant gil --work cpu --tasks 2 --workers 2 --size 50000000 --json
    assert_success
    jq -e '.metrics.parallelism < 1.2 and .metrics.gil_switches > 0' <<<"$output" >/dev/null ||
        fail "gil: $output"
}

@test "I/O overlaps: 100 tasks of 20 ms take far less than 2 s on threads, pool and gil" {
    for v in threads pool gil; do
        run "$SPEEDUP" --variant "$v" --work io-sleep --tasks 100 --latency-ms 20 --json
        assert_success
        jq -e '.metrics.run_s < 1.0' <<<"$output" >/dev/null || fail "$v: $output"
        run "$SPEEDUP" --variant "$v" --work io-real --tasks 50 --latency-ms 20 --json
        assert_success
        jq -e '.metrics.run_s < 0.6' <<<"$output" >/dev/null || fail "$v io-real: $output"
    done
}

@test "mixed: the serial part is the fraction asked for, and caps the speedup" {
    run "$SPEEDUP" --variant threads --work mixed --tasks 40 --latency-ms 10 --cpu-fraction 0.5 --json
    assert_success
    # seq would take 0.4 s of I/O + 0.4 s serial; 40 threads overlap the I/O only
    jq -e '(.metrics.serial_fraction - 0.5 | fabs) < 0.05 and .metrics.run_s > 0.4' \
        <<<"$output" >/dev/null || fail "$output"
}

# --- many threads -----------------------------------------------------------------

@test "10,000 io-sleep tasks on 10,000 threads run, or fail with one clear line" {
    skip_under_tsan "10,000 threads take more than 30 s under TSan"
    run --separate-stderr "$SPEEDUP" --variant threads --work io-sleep --tasks 10000 --latency-ms 10 --quiet
    if [ "$status" -eq 0 ]; then
        assert_output --partial "all 10,000 tasks right"
    else
        [ "$status" -eq 4 ] || fail "exit $status: $stderr"
        [ "${#stderr_lines[@]}" -eq 1 ] || fail "$stderr"
        [[ $stderr == *"pthread_create: "*" of 10,000 threads (limits: "* ]] || fail "$stderr"
    fi
}

@test "threads that cannot be created (address space capped): exit 4, one line, no crash" {
    [ "$SANITIZE" = none ] || skip "a sanitizer needs more address space than the cap"
    run --separate-stderr bash -c "ulimit -v 1500000 && exec '$SPEEDUP' --variant threads --work io-sleep --tasks 5000 --latency-ms 1 --quiet"
    [ "$status" -eq 4 ] || fail "exit $status: $stderr"
    [ "${#stderr_lines[@]}" -eq 1 ] || fail "$stderr"
    [[ $stderr == "speedup: pthread_create: Resource temporarily unavailable; started "*" of 5,000 threads (limits: "*"RLIMIT_AS 1,464 MiB)" ]] || fail "$stderr"
}

@test "io-real with more channels than descriptors: exit 2, one line" {
    run --separate-stderr bash -c "ulimit -n 256 && exec '$SPEEDUP' --variant threads --work io-real --tasks 500 --latency-ms 1"
    [ "$status" -eq 2 ] || fail "exit $status: $output $stderr"
    [ "${#stderr_lines[@]}" -eq 1 ] || fail "$stderr"
    [[ $stderr == *"--workers: io-real: 500 channels need"*"file descriptors"* ]] || fail "$stderr"
}

# --- Ctrl-C ----------------------------------------------------------------------------

@test "Ctrl-C ends a long run with 130 and its partial count, procs and gil too" {
    for v in seq procs gil; do
        "$SPEEDUP" --variant "$v" --work io-sleep --tasks 20 --latency-ms 400 --workers 2 \
            >"$BATS_TEST_TMPDIR/out" 2>&1 &
        local pid=$! status=0
        sleep 0.6
        kill -INT "$pid"
        wait "$pid" || status=$?
        [ "$status" -eq 130 ] || fail "$v: exit $status: $(cat "$BATS_TEST_TMPDIR/out")"
        grep -q "^$v: interrupted after [0-9]* of 20 operations" "$BATS_TEST_TMPDIR/out" ||
            fail "$v: $(cat "$BATS_TEST_TMPDIR/out")"
    done
}

@test "Ctrl-C in every phase (setup, run, check, report, teardown): exit 130" {
    sigint_every_phase "$SPEEDUP" --variant seq --tasks 4 --size 100000
    sigint_every_phase "$SPEEDUP" --variant threads --tasks 4 --size 100000
    sigint_every_phase "$SPEEDUP" --variant pool --tasks 4 --size 100000
    sigint_every_phase "$SPEEDUP" --variant procs --tasks 4 --size 100000
    sigint_every_phase "$SPEEDUP" --variant gil --tasks 4 --size 100000
    sigint_every_phase "$SPEEDUP" --variant threads --work io-real --tasks 4 --latency-ms 1
    sigint_every_phase "$SPEEDUP" --variant threads --work mixed --tasks 4 --latency-ms 1
}

# --- bad input -----------------------------------------------------------------------

@test "gil: --switch-interval-ms is the GIL's interval, and a waiter gets it by a forced drop" {
    # about 100 ms of CPU work on 2 threads under a 1 ms interval: the waiting thread
    # asks for the GIL many intervals over, and each hand-off is a forced drop
    run "$SPEEDUP" --variant gil --work cpu --tasks 2 --workers 2 --size 50000000 \
        --switch-interval-ms 1 --json
    assert_success
    jq -e '.exact and .params.switch_interval_ms == 1 and .metrics.gil_forced_drops > 0 and
           .metrics.gil_switches >= .metrics.gil_forced_drops' <<<"$output" >/dev/null || fail "$output"
    run "$SPEEDUP" --variant gil --work cpu --tasks 2 --workers 2 --size 1000 --json
    assert_success
    jq -e '.params.switch_interval_ms == 5' <<<"$output" >/dev/null || fail "default: $output"
}

@test "bad input: exit 2 and one line on stderr naming the flag" {
    bad_input "$SPEEDUP" <<TABLE
--workers 0|--workers: 0 is out of range (allowed: 1 to 100000)
--workers -2|--workers: -2 is out of range
--workers many|--workers: 'many' is not a whole number
--latency-ms -1|--latency-ms: -1 is out of range (allowed: 0 to 5000)
--latency-ms 60000|--latency-ms: 60000 is out of range
--work gpu|--work: no such choice 'gpu' (allowed: cpu, io-sleep, io-real, mixed)
--work|--work needs a value
--tasks 0|--tasks: 0 is out of range (allowed: 1 to 1000000)
--size 0|--size: 0 is out of range
--cpu-fraction 1|--cpu-fraction: 1 is out of range (allowed: 0.00 to 0.95)
--cpu-fraction 0.123|--cpu-fraction: '0.123' is not a number with at most 2 decimals
--cpus 0|--cpus: 0 is out of range
--switch-interval-ms 0|--switch-interval-ms: 0 is out of range (allowed: 1 to 100)
--switch-interval-ms 101|--switch-interval-ms: 101 is out of range
--variant seq --cpus $(($(nproc) + 1))|--cpus: $(($(nproc) + 1)) is more than the $(nproc) CPUs
--variant procs --workers 2000|--workers: procs forks at most 1024 processes (got 2000)
--variant threads --threads 4|--threads: not used here (allowed: --workers and --tasks)
--variant pool --iters 4|--iters: not used here
--variant nosuch|no variant 'nosuch' (allowed: all, seq, threads, pool, procs, gil)
TABLE
}
