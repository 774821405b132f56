# Shared by the demo tests: paths, the build's sanitizer, and small helpers.
bats_require_minimum_version 1.5.0
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${CONCLAB_BUILD:?run through meson test}"
SANITIZE="${CONCLAB_SANITIZE:-none}"

demo() { # path of a demo program
    echo "$CONCLAB_BUILD/demos/$1/$1"
}

under_tsan() { [ "$SANITIZE" = thread ]; }

skip_under_tsan() { under_tsan && skip "${1:-not in the ThreadSanitizer build}" || true; }

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

# Field of a JSON line: json_field '.metrics.lost' "$line"
json_field() {
    jq -r "$1" <<<"$2"
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
