# Shared by the demo tests: paths, the build's sanitizer, and small helpers.
# shellcheck disable=SC2154 # status, output, lines, stderr: set by bats's run
bats_require_minimum_version 1.7.0 # bats_load_library
bats_load_library bats-support
bats_load_library bats-assert

: "${CONCLAB_BUILD:?run through meson test}"
SANITIZE="${CONCLAB_SANITIZE:-none}"

demo() { # path of a demo program
    echo "$CONCLAB_BUILD/demos/$1/$1"
}

under_tsan() { [ "$SANITIZE" = thread ]; }

skip_under_tsan() { if under_tsan; then skip "${1:-not in the ThreadSanitizer build}"; fi; }

# The exit status of a run that includes a racy variant: 0, or TSan's 66 after its report.
assert_racy_success() {
    if under_tsan; then
        [ "$status" -eq 66 ] || fail "exit $status, expected TSan's 66"
    else
        assert_success
    fi
}

only_under_tsan() { under_tsan || skip "ThreadSanitizer build only"; }

need_cores() { # a race needs real parallelism to show itself
    [ "$(nproc)" -ge "${1:-2}" ] || skip "needs ${1:-2} cores"
}

# Variants of a demo whose tags include (or exclude, with !) a tag.
variants_tagged() { # demo tag
    local want="$2" neg=""
    [ "${want#!}" != "$want" ] && { neg=1; want="${want#!}"; }
    "$(demo "$1")" --list | awk -F'\t' -v t="$want" -v neg="$neg" '{
        has = ("," $2 ",") ~ ("," t ",");
        if ((has && !neg) || (!has && neg)) print $1 }'
}

# The value of a field, kept for later: n=$(json_field .metrics.pauses "$output").
# To check a field, assert_json.
json_field() {
    jq -r "$1" <<<"$2"
}

# json_holds EXPR: whether the jq condition EXPR holds for $output, which must be
# one JSON value (the --json line of a one-variant run). For retry loops.
json_holds() {
    jq -se "length == 1 and (.[0] | $1)" <<<"$output" >/dev/null
}

# assert_json EXPR: json_holds EXPR, or fail printing the condition and the output.
assert_json() {
    json_holds "$1" ||
        batslib_print_kv_single_or_multi 10 condition "$1" output "$output" |
        batslib_decorate 'JSON condition does not hold' | fail
}

# assert_list DEMO N: DEMO --list succeeds with N lines, each NAME TAB TAGS TAB
# DESCRIPTION, none of the three empty. Leaves $output and $lines to assert_line.
assert_list() {
    local line shape=$'^[^\t]+\t[^\t]+\t[^\t]+$'
    run "$(demo "$1")" --list
    assert_success || return
    [ "${#lines[@]}" -eq "$2" ] || {
        fail "$1 --list: ${#lines[@]} lines, expected $2: $output"
        return
    }
    for line in "${lines[@]}"; do
        [[ "$line" =~ $shape ]] || {
            fail "$1 --list: '$line' is not NAME TAB TAGS TAB DESCRIPTION"
            return
        }
    done
}

# run_in_session [run's flags] CMD...: `run` CMD in a session of its own, then
# fail if any process of that session outlived it (a child, a server, a helper
# that CMD started and did not stop); those are named, then killed. CMD's output
# goes through files, so that a process left behind holds no pipe of `run` open;
# where `run` merges them, stdout comes before stderr. Zombies count as gone
# (they have exited; whoever inherits them reaps them), and a process that starts
# a session of its own, as a daemon does, escapes the check.
run_in_session() {
    local -a flags=() pids
    while [[ "${1-}" == -* || "${1-}" == '!' ]]; do
        flags+=("$1")
        shift
    done
    local d left rc=0
    d=$(mktemp -d "$BATS_TEST_TMPDIR/session.XXXXXX")
    # the session's leader: a shell that writes down its pid, the session id
    # shellcheck disable=SC2016
    run "${flags[@]}" setsid -w sh -c 'd=$1; shift; echo "$$" >"$d/sid"
        "$@" >"$d/out" 2>"$d/err"; s=$?
        cat "$d/out"; cat "$d/err" >&2; exit "$s"' sh "$d" "$@" || rc=$? # run -N: a wrong status
    left=$(ps -o pid=,stat=,args= -s "$(cat "$d/sid")" | awk '$2 !~ /^Z/')
    [ -z "$left" ] && return "$rc"
    mapfile -t pids < <(awk '{ print $1 }' <<<"$left")
    kill -KILL "${pids[@]}" 2>/dev/null || true
    # SIGKILL lands at once, but not before kill returns: wait until they are gone
    for _ in {1..100}; do
        ps -o stat= -p "$(IFS=,; echo "${pids[*]}")" | grep -qv '^Z' || break
        sleep 0.05
    done
    fail "$* left processes behind:"$'\n'"$left"
}

