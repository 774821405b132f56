#!/usr/bin/env bats
# Behaviour of demos/procs: every variant, each in a session of its own so that a
# child left behind fails the test, and /dev/shm checked for the demo's names after
# every test; the three hangs end with exit 3 saying what the child waits for; the
# pipe's capacity exactly and 4 KiB past it; bad input; Ctrl-C in every phase;
# SIGTERM from outside; ThreadSanitizer silent everywhere (no variant races inside
# one process: shared-racy loses updates between processes, where TSan cannot see).

# shellcheck disable=SC2016,SC2154 # $1 for the inner bash; stderr: set by run
load common

# ThreadSanitizer sleeps 1 s in a process that exits while other threads still
# run (its atexit_sleep_ms, to catch races at exit): every Ctrl-C and every hang
# here ends that way, through _exit with the watchdog's thread alive. Nothing
# here races at exit, and the tests time Ctrl-C, so not here.
export TSAN_OPTIONS="${TSAN_OPTIONS-} atexit_sleep_ms=0"

setup() {
    P="$(demo procs)"
    shm_snapshot >"$BATS_TEST_TMPDIR/shm.before"
}

teardown() {
    assert_no_shm_left
}

# The demo's shared-memory objects now: /dev/shm/conclab-<pid>-*.
shm_snapshot() {
    find /dev/shm -maxdepth 1 -name 'conclab-*' -printf '%f\n' | sort
}

# Any object that appeared during the test and whose creator is gone was left
# behind (other programs on the machine may make their own meanwhile).
assert_no_shm_left() {
    local name pid
    for name in $(shm_snapshot | comm -13 "$BATS_TEST_TMPDIR/shm.before" -); do
        pid=${name#conclab-}
        pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "/dev/shm/$name"
            fail "left /dev/shm/$name behind"
        fi
    done
}

# Run the demo in a session of its own (a child left behind fails the test).
procs() {
    run_in_session --separate-stderr "$P" "$@"
}

# Small sizes per variant: each run takes a few tens of milliseconds.
small() {
    case "$1" in
    fork | vfork-exec | spawn | forkserver) echo --iters 20 ;;
    fork-after-threads | atfork | spawn-instead) echo --iters 5 ;;
    shared-*) echo --iters 100000 ;;
    robust | not-robust) echo --iters 2 ;;
    pipe-queue) echo --iters 300 ;;
    ipc) echo --iters 500 ;;
    shm-vs-copy) echo --iters 3 --mib 1 ;;
    chunk-*) echo --iters 50000 ;;
    sigterm) echo --item-us 500 --term-after-ms 20 ;;
    supervise) echo --deadline-ms 200 ;;
    log-pipe) echo --iters 200 ;;
    esac
}

# A run that must be exact and clean: exit 0, exact, no sanitizer report.
assert_exact() { # what
    [ "$status" -eq 0 ] || fail "$1: exit $status: $output $stderr"
    assert_json '.exact == true' || fail "$1: not exact: $output"
    [[ "$stderr" != *ThreadSanitizer* ]] || fail "$1: TSan report: $stderr"
    [[ "$stderr" != *AddressSanitizer* && "$stderr" != *"runtime error"* ]] ||
        fail "$1: sanitizer report: $stderr"
}

# --- the declaration -------------------------------------------------------

@test "procs --list: 22 variants with their tags" {
    assert_list procs 22
    for v in fork-after-threads not-robust join-before-drain; do
        assert_line --regexp "^$v"$'\thangs\t'
    done
    assert_line --regexp $'^shared-racy\twrong\t'
    assert_line --regexp $'^chunk-lock\tslow\t'
    [ "$(variants_tagged procs correct | wc -l)" -eq 17 ]
    [ "$(variants_tagged procs racy)" = "" ]
}

@test "every variant in one run, default flags: all behave as declared, nothing left behind" {
    procs --quiet
    [ "$status" -eq 0 ] || fail "exit $status: $output $stderr"
    assert_line --partial "all 22 variants behaved as declared"
    [[ "$stderr" != *ThreadSanitizer* ]] || fail "TSan report: $stderr"
    [[ "$stderr" != *"left "*" running"* ]] || fail "a variant left children: $stderr"
}

# --- starting a child -------------------------------------------------------

