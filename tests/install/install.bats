#!/usr/bin/env bats
# `meson install` into a temporary DESTDIR: every chapter as conclab-NAME, the
# conclab front-end beside them, a man page each, the tutorial. Then the installed
# commands run from there, as a teacher on a lab machine would type them.
# shellcheck disable=SC2154 # stderr: set by bats's run

load ../demos/common

: "${CONCLAB_MESON:?run through meson test}"

setup_file() {
    # bats removes its temporary folders, and this DESTDIR with them, at the end.
    export ROOT="$BATS_FILE_TMPDIR/root"
    export BIN="$ROOT$CONCLAB_BINDIR" MAN="$ROOT$CONCLAB_MANDIR/man1" DOC="$ROOT$CONCLAB_DOCDIR"
    "$CONCLAB_MESON" install -C "$CONCLAB_BUILD" --no-rebuild --quiet --destdir "$ROOT" \
        >"$BATS_FILE_TMPDIR/install.log" 2>&1 || echo $? >"$BATS_FILE_TMPDIR/install.status"
}

# A PATH without the folder of the installed commands: only the front-end finds them.
SYSTEM_PATH=/usr/bin:/bin

@test "meson install puts each chapter, the front-end, the man pages and the tutorial in place" {
    [ ! -e "$BATS_FILE_TMPDIR/install.status" ] || fail "$(cat "$BATS_FILE_TMPDIR/install.log")"
    [ -x "$BIN/conclab" ]
    for ch in $CONCLAB_DEMOS; do
        [ -x "$BIN/conclab-$ch" ] || fail "no $BIN/conclab-$ch"
        if [ "$CONCLAB_MAN_PAGES" = yes ]; then
            [ -f "$MAN/conclab-$ch.1" ] || fail "no man page for $ch"
        fi
    done
    [ "$CONCLAB_MAN_PAGES" = no ] || [ -f "$MAN/conclab.1" ]
    # the tutorial, and the README and LICENSE beside it; its note on commands
    [ -f "$DOC/README.md" ] && [ -f "$DOC/LICENSE" ] && [ -f "$DOC/tutorial/img/race-variants.svg" ]
    for page in "$CONCLAB_SOURCE"/tutorial/*.md; do
        cmp "$page" "$DOC/tutorial/${page##*/}"
    done
    grep -q 'use the build tree' "$DOC/tutorial/README.md"
    # nothing but the front-end and the chapters in bindir
    run ls "$BIN"
    [ "${#lines[@]}" -eq $(($(wc -w <<<"$CONCLAB_DEMOS") + 1)) ]
}

@test "conclab --list: every chapter, in order, with the chapter's own description" {
    run --separate-stderr env PATH="$SYSTEM_PATH" "$BIN/conclab" --list
    assert_success
    [ -z "$stderr" ]
    read -ra chapters <<<"$CONCLAB_DEMOS"
    [ "${#lines[@]}" -eq "${#chapters[@]}" ]
    for i in "${!chapters[@]}"; do
        ch=${chapters[i]}
        description=$("$BIN/conclab-$ch" --help | sed -n 2p)
        [ -n "$description" ]
        [[ "${lines[i]}" =~ ^$ch\ +(.*)$ ]] || fail "line $i: ${lines[i]}"
        [ "${BASH_REMATCH[1]}" = "$description" ] || fail "$ch: '${BASH_REMATCH[1]}'"
    done
}

@test "conclab race --variant mutex runs the installed conclab-race" {
    run --separate-stderr env PATH="$SYSTEM_PATH" "$BIN/conclab" race --variant mutex
    assert_success
    assert_line --regexp '^mutex \[correct\]: '
    assert_line --regexp '^  => exact: [0-9,]+ of [0-9,]+ increments counted$'
    run --separate-stderr env PATH="$SYSTEM_PATH" "$BIN/conclab" race --variant mutex \
        --threads 3 --iters 1000 --json
    assert_success
    assert_json '.chapter == "race" and .variant == "mutex" and .exact and .metrics.final == 3000'
}

