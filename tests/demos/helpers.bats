#!/usr/bin/env bats
# The helpers of common.bash, each shown to pass where it must and to fail where
# it must: a helper that cannot fail would make every test that uses it pass.
# shellcheck disable=SC2016,SC2154 # $1 for the inner sh; stderr: set by run

load common

# --- json_holds and assert_json ---------------------------------------------------

with_output() { # TEXT CMD...: CMD, with TEXT as the output of a run
    output=$1
    shift
    "$@"
}

@test "json_holds: whether the condition holds, silently" {
    run with_output '{"exact":false}' json_holds '.exact == false'
    assert_success
    assert_output ''
    run with_output '{"exact":true}' json_holds '.exact == false'
    assert_failure
    assert_output ''
}

@test "assert_json passes where the condition holds" {
    with_output '{"exact":true,"metrics":{"lost":0}}' assert_json '.exact and .metrics.lost == 0'
    with_output '{"verdict":"every philosopher ate"}' assert_json '.verdict | startswith("every")'
}

@test "assert_json fails on a false or null condition, and prints the condition and the output" {
    run with_output '{"exact":false,"ops":7}' assert_json '.exact'
    assert_failure
    assert_output --partial 'JSON condition does not hold'
    assert_output --partial '.exact'
    assert_output --partial '"ops":7'
    run with_output '{"exact":true}' assert_json '.metrics.lost'
    assert_failure
    run with_output '{"n":3}' assert_json '.n == 4'
    assert_failure
}

@test "assert_json fails unless the output is exactly one JSON value" {
    run with_output $'{"exact":true}\n{"exact":true}' assert_json '.exact' # two variants' lines
    assert_failure
    run with_output 'exact: 1,000 of 1,000' assert_json '.exact'
    assert_failure
    run with_output '' assert_json 'true'
    assert_failure
    run with_output '{"exact":true}' assert_json '.exact ==' # a broken condition
    assert_failure
}

# --- assert_list ---------------------------------------------------------------

# A fake demo: a script that prints its --list from a file.
demo() {
    echo "$BATS_TEST_TMPDIR/$1"
}

fake_list() { # NAME LINES...: a demo NAME whose --list prints LINES
    local name=$1
    shift
    printf '%s\n' "$@" >"$BATS_TEST_TMPDIR/$name.list"
    printf '#!/bin/sh\ncat "%s"\n' "$BATS_TEST_TMPDIR/$name.list" >"$(demo "$name")"
    chmod +x "$(demo "$name")"
}

@test "assert_list passes on N lines of NAME TAB TAGS TAB DESCRIPTION, and leaves them to assert_line" {
    fake_list good $'none\tracy\tno lock' $'mutex\tcorrect\ta pthread mutex'
    assert_list good 2
    assert_line $'mutex\tcorrect\ta pthread mutex'
}

@test "assert_list fails on another count, a missing field, an empty field or a failing --list" {
    fake_list good $'none\tracy\tno lock' $'mutex\tcorrect\ta pthread mutex'
    run assert_list good 3
    assert_failure
    fake_list two $'none\tracy' $'mutex\tcorrect\ta pthread mutex'
    run assert_list two 2
    assert_failure
    fake_list four $'none\tracy\tno lock\textra'
    run assert_list four 1
    assert_failure
    fake_list notags $'none\t\tno lock'
    run assert_list notags 1
    assert_failure
    printf '#!/bin/sh\nexit 2\n' >"$(demo broken)"
    chmod +x "$(demo broken)"
    run assert_list broken 0
    assert_failure
}

# --- run_in_session ------------------------------------------------------------

alive() { # PID: a process that has not exited (a zombie has)
    ps -o stat= -p "$1" | grep -qv '^Z'
}

@test "run_in_session passes a command whose children are all gone, with its status and output" {
    run_in_session sh -c 'sleep 0.1 & wait; echo out; echo err >&2; exit 3'
    [ "$status" -eq 3 ]
    [ "$output" = $'out\nerr' ]
    run_in_session --separate-stderr sh -c 'echo out; echo err >&2'
    [ "$status" -eq 0 ]
    [ "$output" = out ]
    [ "$stderr" = err ]
}

@test "run_in_session catches a child left behind, names it and kills it" {
    pidfile="$BATS_TEST_TMPDIR/pid"
    # a child that holds the script's stdout open, as a forgotten server would
    run run_in_session sh -c 'sleep 300 & echo $! >"$1"; echo started' sh "$pidfile"
    assert_failure
    assert_output --partial 'left processes behind'
    assert_output --regexp "$(cat "$pidfile") +[^ ]+ +sleep 300"
    ! alive "$(cat "$pidfile")" || fail "the sleep is still alive"
}

@test "run_in_session catches a grandchild whose parent has exited" {
    pidfile="$BATS_TEST_TMPDIR/pid"
    run run_in_session sh -c '(sleep 300 >/dev/null 2>&1 & echo $! >"$1") ' sh "$pidfile"
    assert_failure
    assert_output --partial 'sleep 300'
    ! alive "$(cat "$pidfile")" || fail "the sleep is still alive"
}
