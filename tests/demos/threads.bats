#!/usr/bin/env bats
# Behaviour of demos/threads: every variant's result and invariants, the
# scheduler states in their order, the memory limits checked before any thread
# and the refusal (exit 4) when the system says no, the bad-input table, Ctrl-C
# in every phase, nothing left behind, and no sanitizer report anywhere. Times
# (stop latency, create cost, memory per thread) are benchmark figures in
# bench/threads.toml; here a time enters only with a margin of 5x or more.

# shellcheck disable=SC2154 # stderr, stderr_lines: set by bats's run
load common

setup() {
    THREADS="$(demo threads)"
}

# Small flags per variant, for the tables below: each run takes well under 0.2 s.
small() {
    case $1 in
    create-join) echo --threads 3 --sleep-ms 5 ;;
    result) echo --threads 3 --sleep-ms 5 ;;
    join-timeout | timedjoin) echo --task-ms 30 --wait-ms 5 ;;
    stop-flag | stop-cond) echo --threads 3 --poll-ms 10 ;;
    detached) echo --beats 5 ;;
    timeline) echo --size 2000000 ;;
    memory) echo --count 50 ;;
    *) ;;
    esac
}

# Distinct kinds, in order, of a trace's thread T: neighbours of one kind merged.
kinds_of() { # csv thread
    awk -F, -v t="$2" 'NR > 1 && $1 == t && $2 != "run" && $2 != last { print $2; last = $2 }' "$1"
}

# Whether the words of $2 appear in $1 in that order (others may come between).
in_order() { # "have..." "want..."
    local -a want
    read -ra want <<<"$2"
    local i=0 w
    for w in $1; do
        [ "$i" -lt "${#want[@]}" ] && [ "$w" = "${want[$i]}" ] && i=$((i + 1))
    done
    [ "$i" -eq "${#want[@]}" ]
}

# --- the declaration -----------------------------------------------------------

@test "threads --list: twelve variants; join-timeout is the wrong one" {
    assert_list threads 12
    for v in create-join shared-vs-private result join-timeout timedjoin stop-flag stop-cond \
        detached thread-local lifecycle timeline memory; do
        assert_line --regexp "^$v"$'\t'
    done
    [ "$(variants_tagged threads wrong)" = join-timeout ]
    [ "$(variants_tagged threads correct | wc -l)" -eq 11 ]
}

@test "the default run: every variant behaves as declared" {
    run "$THREADS" --quiet
    assert_success
    assert_line --partial "all 12 variants behaved as declared"
}

# --- starting, sharing, joining ----------------------------------------------------

@test "create-join: elapsed is the longest sleep, not the sum" {
    run "$THREADS" --variant create-join --threads 10 --sleep-ms 10 --json
    assert_success
    assert_json '.exact and .metrics.longest_ms == 100 and .metrics.sum_ms == 550'
    # the sleeps overlap: the sum is 5.5 times the longest
    assert_json '.metrics.elapsed_ms >= 100 and .metrics.elapsed_ms < 550'
}

@test "create-join --sleep-ms 0: rounds of threads created and joined, counted" {
    run "$THREADS" --variant create-join --threads 4 --sleep-ms 0 --iters 50 --json
    assert_success
    assert_json '.exact and .ops == 200 and .metrics.create_join_us > 0'
    assert_json '.verdict | test("^200 threads created and joined, 4 at a time")'
}

@test "shared-vs-private: one global, one heap block, a stack each, far apart" {
    run "$THREADS" --variant shared-vs-private --threads 8 --json
    assert_success
    assert_json '.exact and .metrics.globals == 1 and .metrics.heap_blocks == 1'
    assert_json '.metrics.stacks == 8 and .metrics.locals_in_own == 8'
    # the locals sit at the same depth of stacks that do not overlap
    assert_json '.metrics.min_gap_kib >= .metrics.stack_kib'
}

@test "result: every value and the error come back through the join" {
    run "$THREADS" --variant result --threads 5 --sleep-ms 1 --json
    assert_success
    assert_json '.exact and .metrics.values == 4 and .metrics.errors == 1 and .metrics.lost == 0'
    assert_json '.verdict | test("task 3: EDOM: no square root of -1")'
}

@test "join-timeout: get_result returns nothing while the task runs (wrong, exit 0)" {
    for _ in 1 2 3; do
        run "$THREADS" --variant join-timeout --task-ms 20 --wait-ms 1 --json
        assert_success
        assert_json '.exact == false and .metrics.empty_results == 1 and .metrics.dropped_results == 1'
        assert_json '.verdict | startswith("wrong: get_result returned nothing")'
    done
}

@test "timedjoin: ETIMEDOUT first, then the real result" {
    run "$THREADS" --variant timedjoin --task-ms 20 --wait-ms 1 --json
    assert_success
    assert_json '.exact and .metrics.empty_results == 1'
    assert_json '.verdict | test("ETIMEDOUT at [0-9]+ ms; the later join got 42")'
}