@test "the front-end runs the chapter beside it before one in PATH, and then one in PATH" {
    t=$BATS_TEST_TMPDIR
    mkdir "$t/decoy" "$t/alone" "$t/link"
    printf '#!/bin/sh\necho decoy\n' >"$t/decoy/conclab-race"
    chmod +x "$t/decoy/conclab-race"
    version=$("$BIN/conclab-race" --version)
    # beside it, ahead of PATH
    run env PATH="$t/decoy:$SYSTEM_PATH" "$BIN/conclab" race --version
    assert_success
    assert_output "$version"
    # through a symbolic link: the folder of the file it points to
    ln -s "$BIN/conclab" "$t/link/conclab"
    run env PATH="$t/decoy:$SYSTEM_PATH" "$t/link/conclab" race --version
    assert_output "$version"
    # a copy alone in its folder: from PATH
    cp "$BIN/conclab" "$t/alone/"
    run env PATH="$SYSTEM_PATH:$BIN" "$t/alone/conclab" race --version
    assert_success
    assert_output "$version"
    run env PATH="$t/decoy:$SYSTEM_PATH" "$t/alone/conclab" race
    assert_output decoy
    # nowhere: one line, and the shell's 127 for a missing command
    run -127 --separate-stderr env PATH="$SYSTEM_PATH" "$t/alone/conclab" race
    [ -z "$output" ]
    [ "$stderr" = "conclab: conclab-race is neither in $t/alone nor in PATH" ]
    # --list says which are missing, and still lists every chapter
    run env PATH="$SYSTEM_PATH" "$t/alone/conclab" --list
    assert_success
    local first=${CONCLAB_DEMOS%% *}
    assert_line --index 0 --regexp "^$first +\\(conclab-$first is not installed\\)\$"
}

@test "bad input to the front-end: exit 2 and one line on stderr" {
    run env PATH="$SYSTEM_PATH" "$BIN/conclab" race --variant nosuch
    [ "$status" -eq 2 ] # the chapter's own bad input, passed through
    while IFS='|' read -r args message; do
        read -ra argv <<<"$args"
        run --separate-stderr "$BIN/conclab" "${argv[@]}"
        [ "$status" -eq 2 ] || fail "'$args' gave exit $status"
        [ -z "$output" ] || fail "'$args' printed on stdout: $output"
        [ "$stderr" = "conclab: $message" ] || fail "'$args': $stderr"
    done <<TABLE
nosuch|no chapter 'nosuch' (allowed: ${CONCLAB_DEMOS// /, })
|no chapter given (conclab --list names them)
--frobnicate|unknown option '--frobnicate' (conclab --help lists them)
--list extra|--list: unexpected argument 'extra'
--version --list|--version: unexpected argument '--list'
TABLE
}

@test "conclab --help and --version" {
    run --separate-stderr "$BIN/conclab" --help
    assert_success
    assert_line --index 0 'Usage: conclab CHAPTER [OPTION]...'
    assert_output --partial '--list'
    run --separate-stderr "$BIN/conclab" --version
    assert_success
    assert_output --regexp '^conclab [0-9]+\.[0-9]+\.[0-9]+$'
    [ "${output#conclab }" = "$("$BIN/conclab-race" --version | sed 's/.* //')" ]
}

@test "every man page renders, with its NAME and SYNOPSIS" {
    [ "$CONCLAB_MAN_PAGES" = yes ] || skip "help2man was not found: no man pages"
    command -v groff >/dev/null || skip "groff is not installed"
    cmds=(conclab)
    for ch in $CONCLAB_DEMOS; do cmds+=("conclab-$ch"); done
    for cmd in "${cmds[@]}"; do
        # plain text (no bold, underline or colour), lines too long to break, and
        # every groff warning on
        run --separate-stderr groff -man -Tutf8 -ww -P-cbou -rLL=500n "$MAN/$cmd.1"
        assert_success
        [ -z "$stderr" ] || fail "$cmd.1: $stderr"
        description=$("$BIN/$cmd" --help | sed -n 2p)
        # each heading, and its text on the next line (bats drops the empty lines)
        [ "${lines[1]}" = NAME ] && [ "${lines[3]}" = SYNOPSIS ] || fail "$cmd.1: $output"
        [ "${lines[2]}" = "       $cmd - $description" ] || fail "$cmd.1's NAME: ${lines[2]}"
        [[ "${lines[4]}" =~ ^\ {7}$cmd\ .*\[OPTION\]\.\.\.$ ]] || fail "$cmd.1's SYNOPSIS: ${lines[4]}"
        assert_line --regexp '^ +--help'
    done
}