# No sanitizer report in $stderr (set by run --separate-stderr); WHAT names the run.
assert_clean() { # what
    [[ "$stderr" != *ThreadSanitizer* ]] || fail "$1: TSan report: $stderr"
    [[ "$stderr" != *AddressSanitizer* && "$stderr" != *LeakSanitizer* &&
        "$stderr" != *"runtime error"* ]] || fail "$1: sanitizer report: $stderr"
}

# ctrl_c_group SECONDS CMD...: CMD in a session of its own and, after SECONDS, a
# SIGINT to its whole process group, as a terminal's Ctrl-C sends it. CMD must exit
# 130 within 1 s with its partial result, and nothing of the group may be left.
ctrl_c_group() {
    local delay=$1 d leader pgid t0 rc=0 ms left
    shift
    d=$(mktemp -d "$BATS_TEST_TMPDIR/ctrlc.XXXXXX")
    # ThreadSanitizer itself sleeps 1 s at exit (atexit_sleep_ms) when threads remain
    # shellcheck disable=SC2016 # $1 for the inner sh
    TSAN_OPTIONS="${TSAN_OPTIONS-} atexit_sleep_ms=0" setsid sh -c 'echo $$ >"$1/pgid"; shift; exec "$@"' \
        sh "$d" "$@" >"$d/out" 2>"$d/err" &
    leader=$!
    sleep "$delay"
    pgid=$(cat "$d/pgid")
    t0=$(date +%s%N)
    kill -INT -- "-$pgid"
    wait "$leader" || rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$rc" -eq 130 ] || fail "$*: exit $rc: $(cat "$d/out" "$d/err")"
    [ "$ms" -lt 1000 ] || fail "$*: took $ms ms to stop"
    grep -q "interrupted after" "$d/out" || fail "$*: $(cat "$d/out")"
    left=$(ps -o pid=,stat=,args= -s "$pgid" | awk '$2 !~ /^Z/') || true
    [ -z "$left" ] || fail "$* left: $left"
}

# best_of N KEY MIN EACH CMD...: run CMD (a demo with --json) up to N times, a second
# apart, until the jq expression KEY of its output exceeds MIN. Every run must exit 0,
# be exact, and satisfy the jq condition EACH. Fails when no run got above MIN. A
# bound that needs idle cores is checked this way: another program can take a core
# away for a while, and the best of several runs is what the demo can do.
best_of() {
    local n=$1 key=$2 min=$3 each=$4 best=0 i
    shift 4
    for ((i = 1; i <= n; i++)); do
        run --separate-stderr "$@"
        [ "$status" -eq 0 ] || fail "exit $status: $stderr"
        jq -e ".exact and ($each)" <<<"$output" >/dev/null || fail "not exact, or not $each: $output"
        best=$(jq -r --argjson b "$best" "[$key, \$b] | max" <<<"$output")
        jq -en --argjson b "$best" "\$b > $min" >/dev/null && return 0
        sleep 1
    done
    fail "$key at best $best, not above $min"
}

# bad_input DEMO, with a table on stdin, one case a line: ARGS|MENTION. Every case
# must exit 2 with one line on stderr that mentions MENTION, and nothing on stdout.
bad_input() {
    local exe=$1 args mention
    local -a argv
    while IFS='|' read -r args mention; do
        read -ra argv <<<"$args"
        run --separate-stderr "$exe" "${argv[@]}"
        [ "$status" -eq 2 ] || fail "'$args' gave exit $status"
        [ "${#stderr_lines[@]}" -eq 1 ] || fail "'$args' printed ${#stderr_lines[@]} lines: $stderr"
        [[ "$stderr" == *"$mention"* ]] || fail "'$args': '$stderr' lacks '$mention'"
        [ -z "$output" ] || fail "'$args' printed on stdout: $output"
    done
}

# sigint_every_phase DEMO ARGS...: lib raises SIGINT at the start of each phase
# (CONCLAB_TEST_SIGINT_AT, its test hook); every run must end with exit 130 and the
# partial result, naming the phase outside the run phase.
sigint_every_phase() {
    local exe=$1 phase
    shift
    for phase in setup run check report teardown; do
        run --separate-stderr env CONCLAB_TEST_SIGINT_AT="$phase" "$exe" "$@"
        [ "$status" -eq 130 ] || fail "$* at $phase: exit $status: $output $stderr"
        [[ "$output" == *"interrupted after "*" operations"* ]] || fail "$* at $phase: $output"
        [ "$phase" = run ] || [[ "$output" == *"(in $phase)" ]] || fail "$* at $phase: $output"
    done
}