@test "fork, vfork-exec, spawn, forkserver: every child started and reaped with exit 0" {
    for v in fork vfork-exec spawn forkserver; do
        procs --variant "$v" --iters 30 --json
        assert_exact "$v"
        assert_json '.ops == 30 and .metrics.failed == 0 and .metrics.start_us > 0'
        assert_json '.metrics.thp >= 0 and .metrics.thp <= 2'
    done
}

@test "--rss-mib: the parent really holds the memory, and every method still works" {
    local mib=64
    [ "$SANITIZE" = none ] || mib=16 # sanitizers shadow every touched byte
    for v in fork vfork-exec spawn forkserver; do
        procs --variant "$v" --iters 5 --rss-mib "$mib" --json
        assert_exact "$v --rss-mib $mib"
        assert_json ".metrics.rss_mib >= $mib"
    done
    procs --variant fork --iters 5 --json
    assert_json ".metrics.rss_mib < $mib"
}

# --- fork after threads -------------------------------------------------------

@test "fork-after-threads: exit 3, the child named, waiting for log_lock; it is killed" {
    procs --variant fork-after-threads --timeout 0.5
    [ "$status" -eq 3 ] || fail "exit $status: $stderr"
    [[ "$stderr" == *"watchdog: no progress for 0."* ]]
    [[ "$stderr" == *"T1: 0 of 20 operations done, waits for the child's log lines"* ]]
    [[ "$stderr" =~ child\ [0-9]+\ waits\ for\ log_lock\ in\ its\ first\ log\ call ]] ||
        fail "$stderr"
    [[ "$stderr" == *"copied only the thread that called fork"* ]]
}

@test "atfork and spawn-instead: every child logs its 10 lines, forked while the lock is held" {
    for v in atfork spawn-instead; do
        procs --variant "$v" --iters 8 --json
        assert_exact "$v"
        assert_json '.metrics.children == 8 and .metrics.lines == 80'
    done
}

# --- shared memory --------------------------------------------------------------

@test "shared-mutex and shared-atomic count exactly, from 2 and 3 processes" {
    for v in shared-mutex shared-atomic; do
        for n in 2 3; do
            procs --variant "$v" --procs "$n" --iters 50000 --json
            assert_exact "$v --procs $n"
            assert_json ".threads == $n and .metrics.final == $((n * 50000)) and .metrics.lost == 0"
        done
    done
}

@test "shared-racy loses updates between processes; TSan says nothing (it sees one process)" {
    need_cores 2
    local best=0
    for _ in 1 2 3 4 5; do
        procs --variant shared-racy --iters 500000 --json
        [ "$status" -eq 0 ] || fail "exit $status: $stderr"
        [[ "$stderr" != *ThreadSanitizer* ]] || fail "TSan reported: $stderr"
        assert_json '.exact == false or .metrics.lost == 0'
        assert_json '.metrics.final + .metrics.lost == 1000000'
        best=$(json_field .metrics.lost "$output")
        [ "$best" -gt 0 ] && return 0
        sleep 1
    done
    fail "no update lost in 5 runs"
}

@test "chunk-lock and chunk-nolock: every element transformed exactly once" {
    for v in chunk-lock chunk-nolock; do
        procs --variant "$v" --iters 40000 --procs 3 --json
        assert_exact "$v"
        assert_json '.metrics.wrong == 0 and .ops == 120000'
    done
}

@test "shm-vs-copy: the array comes back doubled both ways, every round" {
    procs --variant shm-vs-copy --iters 4 --mib 2 --json
    assert_exact shm-vs-copy
    assert_json '.metrics.wrong == 0 and .ops == 8'
    assert_json '.metrics.copy_mb_s > 0 and .metrics.shm_mb_s > 0 and .metrics.memcpy_mb_s > 0'
}

# --- robust mutexes ------------------------------------------------------------------

@test "robust: EOWNERDEAD after every killed locker, the data repaired, the sum kept" {
    procs --variant robust --iters 4 --json
    assert_exact robust
    assert_json '.metrics.owner_dead == 4 and .metrics.repaired == 4 and .metrics.sum == 1000'
}

@test "not-robust: exit 3; the parent waits for a lock whose owner was killed" {
    procs --variant not-robust --timeout 0.5
    [ "$status" -eq 3 ] || fail "exit $status: $stderr"
    [[ "$stderr" == *"waits for the vault's lock, whose owner was killed"* ]]
    [[ "$stderr" =~ its\ owner,\ locker\ [0-9]+,\ was\ killed\ holding\ it ]] || fail "$stderr"
}

# --- pipes ------------------------------------------------------------------------------

