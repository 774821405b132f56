#!/usr/bin/env bats
# The chart scripts (plots/*.gp): each kind drawn from a small fixture in the
# text terminal shows its data, its legend and its title; svg and png come out
# whole; every script goes through the one prelude, plots/common.gp.

bats_require_minimum_version 1.7.0 # bats_load_library
bats_load_library bats-support
bats_load_library bats-assert

: "${CONCLAB_SOURCE:?run through meson test}"
PLOTS="$CONCLAB_SOURCE/plots"
F="$CONCLAB_SOURCE/tests/bench/fixtures/charts"

# gnuplot KIND in the dumb terminal with these assignments; the text in $output
draw() {
    local kind=$1
    shift
    run --separate-stderr gnuplot -e "term='dumb'; title='fixture chart'; prov='host · 0123abc · now'; $*" \
        "$PLOTS/$kind.gp"
    [ "$status" -eq 0 ] || fail "$kind.gp exited $status: $stderr"
    [ -z "$stderr" ] || fail "$kind.gp complained: $stderr"
    assert_output --partial "fixture chart"
    assert_output --partial "host · 0123abc · now"
}

# how many cells of the text chart a plotted line, bar or point took: the
# marks gnuplot's dumb terminal draws with (the frame is |, + and -)
marks() { tr -cd '*#$%@&=ABCDEFGH' <<<"$output" | wc -c; }

@test "bars: every bar, its value and the legend of the classes" {
    draw bars "in='$F/bars.tsv'; logy=1"
    for label in none mutex atomic sharded window correct "racy / wrong" 48 15 2.5 1.3; do
        assert_output --partial "$label"
    done
    [ "$(marks)" -gt 100 ]
}

@test "lines: one line per series, with error bars, and a missing point left out" {
    draw lines "in='$F/lines.tsv'; logx=1; logy=1; xlabel='threads'"
    for label in mutex atomic sharded threads; do assert_output --partial "$label"; done
    [ "$(marks)" -gt 150 ]
    draw lines "in='$F/lines-errors.tsv'; errors=1"
    assert_output --partial mutex
    refute_output --partial "mutex lo" # the interval columns are no series
    [ "$(marks)" -gt 100 ]
}

@test "lines and speedup: the ideal stops at the core count, on log-log axes" {
    draw lines "in='$F/speedup.tsv'; ideal=2; cores=2; logx=1"
    assert_output --partial "ideal: min(x, 2 cores)"
    draw speedup "in='$F/speedup.tsv'; ideal=2; cores=2"
    assert_output --partial "ideal: min(W, 2 cores)"
    assert_output --regexp "threads: Amdahl fit, s = 0\.[0-9]{3}"
    refute_output --partial "seq: Amdahl fit" # the baseline is not fitted
    draw speedup "in='$F/speedup.tsv'; ideal=1"
    assert_output --partial "ideal: W"
    [ "$(marks)" -gt 150 ]
    # the y axis follows the x axis onto a log scale: 1, 2, 4 ... (log2)
    assert_output --regexp $'\n +4 \\|'
    assert_output --regexp $'\n +2 \\|'
    # the ideal's values and the axes, read back from gnuplot after the script
    for kind in lines speedup; do
        run gnuplot -e "in='$F/speedup.tsv'; term='dumb'; ideal=2; cores=2; logx=1" "$PLOTS/$kind.gp" \
            -e 'print sprintf("ideal %g %g %g logy %d", ideal_f(1), ideal_f(2), ideal_f(16), logy)'
        assert_line "ideal 1 2 2 logy 2"
        run gnuplot -e "in='$F/speedup.tsv'; term='dumb'; ideal=1; cores=2; logy=1" "$PLOTS/$kind.gp" \
            -e 'print sprintf("ideal %g logx %d logy %d", ideal_f(16), logx, logy)'
        assert_line "ideal 16 logx 1 logy 2"
    done
}

@test "timeline: a row per thread, and the kinds in the legend" {
    draw timeline "in='$F/timeline.csv'"
    for label in run wait hold "time (ms)"; do assert_output --partial "$label"; done
    [ "$(marks)" -gt 200 ]
}

@test "series: one or two runs' samples, and the watermarks" {
    draw series "in='$F/unbounded.samples.tsv'; in2='$F/bounded.samples.tsv'; label1='unbounded'; label2='bounded'"
    for label in unbounded bounded "time (s)"; do assert_output --partial "$label"; done
    [ "$(marks)" -gt 80 ]
    draw series "in='$F/bounded.samples.tsv'; y='fill_pct'; high=80; low=30"
    for label in "high 80" "low 30"; do assert_output --partial "$label"; done
}

@test "series: several columns of one file as steps, a shaded span, named tics" {
    draw series "in='$F/shutdown.samples.tsv'; ys='answered refused no_reply'; labels=\"answered refused 'no reply'\"; steps=1; shade='draining'; shade_label='draining'"
    for label in answered refused "no reply" draining "time (s)"; do assert_output --partial "$label"; done
    [ "$(marks)" -gt 80 ]
    draw series "in='$F/breaker.samples.tsv'; y='state'; steps=1; shade='down'; ytics=\"('closed' 0, 'half-open' 1, 'open' 2)\""
    for label in closed half-open open down; do assert_output --partial "$label"; done
}

@test "svg and png: both files, whole, for every kind" {
    d=$BATS_TEST_TMPDIR
    while IFS='|' read -r kind vars; do
        run gnuplot -e "out='$d/$kind'; title='t'; $vars" "$PLOTS/$kind.gp"
        assert_success
        grep -q '</svg>' "$d/$kind.svg" || fail "$kind.svg is not a whole SVG"
        [ "$(head -c 8 "$d/$kind.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
            fail "$kind.png is not a PNG"
    done <<TABLE
bars|in='$F/bars.tsv'
lines|in='$F/lines-errors.tsv'; errors=1; colours='3 1'
speedup|in='$F/speedup.tsv'; ideal=2; cores=2
timeline|in='$F/timeline.csv'
series|in='$F/bounded.samples.tsv'
series|in='$F/shutdown.samples.tsv'; ys='answered refused'; steps=1; shade='draining'
TABLE
}

@test "every chart script loads the prelude, and says so when in is missing" {
    for gp in "$PLOTS"/*.gp; do
        [ "$(basename "$gp")" = common.gp ] && continue
        grep -q '^load here(ARG0)."common.gp"$' "$gp" || fail "$gp does not load common.gp"
        ! grep -Eq '^ *set terminal|^do for \[t in' "$gp" || fail "$gp has an output loop of its own"
        run --separate-stderr gnuplot "$gp"
        [ "$status" -eq 2 ] || fail "$gp without in: exit $status"
        [[ "$stderr" == "$(basename "$gp"): set in='file' with -e"* ]] || fail "$gp: $stderr"
    done
    run --separate-stderr gnuplot -e "in='$F/bars.tsv'; term='pdf'" "$PLOTS/bars.gp"
    [ "$status" -eq 2 ] && [[ "$stderr" == "bars.gp: term must be both, svg, png or dumb"* ]]
}