@test "thread-local: each thread its own value; each connection closed once" {
    run "$THREADS" --variant thread-local --threads 6 --json
    assert_success
    assert_json '.exact and .metrics.own_values == 6 and .metrics.overwritten == 5'
    assert_json '.metrics.closed_once == 6'
}

# --- stopping ------------------------------------------------------------------------

@test "stop-flag and stop-cond: every worker stops, its items all counted" {
    for v in stop-flag stop-cond; do
        run "$THREADS" --variant "$v" --threads 6 --poll-ms 10 --json
        assert_success
        assert_json '.exact and .metrics.stopped == 6' || fail "$v: $output"
        assert_json '.metrics.p50_us <= .metrics.p99_us and .metrics.p99_us <= .metrics.max_us'
    done
}

@test "detached, main returns: the thread dies with the process, heartbeats lost" {
    run_in_session "$THREADS" --variant detached --beats 20 --json
    assert_success
    assert_json '.exact and .metrics.received >= 3 and .metrics.done == 0'
    # main returns after beat 3; beat 20 would come 170 ms later
    assert_json '.metrics.lost > 0 and .metrics.received + .metrics.lost == 20'
}

@test "detached, main calls pthread_exit: the thread writes every beat, then done" {
    run_in_session "$THREADS" --variant detached --main-exit pthread-exit --beats 10 --json
    assert_success
    assert_json '.exact and .metrics.received == 10 and .metrics.lost == 0 and .metrics.done == 1'
    assert_json '.metrics.after_main >= 1'
}

@test "detached: Ctrl-C while the child beats kills it; nothing is left" {
    run_in_session timeout --preserve-status -s INT 0.5 \
        "$THREADS" --variant detached --main-exit pthread-exit --beats 500
    [ "$status" -eq 130 ] || fail "exit $status: $output"
    assert_output --partial "detached: interrupted after"
}

@test "the child mode refuses a wrong command line with exit 2" {
    run --separate-stderr "$THREADS" --heartbeat-child
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"the detached variant's child"* ]]
}

# --- the scheduler's view --------------------------------------------------------------

@test "lifecycle: running, runnable, blocked, sleeping, exited, in that order" {
    local csv="$BATS_TEST_TMPDIR/life.csv"
    run "$THREADS" --variant lifecycle --trace "$csv" --json
    assert_success
    assert_json '.exact and .metrics.samples > 0'
    assert_json '[.metrics.running, .metrics.runnable, .metrics.blocked, .metrics.sleeping,
                  .metrics.exited] | all(. > 0)'
    local t1
    t1=$(kinds_of "$csv" 1 | tr '\n' ' ')
    in_order "$t1" "running runnable blocked sleeping exited" || fail "T1: $t1"
    # the hog that shares T1's CPU: blocked until its turn, then on that CPU, then gone
    local t2
    t2=$(kinds_of "$csv" 2 | tr '\n' ' ')
    in_order "$t2" "blocked running exited" || fail "T2: $t2"
    [ "$(kinds_of "$csv" 2 | tail -1)" = exited ]
}

@test "lifecycle --trace .json: the same states, as Chrome trace events" {
    local json="$BATS_TEST_TMPDIR/life.json"
    run "$THREADS" --variant lifecycle --trace "$json" --quiet
    assert_success
    jq -e '[.traceEvents[] | select(.tid == 1) | .name] | unique
           | contains(["running", "runnable", "blocked", "sleeping", "exited"])' "$json"
}

@test "timeline: the tasks are right; on one CPU they never run at once" {
    local csv="$BATS_TEST_TMPDIR/tl.csv"
    run "$THREADS" --variant timeline --threads 3 --size 20000000 --trace "$csv" --json
    assert_success
    assert_json '.exact and .metrics.tasks_right == 6 and .metrics.cpus_first == 1'
    # one CPU gives at most one CPU-second per second
    assert_json '.metrics.busy_first <= 1.02'
    # the first pass ends when the first of each thread's two run spans ends
    local split
    split=$(awk -F, 'NR > 1 && $2 == "run" && !seen[$1]++ && $4 > m { m = $4 } END { print m }' "$csv")
    # in it, no two threads' running spans overlap: at most one is on the CPU
    local most
    most=$(awk -F, -v s="$split" 'NR > 1 && $2 == "running" && $4 <= s {
            print $3, 1; print $4, -1 }' "$csv" | sort -g -k1,1 -k2,2n |
        awk '{ n += $2; if (n > m) m = n } END { print m + 0 }')
    [ "$most" -eq 1 ] || fail "$most threads running at once on one CPU"
}

# --- memory ---------------------------------------------------------------------------------

@test "memory: every thread created, blocked and joined; resident far below reserved" {
    run "$THREADS" --variant memory --count 300 --json
    assert_success
    assert_json '.exact and .metrics.count == 300 and .ops == 300'
    [ "$SANITIZE" = none ] || return 0 # a sanitizer's memory figures mean nothing
    # a blocked thread touches a few pages of its 8 MiB reservation
    assert_json '.metrics.stack_kib == 8192 and .metrics.rss_kib * 8 < .metrics.virt_mib * 1024'
    run "$THREADS" --variant memory --count 300 --stack-kib 64 --json
    assert_success
    assert_json '.exact and .metrics.stack_kib == 64'
}