@test "pipe-queue: every task done exactly once, with 1, 4 and 8 workers" {
    for n in 1 4 8; do
        procs --variant pipe-queue --procs "$n" --iters 2000 --json
        assert_exact "pipe-queue --procs $n"
        assert_json '.ops == 2000 and .metrics.missing == 0 and .metrics.duplicated == 0'
        assert_json '.metrics.wrong == 0'
    done
}

@test "join-before-drain: completes at exactly the pipe's capacity, hangs 4 KiB past it" {
    procs --variant drain-then-join --json
    local cap
    cap=$(json_field .metrics.pipe_capacity "$output")
    [ "$cap" -ge 4096 ]
    procs --variant join-before-drain --bytes "$cap" --json
    assert_exact "join-before-drain at $cap bytes"
    assert_json ".metrics.bytes == $cap"
    procs --variant join-before-drain --bytes $((cap + 4096)) --timeout 0.5
    [ "$status" -eq 3 ] || fail "exit $status: $stderr"
    [[ "$stderr" == *"waits for the child to exit, before reading its output"* ]]
    [[ "$stderr" =~ the\ pipe\ holds\ $cap\ of\ its\ $cap\ bytes:\ child\ [0-9]+\ waits\ in\ write\(\)\ for\ room\ to\ write\ the\ other\ 4096 ]] ||
        fail "$stderr"
    # and by default (capacity + 4 KiB) too
    procs --variant join-before-drain --timeout 0.5
    [ "$status" -eq 3 ]
}

@test "drain-then-join: reads everything, at the default, at 1 byte and at 1 MiB" {
    for b in "" 1 1048576; do
        procs --variant drain-then-join ${b:+--bytes "$b"} --json
        assert_exact "drain-then-join ${b:-default}"
        [ -z "$b" ] || assert_json ".metrics.bytes == $b"
    done
    assert_json '.metrics.bytes > .metrics.pipe_capacity'
}

@test "log-pipe: lines of up to PIPE_BUF never tear, even with a slow reader" {
    for len in 64 1000 4096; do
        procs --variant log-pipe --line-bytes "$len" --iters 300 --procs 4 --slow-reader-us 20 --json
        assert_exact "log-pipe --line-bytes $len"
        assert_json '.metrics.torn == 0 and .metrics.intact == 1200 and .metrics.pipe_buf == 4096'
    done
}

@test "log-pipe: lines larger than the pipe, slow reader: no byte lost, torn lines counted" {
    procs --variant log-pipe --line-bytes 200000 --iters 4 --procs 3 --slow-reader-us 200 --json
    assert_exact "log-pipe --line-bytes 200000"
    assert_json '(.metrics.torn | type) == "number" and .metrics.intact <= 12'
    assert_json '.metrics.pipe_capacity < 200000'
}

# --- IPC -------------------------------------------------------------------------------------

@test "ipc: every mechanism echoes every message at 64 B, 8 KiB and 64 KiB (mq up to 8 KiB)" {
    for size in 64 8192 65536; do
        procs --variant ipc --msg-bytes "$size" --iters 300 --json
        assert_exact "ipc --msg-bytes $size"
        for m in pipe socketpair ring_eventfd ring_futex ring_spin eventfd; do
            assert_json ".metrics.${m}_per_s > 0" || fail "$m at $size: $output"
        done
        if [ "$size" -le 8192 ]; then
            assert_json '.metrics.mq_per_s > 0'
        else
            assert_json '.metrics | has("mq_per_s") | not'
        fi
    done
}

@test "ipc: one mechanism at a time" {
    for m in pipe socketpair mq ring-eventfd ring-futex ring-spin eventfd; do
        procs --variant ipc --mech "$m" --iters 200 --json
        assert_exact "ipc --mech $m"
        assert_json '.ops == 200 and (.metrics | length) == 2'
    done
}

# --- signals and supervision --------------------------------------------------------------

@test "sigterm: the workers drain (nothing lost); SIGKILL ends them mid-item" {
    procs --variant sigterm --procs 3 --item-us 500 --term-after-ms 30 --json
    assert_exact sigterm
    assert_json '.metrics.term_lost == 0 and .metrics.term_done > 0 and .threads == 3'
    assert_json '.metrics.kill_lost >= 0 and .metrics.kill_lost <= 3'
}