@test "memory: 10,000 threads run" {
    [ "$SANITIZE" = none ] || skip "a sanitizer build runs at most 500"
    run "$THREADS" --variant memory --count 10000 --stack-kib 64 --json
    assert_success
    assert_json '.exact and .metrics.count == 10000'
}

@test "memory: a count past the system's limits is refused before any thread, naming it" {
    local tmax pmax maps limit name
    read -r tmax </proc/sys/kernel/threads-max
    read -r pmax </proc/sys/kernel/pid_max
    read -r maps </proc/sys/vm/max_map_count
    limit=$tmax name=threads-max
    [ "$pmax" -lt "$limit" ] && limit=$pmax name=pid_max
    [ $((maps / 2)) -lt "$limit" ] && limit=$((maps / 2)) name=max_map_count
    [ "$limit" -lt 100000 ] || skip "this system allows 100,000 threads"
    [ "$SANITIZE" = none ] || skip "a sanitizer build refuses the count for its own cap first"
    bad_input "$THREADS" <<<"--variant memory --count $((limit + 1))|more than $name allows"
}

@test "memory: a refused pthread_create joins what it made, one line, exit 4" {
    [ "$SANITIZE" = none ] || skip "a sanitizer reserves more address space than the limit"
    run --separate-stderr prlimit --as=$((512 * 1024 * 1024)) "$THREADS" --variant memory --count 10000
    [ "$status" -eq 4 ] || fail "exit $status: $stderr"
    [ "${#stderr_lines[@]}" -eq 1 ] || fail "$stderr"
    [[ "$stderr" =~ ^threads:\ pthread_create:\ .*\;\ created\ [0-9,]+\ of\ 10,000\ threads\ \(limits:\ .*RLIMIT_AS\ 512\ MiB\)$ ]] ||
        fail "$stderr"
    run --separate-stderr prlimit --as=$((512 * 1024 * 1024)) "$THREADS" --variant memory --count 10000 --json
    [ "$status" -eq 4 ]
    assert_json '.refused == "pthread_create" and .exit == 4'
}

@test "memory in a sanitizer build: at most 500 threads, stacks of 256 KiB or more" {
    [ "$SANITIZE" != none ] || skip "a sanitizer build's caps"
    bad_input "$THREADS" <<'EOF'
--variant memory --count 501|at most 500 in a sanitizer build
--variant memory --stack-kib 64|at least 256 in a sanitizer build
EOF
    run "$THREADS" --variant memory --count 500 --stack-kib 256 --json
    assert_success
    assert_json '.exact and .metrics.count == 500'
}

# --- bad input, Ctrl-C, sanitizers ---------------------------------------------------------

@test "bad input: one line naming the flag, exit 2, nothing on stdout" {
    bad_input "$THREADS" <<'EOF'
--variant nope|nope
--threads 0|--threads
--variant lifecycle --threads 2|--threads
--variant memory --threads 2|--threads
--variant result --iters 2|--iters
--sleep-ms -1|--sleep-ms
--variant create-join --sleep-ms 2000 --timeout 1|--sleep-ms
--variant join-timeout --task-ms 10 --wait-ms 10|--wait-ms
--variant timedjoin --task-ms 0|--task-ms
--poll-ms 0|--poll-ms
--poll-ms 1001|--poll-ms
--main-exit never|--main-exit
--beats 4|--beats
--variant timeline --cpus 0|--cpus
--variant timeline --cpus 4097|--cpus
--size 10|--size
--count 0|--count
--count 100001|--count
--variant memory --stack-kib 8|--stack-kib
--variant memory --stack-kib 66|--stack-kib
--stack-kib 65540|--stack-kib
EOF
}

@test "timeline --cpus past this process's CPUs is refused, naming the count" {
    run --separate-stderr "$THREADS" --variant timeline --cpus $(($(nproc) + 1))
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"more than the $(nproc) CPUs"* ]]
}

@test "Ctrl-C in every phase of every variant: exit 130 and the partial result" {
    local v
    for v in $("$THREADS" --list | cut -f1); do
        # shellcheck disable=SC2046 # small's words are separate flags
        sigint_every_phase "$THREADS" --variant "$v" $(small "$v")
    done
}

@test "every variant runs without a sanitizer report, and leaves nothing behind" {
    local v
    for v in $("$THREADS" --list | cut -f1); do
        # shellcheck disable=SC2046
        run_in_session --separate-stderr "$THREADS" --variant "$v" $(small "$v") --quiet
        [ "$status" -eq 0 ] || fail "$v: exit $status: $stderr"
        [[ "$stderr" != *Sanitizer* && "$stderr" != *"runtime error"* ]] || fail "$v: $stderr"
    done
}