@test "sigterm: SIGTERM sent to the demo itself is passed on, and the workers drain" {
    local out="$BATS_TEST_TMPDIR/out"
    setsid "$P" --variant sigterm --term-after-ms 60000 --item-us 500 >"$out" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        grep -q '^procs:' "$out" && break
        sleep 0.1
    done
    sleep 0.3
    kill -TERM "$pid"
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "exit $rc: $(cat "$out")"
    grep -q "SIGTERM from outside, passed on: .* none lost; all 2 workers out" "$out" ||
        fail "$(cat "$out")"
}

@test "supervise: the overrunning children are killed at the deadline, the others finish" {
    local deadline=200
    [ "$SANITIZE" = none ] || deadline=1000
    for wait in pidfd waitpid; do
        for start in fork spawn; do
            procs --variant supervise --wait "$wait" --start "$start" --deadline-ms "$deadline" \
                --procs 4 --late 2 --json
            assert_exact "supervise --wait $wait --start $start"
            assert_json '.metrics.finished == 2 and .metrics.killed == 2'
            assert_line --regexp "killed at the $deadline ms deadline: 3 \(working, step [0-9]+\), 4 "
        done
    done
    procs --variant supervise --late 0 --deadline-ms "$deadline" --json
    assert_exact "supervise --late 0"
    assert_json '.metrics.killed == 0 and .metrics.finished == 4'
    procs --variant supervise --late 4 --deadline-ms "$deadline" --json
    assert_exact "supervise --late 4"
    assert_json '.metrics.killed == 4 and .metrics.finished == 0'
}

# --- bad input, Ctrl-C -----------------------------------------------------------------------

@test "bad input: one line, exit 2" {
    bad_input "$P" <<'EOF'
--variant fork --rss-mib 4097|--rss-mib
--variant fork --rss-mib -1|--rss-mib
--variant shared-mutex --procs 0|--procs
--variant shared-mutex --procs 65|--procs
--variant shared-mutex --threads 2|--threads
--variant ipc --msg-bytes 0|--msg-bytes
--variant ipc --msg-bytes 65537|--msg-bytes
--variant ipc --mech mq --msg-bytes 65536|mq allows at most 8192
--variant ipc --mech eventfd --msg-bytes 64|eventfd carries a count
--variant ipc --mech carrier-pigeon|--mech
--variant log-pipe --line-bytes 31|--line-bytes
--variant log-pipe --line-bytes 1048576 --iters 1000|at most 256 MiB
--variant chunk-lock --procs 64 --iters 1000000|at most 33,554,432
--variant supervise --procs 2 --late 3|--late 3
--variant supervise --wait poll|--wait
--variant supervise --start clone|--start
--variant drain-then-join --bytes 0|--bytes
--variant shm-vs-copy --mib 0|--mib
--variant sigterm --item-us 0|--item-us
EOF
}

@test "a worker mode started by hand with bad arguments says so and exits 2" {
    run --separate-stderr bash -c 'exec -a procs-worker "$1" counter 0 /x y 2 3 0' _ "$P"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"'y' is not a number"* ]]
    run --separate-stderr bash -c 'exec -a procs-worker "$1" juggler 1' _ "$P"
    [ "$status" -eq 2 ]
}

@test "Ctrl-C in every phase of every variant that ends by itself: exit 130" {
    local v
    for v in $(variants_tagged procs '!hangs'); do
        read -ra size <<<"$(small "$v")"
        sigint_every_phase "$P" --variant "$v" "${size[@]}"
    done
}

@test "Ctrl-C during each hang: exit 130 within a second, nothing left behind" {
    local v out="$BATS_TEST_TMPDIR/out"
    for v in $(variants_tagged procs hangs); do
        run_in_session bash -c '"$1" --variant "$2" --timeout 30 >"$3" 2>&1 &
            pid=$!
            for _ in $(seq 100); do grep -q "^procs:" "$3" && break; sleep 0.1; done
            sleep 0.5
            t0=$(date +%s%N); kill -INT $pid; wait $pid; rc=$?
            echo "rc=$rc ms=$((($(date +%s%N) - t0) / 1000000))"' _ "$P" "$v" "$out"
        [[ "$output" =~ rc=130\ ms=([0-9]+) ]] || fail "$v: $output $(cat "$out")"
        [ "${BASH_REMATCH[1]}" -lt 1000 ] || fail "$v: took ${BASH_REMATCH[1]} ms"
        grep -q "^$v: interrupted after 0 of " "$out" || fail "$v: $(cat "$out")"
    done
}
