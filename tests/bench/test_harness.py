"""pytest: the harness's data functions (bench/harness/), its TOML schema, its
--compare of v1 and v2 folders, and its process control. bench.bats drives the
whole harness through its command line; these pin the pieces down exactly."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE / "bench"))

from harness import compare, cpu, data, experiments, figures, proc, report, schema, stats  # noqa: E402
from harness.files import OutDir  # noqa: E402

V1 = SOURCE / "tests" / "bench" / "fixtures" / "v1"
XS = [1.0, 1.1, 0.9, 1.05, 0.95, 1.2, 0.85, 1.0, 1.02, 0.98]


# ------------------------------------------------------------ intervals
def test_order_statistic_ranks_are_the_narrowest_at_95_percent():
    assert [stats.order_statistic_ranks(n) for n in (6, 7, 8, 9)] == [(1, 6), (1, 7), (1, 8), (2, 8)]


def test_fewer_than_6_samples_have_no_interval_and_no_verdict():
    e = stats.estimate([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (e.value, e.lo, e.hi, e.n, e.method) == (3.0, None, None, 5, "")
    assert not e.settled
    assert stats.check(e, stats.parse_goal(">= 1")) == "n=5"
    assert stats.fmt_estimate(e, "×") == "3× (n=5)"


def test_6_to_9_samples_use_the_order_statistics():
    e = stats.estimate([5, 1, 4, 2, 3, 6])
    assert (e.value, e.lo, e.hi, e.method) == (3.5, 1, 6, "order statistics")
    e = stats.estimate([9, 1, 8, 2, 7, 3, 6, 4, 5])
    assert (e.value, e.lo, e.hi, e.n) == (5, 2, 8, 9)


def test_10_or_more_use_the_bootstrap_with_its_fixed_seed():
    e = stats.estimate(XS)
    assert (e.value, e.lo, e.hi, e.n, e.method) == (1.0, 0.94, 1.06, 10, "bootstrap")
    assert e.settled  # 0.94 to 1.06 lies within ±10% of 1
    e = stats.estimate([x * 1.5 for x in XS] + [1.6])
    assert (e.value, e.lo, e.hi, e.n) == (1.5, 1.4249999999999998, 1.6, 11)
    assert stats.estimate(XS) == stats.estimate(list(reversed(XS)))  # the order of rounds does not matter


def test_settled_means_within_10_percent_of_the_value():
    assert stats.Estimate(2.0, 1.8, 2.2, 9, "order statistics").settled
    assert not stats.Estimate(2.0, 1.79, 2.2, 9, "order statistics").settled
    assert not stats.Estimate(2.0, 1.8, 2.21, 9, "order statistics").settled
    assert not stats.Estimate(2.0, n=4).settled


def test_none_and_nan_samples_are_left_out():
    assert stats.estimate([None, float("nan"), 1.0]).n == 1
    assert stats.estimate([]).value is None


# ----------------------------------------------------------------- goals
@pytest.mark.parametrize(
    "goal, lo, hi, want",
    [
        (">= 3", 3.0, 4.0, "PASS"),
        (">= 3", 2.0, 2.9, "FAIL"),
        (">= 3", 2.9, 3.1, "UNSETTLED"),
        ("> 1.2", 1.2, 1.5, "UNSETTLED"),
        ("> 1.2", 1.0, 1.2, "FAIL"),
        ("<= 0.5 s", 0.1, 0.5, "PASS"),
        ("< 0.1", 0.1, 0.2, "FAIL"),
        ("0.8 to 1.25", 0.9, 1.1, "PASS"),
        ("0.8 to 1.25", 0.7, 0.9, "UNSETTLED"),
        ("0.8 to 1.25", 1.3, 1.4, "FAIL"),
        ("0.25 ± 0.05", 0.21, 0.29, "PASS"),
        ("0.25 ± 0.05", 0.31, 0.4, "FAIL"),
    ],
)
def test_a_check_passes_fails_or_is_unsettled_by_the_whole_interval(goal, lo, hi, want):
    e = stats.Estimate((lo + hi) / 2, lo, hi, 9, "order statistics")
    assert stats.check(e, stats.parse_goal(goal)) == want


def test_checks_without_a_goal_or_a_value():
    assert stats.check(stats.Estimate(1.0, 0.9, 1.1, 9), None) == "info"
    assert stats.check(stats.Estimate(None), stats.parse_goal(">= 1")) == "n/a"


def test_a_goal_that_is_not_understood_is_an_error():
    with pytest.raises(ValueError, match="goal 'about 3'"):
        stats.parse_goal("about 3")


# -------------------------------------------------------------- agreement
def test_b_over_a_by_bootstrap_when_both_runs_have_10_rounds():
    r = stats.ratio_estimate(XS, [x * 1.5 for x in XS])
    assert (r.value, r.method, r.n) == (1.5, "bootstrap", 10)
    assert (r.lo, r.hi) == (1.3785714285714283, 1.6276595744680853)
    assert not stats.agrees(r)


def test_b_over_a_from_the_ranks_of_all_ratios_below_10():
    # the Mann-Whitney critical values: n = m = 6..9 at 5% two-sided, U <= 5, 8, 13, 17
    for n, u in ((6, 5), (7, 8), (8, 13), (9, 17)):
        c = stats.rank_sum_counts(n, n)
        assert sum(c) == math.comb(2 * n, n)
        assert sum(c[: u + 1]) / sum(c) <= 0.025 < sum(c[: u + 2]) / sum(c)
    r = stats.ratio_estimate(XS[:7], [x * 1.5 for x in XS[:8]])
    assert (r.value, r.lo, r.hi, r.n, r.method) == (1.5, 1.2954545454545452, 1.7368421052631582, 7, "rank")
    r = stats.ratio_estimate(XS[:6], XS[:6])  # 36 ratios: the 6th smallest to the 6th largest
    d = sorted(y / x for x in XS[:6] for y in XS[:6])
    assert (r.lo, r.hi) == pytest.approx((d[5], d[30]))
    assert stats.ratio_estimate([-1.0] * 7, XS[:7]).has_interval is False  # no logs of a sample at 0 or below


def test_runs_agree_when_b_over_a_lies_within_090_to_110():
    assert stats.agrees(stats.Estimate(1.0, 0.9, 1.1, 10, "bootstrap"))
    assert not stats.agrees(stats.Estimate(1.0, 0.89, 1.05, 10, "bootstrap"))
    assert not stats.agrees(stats.Estimate(1.0, n=3))
    r = stats.ratio_estimate(XS, XS)  # a run against itself: 1, inside
    assert (r.value, r.lo, r.hi) == (1.0, 0.919047619047619, 1.0851063829787235) and stats.agrees(r)


def test_fmt_keeps_three_significant_digits():
    assert [stats.fmt(x) for x in (None, 0, 1.0, 0.098512, 23.456, 999.6, 4241.4, -0.01234)] == [
        "–", "0", "1", "0.0985", "23.5", "1000", "4241", "-0.0123"
    ]  # fmt: skip


# ------------------------------------------------------- configurations
VARIANTS = [("none", ["racy"]), ("mutex", ["correct"]), ("abba", ["hangs", "lock-order"]), ("atomic", ["correct"])]


def test_selectors_never_pick_a_variant_that_hangs():
    assert data.expand_values("@all", VARIANTS, 2) == ["none", "mutex", "atomic"]
    assert data.expand_values("@tag:correct", VARIANTS, 2) == ["mutex", "atomic"]
    assert data.expand_values("@notag:correct", VARIANTS, 2) == ["none"]
    assert data.expand_values([1, 2], VARIANTS, 2) == ["1", "2"]
    assert data.expand_values("@cpus:4", VARIANTS, 2) == ["2"]
    assert data.expand_values("@cpus:4", VARIANTS, 8) == ["4"]


def test_configurations_vary_the_first_parameter_fastest_less_the_excluded():
    got = data.configurations({"v": ["a", "b"], "n": ["1", "2"]}, [{"v": "b", "n": ["1"]}])
    assert got == [{"v": "a", "n": "1"}, {"v": "a", "n": "2"}, {"v": "b", "n": "2"}]


# ------------------------------------------------------------ merging rounds
def hf_round(times, codes=None):
    """One round of hyperfine's JSON: one run per configuration."""
    codes = codes or [0] * len(times)
    return {
        "results": [
            {"command": f"c{i}", "times": [t], "exit_codes": [c], "user": 0.01, "system": 0.0}
            for i, (t, c) in enumerate(zip(times, codes))
        ]
    }


CONFIGS = [{"variant": "mutex", "threads": "2"}, {"variant": "atomic", "threads": "2"}]


def test_merging_rounds_keeps_each_round_in_order_and_recomputes_the_statistics():
    m = data.merge_rounds([hf_round([1.0, 0.5]), hf_round([3.0, 0.4]), hf_round([2.0, 0.9], [0, 1])], CONFIGS)
    assert m["rounds"] == 3
    a, b = m["results"]
    assert a["times"] == [1.0, 3.0, 2.0] and a["median"] == 2.0 and a["mean"] == 2.0
    assert (a["min"], a["max"], a["stddev"]) == (1.0, 3.0, 1.0)
    assert b["exit_codes"] == [0, 0, 1] and b["parameters"] == CONFIGS[1]
    csv_text = data.hyperfine_csv(m, ["variant", "threads"])
    assert csv_text.splitlines()[0] == "command,mean,stddev,median,user,system,min,max,parameter_threads,parameter_variant"
    assert csv_text.splitlines()[1] == "c0,2.0,1.0,2.0,0.01,0.0,1.0,3.0,2,mutex"


def metric(variant, rep, ops, ns, **m):
    return {
        "variant": variant, "ops": ops, "ns_per_op": ns, "tags": ["correct"], "metrics": m,
        "_bench": {"experiment": "x", "params": {"variant": variant, "threads": "2"}, "rep": rep, "exit": 0},
    }  # fmt: skip


LINES = [metric("mutex", 1, 100, 20.0, lost=0), metric("atomic", 1, 200, 5.0, lost=1), metric("atomic", 2, 200, 7.0, lost=3)]


def test_a_ratio_is_the_median_of_the_rounds_paired_ratios():
    m = data.merge_rounds([hf_round([1.0, 0.5]), hf_round([2.0, 0.2]), hf_round([4.0, 1.0])], CONFIGS)
    rows = data.derive_rows(m, LINES, "x", ["lost"], {"variant": "mutex"})
    mutex, atomic = rows
    # atomic does twice the ops: each round's (t / 200) / (t_mutex / 100)
    assert atomic["ratios"] == [0.25, 0.05, 0.125]
    assert atomic["ratio"] == 0.125 and atomic["speedup"] == 8.0
    assert mutex["ratio"] == 1.0
    assert atomic["ns_op"] == 0.5 / 200 * 1e9 and atomic["inproc_ns_op"] == 6.0
    assert atomic["metrics"] == {"lost": 2.0} and atomic["metrics_runs"] == 2
    assert atomic["ops_per_s"] == 400.0


def test_a_failed_run_leaves_its_row_without_ns_op_or_ratio():
    m = data.merge_rounds([hf_round([1.0, 0.5], [0, 2])], CONFIGS)
    rows = data.derive_rows(m, LINES, "x", [], {"variant": "mutex"})
    assert rows[1]["ns_op"] is None and rows[1]["ratio"] is None and not rows[1]["ok"]
    assert rows[1]["exit_codes"] == [2]
    # a watchdog experiment expects exit 3
    m = data.merge_rounds([hf_round([1.0, 0.5], [3, 3])], CONFIGS)
    assert all(r["ok"] for r in data.derive_rows(m, [], "x", [], None, expect_exit=3))


# ------------------------------------------------------------------- tables
def rows_for_tables():
    m = data.merge_rounds([hf_round([0.001, 0.002]), hf_round([0.003, 0.002])], CONFIGS)
    return data.derive_rows(m, LINES, "x", ["lost"], {"variant": "mutex"})


def test_the_tsv_has_the_documented_columns():
    tsv = data.rows_tsv(rows_for_tables(), ["variant", "threads"], ["lost"]).splitlines()
    assert tsv[0].split("\t") == ["variant", "threads"] + data.ROW_FIELDS + ["lost", "tags", "exit_codes"]
    assert tsv[1].split("\t")[:4] == ["mutex", "2", "2", "0.002"]
    assert tsv[1].split("\t")[-3:] == ["0", "correct", "0"]


def test_the_markdown_table_puts_fixed_parameters_above():
    md = data.rows_md(rows_for_tables(), ["variant", "threads"], ["lost"], {"variant": "mutex"}).splitlines()
    assert md[0] == "Fixed: `threads` = 2."
    assert md[1] == (
        "| variant | tags | median ms | min ms | max ms | ns/op (median) | ns/op min–max | in-process ns/op | "
        "× mutex | lost | exit |"
    )
    assert md[3] == "| mutex | correct | 2 | 1 | 3 | 20000 | 10000–30000 | 20 | 1 | 0 | 0 |"
    assert md[4] == "| atomic | correct | 2 | 2 | 2 | 10000 | 10000–10000 | 6 | 0.667 | 2 | 0 |"


def test_the_takeaway_names_the_fastest_and_slowest_correct_configurations():
    assert data.takeaway(rows_for_tables(), ["variant", "threads"]) == (
        "**Takeaway** (computed from this run): of the correct configurations, the fastest is "
        "`variant=atomic` at 10000 ns/op and the slowest `variant=mutex` at 20000 ns/op, 2× apart."
    )
    assert data.takeaway(rows_for_tables()[:1], ["variant"]) is None


def test_chart_inputs():
    rows = rows_for_tables()
    # two rounds, two runs: no interval, so no error bar (both ends at the value)
    assert data.bars_tsv(rows, "variant", "ns_op").splitlines()[:2] == ["variant\tns_op\tlo\thi\tclass", "mutex\t20000\t20000\t20000\tcorrect"]
    assert data.bars_tsv(rows, "variant", "metric:lost").splitlines()[2] == "atomic\t2\t2\t2\tcorrect"
    wide = data.lines_tsv(rows, "threads", "variant", "inproc_ns_op").splitlines()
    assert wide == ["threads\tmutex\tatomic\tmutex lo\tatomic lo\tmutex hi\tatomic hi", "2\t20\t6\t20\t6\t20\t6"]
    assert data.wide_tsv("x", ["a", "b"], {("10", "a"): 1.5, ("2", "b"): None}).splitlines() == [
        "x\ta\tb", "2\tNaN\tNaN", "10\t1.5\tNaN"
    ]  # fmt: skip


def test_error_bars_are_the_95_percent_interval_of_each_median():
    # 10 rounds: mutex's ns/op 100 000 + 10 000 r, atomic's a constant; 7 --json runs
    m = data.merge_rounds([hf_round([0.010 + r / 1000, 0.005]) for r in range(10)], CONFIGS)
    lines = [metric(v, rep, 100, ns, lost=rep) for rep in range(1, 8) for v, ns in (("mutex", 20.0 + rep), ("atomic", 10.0))]
    rows = data.derive_rows(m, lines, "x", ["lost"], {"variant": "mutex"})
    mutex = rows[0]
    assert data.value_samples(mutex, "ns_op") == pytest.approx([1e5 + 1e4 * r for r in range(10)])
    e = stats.estimate(data.value_samples(mutex, "ns_op"))
    assert data.interval_of(mutex, "ns_op") == (e.lo, e.hi) and e.method == "bootstrap"
    assert data.interval_of(mutex, "inproc_ns_op") == (21.0, 27.0)  # 7 runs: the order statistics
    assert data.value_samples(mutex, "metric:lost") == [1, 2, 3, 4, 5, 6, 7]
    assert data.value_samples(rows[1], "speedup") == pytest.approx([2 + r / 5 for r in range(10)])
    bar = data.bars_tsv(rows, "variant", "ns_op").splitlines()[1].split("\t")
    assert [float(x) for x in bar[1:4]] == pytest.approx([mutex["ns_op"], e.lo, e.hi])
    wide = data.lines_tsv(rows, "threads", "variant", "ns_op").splitlines()[1].split("\t")
    assert [float(x) for x in wide[1::2]] == pytest.approx([mutex["ns_op"], e.lo, e.hi])


def test_a_series_keeps_its_colour_on_every_chart_of_its_chapter(tmp_path):
    index = {}
    assert experiments.colours_for(index, ["seq", "threads", "pool", "procs"]) == [1, 2, 3, 4]
    assert experiments.colours_for(index, ["threads", "procs", "gil"]) == [2, 4, 5]
    assert experiments.colours_for({}, [str(i) for i in range(12)])[9:] == [10, 1, 2]  # ten colours, then again
    wide = tmp_path / "w.tsv"
    wide.write_text(data.wide_tsv("W", ["seq", "threads"], {("1", "seq"): 1, ("1", "threads"): 1}, {}))
    assert experiments.series_names("lines", wide, {"errors": 1}) == ["seq", "threads"]
    assert experiments.series_names("speedup", wide, "ideal=2; errors=1") == ["seq", "threads"]
    assert experiments.series_names("lines", wide, {}) == ["seq", "threads", "seq lo", "threads lo", "seq hi", "threads hi"]
    assert experiments.series_names("bars", wide, {}) == []


# --------------------------------------------------- figures and their table
@pytest.fixture
def summary(tmp_path):
    """A Summary over one experiment `x` of 10 rounds and 7 --json runs."""
    out = OutDir(tmp_path)
    m = data.merge_rounds([hf_round([0.010 + r / 1000, 0.005]) for r in range(10)], CONFIGS)
    lines = [metric(v, rep, 100, ns, lost=rep) for rep in range(1, 8) for v, ns in (("mutex", 20.0 + rep), ("atomic", 10.0))]
    rows = data.derive_rows(m, lines, "x", ["lost"], {"variant": "mutex"})
    out.write_json("ch-x.rows.json", rows)
    drawn = []
    s = figures.Summary("ch", out, lines, True, 2, {"mutex": 5.0}, [], lambda *a: drawn.append(a) or True)
    s.drawn = drawn
    return s


def test_a_ratio_figure_pairs_the_rounds(summary):
    spec = {"name": "m_over_a", "what": "mutex ÷ atomic", "from": "x", "ratio": [{"variant": "mutex"}, {"variant": "atomic"}],
            "goal": ">= 1.5", "unit": "×", "in_process": True}  # fmt: skip
    (f,) = summary.evaluate(spec, None)
    assert f.samples == pytest.approx([2.0 + r / 5 for r in range(10)])
    assert f.est.value == pytest.approx(2.9) and f.est.method == "bootstrap"
    assert f.result == "PASS"
    assert f.in_process == pytest.approx(2.4)  # median of (20 + rep) / 10 over the 7 runs
    assert f.sources == ("x",)


def test_quick_goal_false_drops_the_goal_in_a_quick_run_only(summary):
    spec = {"name": "m_over_a", "what": "mutex ÷ atomic", "from": "x", "ratio": [{"variant": "mutex"}, {"variant": "atomic"}],
            "goal": "< 0.1", "quick_goal": False}  # fmt: skip
    assert summary.quick
    (f,) = summary.evaluate(spec, None)
    assert f.goal is None and f.result == "info"
    summary.quick = False
    (f,) = summary.evaluate(spec, None)
    assert f.result == "FAIL"


def test_row_figures_scale_divide_by_a_floor_and_shift(summary):
    (f,) = summary.evaluate({"name": "n", "what": "w", "from": "x", "row": {"variant": "atomic"}, "scale": "threads"}, None)
    assert f.est.value == pytest.approx(2 * 0.005 / 100 * 1e9)
    (f,) = summary.evaluate({"name": "n", "what": "w", "from": "x", "row": {"variant": "atomic"}, "floor": "mutex"}, None)
    assert f.est.value == pytest.approx(0.005 / 100 * 1e9 / 5)
    spec = {"name": "n", "what": "w", "from": "x", "row": {"variant": "mutex"}, "of": "metric:lost", "offset": -1}
    (f,) = summary.evaluate(spec, None)
    assert f.samples == [0, 1, 2, 3, 4, 5, 6] and f.est.method == "order statistics"
    (f,) = summary.evaluate({"name": "n", "what": "w", "from": "x", "row": {"variant": "nosuch"}, "goal": "> 1"}, None)
    assert f.result == "n/a"


def test_one_renderer_draws_every_checks_table(summary):
    figs = summary.evaluate(
        {"name": "a", "what": "settled", "from": "x", "ratio": [{"variant": "mutex"}, {"variant": "mutex"}], "unit": "×", "goal": "> 0.5"}, None
    ) + [
        figures.Figure("b", "wide", stats.Estimate(2.0, 1.0, 3.0, 9, "order statistics"), stats.parse_goal(">= 1.5"), " s", ("x",)),
        figures.Figure("c", "few", stats.Estimate(4.0, n=3), stats.parse_goal("> 1"), "×", ("y",)),
        summary.derived("d", "crossover", 64),
    ]  # fmt: skip
    assert figures.checks_table(figs, {"x": (1.5, 20.0)}) == [
        "| check | value | target | result |",
        "|:--|--:|:--|:--|",
        "| settled | 1× (1–1) | > 0.5 | PASS |",
        "| wide | 2 s (1–3) unsettled (steal 1.5%, other programs 20.0%) | >= 1.5 | UNSETTLED |",
        "| few | 4× (n=3) | > 1 | n=3 |",
        "| crossover | 64 | – | info |",
        "",
        "Settled (95% interval within ±10% of the value): 1 of 3 figures.",
    ]


def test_a_summary_chart_writes_its_data_and_draws(summary):
    md = summary.chart("lines", "x\ty\n1\t2\n", "ch-extra", "a title", logx=1)
    assert (summary.out / "ch-extra.chart.tsv").read_text() == "x\ty\n1\t2\n"
    assert summary.drawn[0][2:] == ("ch-extra", "a title", {"logx": 1})
    assert md[0] == "![a title](ch-extra.png)"


# ------------------------------------------------------------ calibration
def test_a_floor_gets_the_interval_of_its_interleaved_repeats():
    (c,) = report.floor_estimates([{"name": "mutex", "what": "w", "ns": 1.0, "ops": 9, "samples": XS}])
    assert (c["ns"], c["lo"], c["hi"], c["n"], c["interval"], c["settled"]) == (1.0, 0.94, 1.06, 10, "bootstrap", True)
    assert c["samples"] == XS and c["ops"] == 9  # calibrate's own fields stay
    (c,) = report.floor_estimates([{"name": "fork", "what": "w", "ns": 3.0, "samples": [5, 1, 4, 2, 3, 6]}])
    assert (c["ns"], c["lo"], c["hi"], c["interval"], c["settled"]) == (3.5, 1, 6, "order statistics", False)


def test_the_calibration_table_reads_in_units_with_bandwidth_and_references():
    cal = report.floor_estimates([
        {"name": "mutex", "what": "lock", "ns": 1, "samples": [x * 15 for x in XS]},
        {"name": "fork", "what": "fork", "ns": 1, "samples": [x * 250e3 for x in [5, 1, 4, 2, 3, 6, 3.5, 3.5, 3.5, 3.5]]},
        {"name": "memcpy", "what": "copy", "ns": 1, "bytes": 1 << 20, "samples": [x * 2e5 for x in XS]},
    ])  # fmt: skip
    refs = [{"compare": "calibration:fork", "ns": 1720000, "what": "spawns", "machine": "m", "url": "u"}]
    md = report.calibration_md(cal, refs, (1.5, 20.0), "Not affected")
    assert "_While it ran: CPU steal 1.5%, other programs 20.0% of the CPU._" in md
    assert "Kernel page-table isolation (`/sys/devices/system/cpu/vulnerabilities/meltdown`): Not affected." in md
    assert "| mutex | 15 ns (14.1–15.9) | lock | – |" in md
    assert "| fork | 875 µs (688–1062) unsettled | fork | 1.72 ms: spawns; m ([source](u)) |" in md
    assert "| memcpy | 200 µs (188–212) | copy: 5.24 GB/s (4.95–5.58) | – |" in md
    assert md[2].startswith("Measured at the start of this run by `bench/calibrate`: 10 interleaved repeats")


def test_a_figure_may_divide_only_by_a_floor_calibrate_measures(tmp_path):
    text = GOOD.replace('goal = ">= 2"', 'goal = ">= 2"\nfloor = "futex"')
    assert schema.load(write_toml(tmp_path, text))["summary"]["figure"][0]["floor"] == "futex"
    with pytest.raises(schema.SchemaError) as e:
        schema.load(write_toml(tmp_path, GOOD.replace('goal = ">= 2"', 'floor = "futexx"')))
    assert "summary.figure[0].floor: no floor 'futexx' (one of mutex, atomic_add, cache_line, syscall, futex," in str(e.value)


# --------------------------------------------------------------- the schema
def write_toml(tmp_path, text, name="race.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """
    [experiment.v]
    command = "{demo} --variant {variant}"
    params = { variant = "@all" }
    rounds = 3
    chart = { kind = "bars", x = "variant" }
    quick = { rounds = 1 }

    [[summary.figure]]
    name = "r"
    what = "a ratio"
    from = "v"
    ratio = [{ variant = "a" }, { variant = "b" }]
    goal = ">= 2"
"""


def test_the_chapters_files_are_valid():
    for ch in ("race", "deadlock", "prodcons", "barrier", "speedup", "gil", "procs"):
        doc = schema.load(SOURCE / "bench" / f"{ch}.toml")
        assert doc["experiment"] and doc["summary"]["figure"]


def test_the_async_chapters_service_experiments_are_valid():
    doc = schema.load(SOURCE / "bench" / "async.toml")
    exp = schema.resolve_experiment(doc["experiment"]["servers"], True)
    assert exp["kind"] == "service" and exp["params"] == {"server": ["threads", "loop"], "connections": [100]}
    assert exp["rounds"] >= 6 and exp["duration"] < 1


SERVICE = """
[experiment.s]
kind = "service"
servers = { a = "srv-a --x {connections}", b = "srv-b" }
params = { server = ["a", "b"], connections = [10] }
duration = 0.5
rounds = 6
"""


@pytest.mark.parametrize(
    "edit, error",
    [
        (("duration = 0.5\n", ""), "experiment.s.duration is required"),
        (("duration = 0.5", "duration = 0"), "experiment.s.duration must be a number above 0"),
        (('server = ["a", "b"]', 'server = ["a", "c"]'), "params.server: each value must name one of servers (a, b)"),
        (("connections = [10]", "conns = [10]"), "experiment.s.params.connections is required"),
        (("srv-b", "srv-b {port}"), "experiment.s.servers.b: '{port}' is neither a parameter"),
        (("rounds = 6", 'rounds = 6\ncommand = "x"'), "a service experiment has servers instead"),
        (('kind = "service"', 'kind = "hyperfine"\ncommand = "x"'), "experiment.s.servers: only a service experiment takes it"),
    ],
)
def test_a_service_experiment_is_checked(tmp_path, edit, error):
    p = write_toml(tmp_path, SERVICE.replace(*edit))
    with pytest.raises(schema.SchemaError) as e:
        schema.load(p)
    assert error in str(e.value)


def test_a_service_experiment_that_is_right_loads(tmp_path):
    doc = schema.load(write_toml(tmp_path, SERVICE))
    exp = schema.resolve_experiment(doc["experiment"]["s"], False)
    assert exp["pin"] is True and exp["connections"] == "connections"


WRK_OUT = """Running 1s test @ http://127.0.0.1:4000/
  1 threads and 10 connections
  5000 requests in 500.00ms, 1.00MB read
Requests/sec:  10000.00
{"wrk":{"requests":5000,"duration_us":500000,"bytes":1000000,"errors":{"connect":0,"read":1,"write":0,"status":2,"timeout":3},"latency_us":{"p50":100,"p90":200,"p99":900,"max":1500,"mean":120.5}}}
"""


def test_wrk_figures_come_from_the_lua_line():
    w = data.parse_wrk(WRK_OUT)
    assert w == {"requests": 5000, "duration_s": 0.5, "ops_per_s": 10000.0, "p50_us": 100, "p90_us": 200,
                 "p99_us": 900, "max_us": 1500, "mean_us": 120.5, "errors": 4, "non2xx": 2}  # fmt: skip
    assert data.parse_wrk("Requests/sec: 1\n") is None
    assert data.parse_counts('listening\n{"requests": 3}\n') == {"requests": 3}
    assert data.parse_counts("") is None
    costs = data.server_costs({"responses": 1000, "cpu_s": 0.02, "voluntary_cs": 400, "involuntary_cs": 100})
    assert costs == {"cpu_us": 20.0, "sleeps": 0.4}
    assert data.server_costs(None) == {"cpu_us": None, "sleeps": None}


def test_service_rows_pair_each_round_with_the_baseline():
    def line(server, rep, rps, p99):
        return {"ops_per_s": rps, "metrics": {"p50_us": 10, "p99_us": p99, "errors": 0, "non2xx": 0},
                "_bench": {"experiment": "s", "params": {"server": server, "connections": "10"}, "rep": rep}}  # fmt: skip

    lines = [line("a", 1, 100.0, 50), line("b", 1, 300.0, 20), line("a", 2, 200.0, 60), line("b", 2, 400.0, 30),
             line("a", 3, 150.0, 55)]  # fmt: skip
    configs = [{"server": "a", "connections": "10"}, {"server": "b", "connections": "10"}]
    rows = data.service_rows(lines, "s", configs, 3, {"server": "a"})
    a, b = rows
    assert a["ops_per_s"] == 150.0 and a["runs"] == 3 and a["ops_per_s_min"] == 100.0
    assert b["round_values"]["ops_per_s"] == [300.0, 400.0, None]  # round 3 of b is missing
    assert b["ratios"] == [3.0, 2.0, None] and b["ratio"] == 2.5 and a["ratio"] == 1.0
    assert a["metrics"]["p99_us"] == 55
    tsv = data.lines_tsv(rows, "connections", "server", "metric:p99_us").splitlines()
    assert tsv[0] == "connections\ta\tb\ta lo\tb lo\ta hi\tb hi"  # each point with its interval (none below 6)
    assert tsv[1] == "10\t55\t25\t55\t25\t55\t25"
    md = data.service_md(rows, ["server", "connections"], {"server": "a"}).splitlines()
    assert md[0] == (
        "| server | runs | requests/s (95% interval) | min–max | × a | p50 ms | p99 ms | max ms | server CPU µs/reply | sleeps/reply | errors |"
    )
    assert md[3].startswith("| b | 2 | 350 (n=2) | 300–400 | 2.5 | 0.01 (n=2) | 0.025 (n=2) |")


def test_a_service_figure_reads_the_rounds_of_its_rows(tmp_path):
    out = OutDir(tmp_path)
    rows = [{"params": {"server": "a"}, "round_values": {"ops_per_s": [1.0, 2.0, None]}, "ok": True},
            {"params": {"server": "b"}, "round_values": {"ops_per_s": [2.0, 6.0, 5.0]}, "ok": True}]  # fmt: skip
    out.write_json("race-s.rows.json", rows)
    s = figures.Summary("race", out, [], False, 2, {}, [], None)
    assert s.paired("s", {"server": "b"}, {"server": "a"}, "ops_per_s") == [2.0, 3.0]


def test_interrupt_after_ends_a_run_as_ctrl_c_would():
    r = proc.Runner()
    t = time.monotonic()
    res = r.run(["sh", "-c", "trap 'echo stopped; exit 0' INT; while :; do sleep 0.05; done"], timeout=20, interrupt_after=0.3)
    assert res.rc == 0 and res.out == "stopped\n" and time.monotonic() - t < 5


@pytest.mark.parametrize(
    "edit, error",
    [
        (("rounds = 3", "rounds = 3\nbaselin = { variant = 'a' }"), "unknown key 'experiment.v.baselin'"),
        (("quick = { rounds = 1 }", "quick = { round = 1 }"), "unknown key 'experiment.v.quick.round'"),
        (('x = "variant" }', 'x = "variant", colour = 1 }'), "unknown key 'experiment.v.chart.colour'"),
        (('goal = ">= 2"', 'goal = ">= 2"\ntarget = 2'), "unknown key 'summary.figure[0].target'"),
        (("[experiment.v]", "titel = 'x'\n[experiment.v]"), "unknown key 'titel'"),
        (("rounds = 3", "rounds = 0"), "experiment.v.rounds must be a positive integer"),
        (("rounds = 3", "rounds = 'three'"), "experiment.v.rounds must be a positive integer"),
        (("rounds = 3", ""), "experiment.v.rounds is required"),
        (("--variant {variant}", "--variant {variant} --iters {iter}"), "'{iter}' is neither a parameter"),
        (('from = "v"', 'from = "w"'), "summary.figure[0].from: no experiment 'w'"),
        (('goal = ">= 2"', 'goal = "big"'), "summary.figure[0].goal: goal 'big'"),
        (('kind = "bars"', 'kind = "pie"'), "experiment.v.chart.kind: 'pie'"),
        (('x = "variant"', 'x = "threads"'), "experiment.v.chart.x: 'threads' is not a parameter"),
        (('ratio = [{ variant = "a" }, { variant = "b" }]', 'ratio = [{ variant = "a" }]'), "summary.figure[0].ratio must be a list of two tables"),
        (('goal = ">= 2"', 'of = "speed"'), "summary.figure[0].of: 'speed'"),
        (('goal = ">= 2"', 'of = ["ns_op", "metric:x"]'), "pairs two per-round or two per-run figures"),
    ],
)
def test_a_mistake_in_an_experiment_file_names_the_file_and_the_key(tmp_path, edit, error):
    p = write_toml(tmp_path, GOOD.replace("    ", "", 0).replace(*edit))
    with pytest.raises(schema.SchemaError) as e:
        schema.load(p)
    assert str(e.value).startswith(f"{p}: ")
    assert error in str(e.value)


def test_quick_settings_merge_over_the_full_ones():
    raw = {"command": "c", "params": {"a": [1], "b": [2]}, "rounds": 9, "chart": {"kind": "bars", "x": "a"},
           "quick": {"params": {"b": [3]}, "rounds": 2, "chart": {"x": "b"}}}  # fmt: skip
    q = schema.resolve_experiment(raw, True)
    assert q["params"] == {"a": [1], "b": [3]} and q["rounds"] == 2 and q["chart"] == {"kind": "bars", "x": "b"}
    assert q["metrics_runs"] == 5 and q["warmup"] == 1  # the defaults
    assert schema.resolve_experiment(raw, False)["rounds"] == 9


# ---------------------------------------------------------------- --compare
def v2_folder(path, samples_by_name, rows=()):
    path.mkdir()
    (path / "REPORT.md").write_text("# conclab benchmark report\n")
    (path / "run.json").write_text('{"format": 2}')
    checks = []
    for name, xs in samples_by_name.items():
        e = stats.estimate(xs)
        checks.append({"name": name, "what": name, "value": e.value, "samples": xs, "settled": e.settled, "unit": "×"})
    (path / "race.summary.json").write_text(json.dumps({"checks": checks}))
    (path / "race-variants.rows.json").write_text(json.dumps(list(rows)))
    return path


def test_compare_reads_a_v1_folder(tmp_path):
    out = compare.compare(V1, V1).splitlines()
    assert "| race-variants | iters=2500000 threads=2 variant=atomic | 63.7 | 63.7 | 1 | 1 |" in out
    assert next(line for line in out if "configurations in both runs" in line) == (
        "3 configurations in both runs; median B / A 1; relative figures: median 1, the furthest from 1 off by 0%; "
        "within 10%: 3 of 3."
    )
    # v1 kept no rounds: a value and no interval, never counted as settled
    assert "| race | atomic ns/op ÷ sharded ns/op | 23 | 23 | 1 | – | – |" in out
    assert out[-1] == "3 summary figures in both runs, 0 with samples in both; settled: 0 in A, 0 in B; of the 0 settled in both, 0 agree."
    v2 = v2_folder(tmp_path / "b", {"atomic_over_sharded": [20.0 + i / 10 for i in range(10)]})
    out = compare.compare(V1, v2).splitlines()
    assert "| race | atomic ns/op ÷ sharded ns/op | 23 | 20.4× (20.2–20.7) | 0.888 | – | – |" in out


def test_compare_counts_settled_and_agreeing_figures(tmp_path):
    a = v2_folder(tmp_path / "a", {"same": XS, "moved": XS, "wide": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "few": [1, 2], "seven": XS[:7]})
    b = v2_folder(tmp_path / "b", {"same": XS, "moved": [x * 1.5 for x in XS], "wide": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "few": [1, 2], "seven": XS[:7]})
    out = compare.compare(a, b).splitlines()
    assert "| race | same | 1× (0.94–1.06) | 1× (0.94–1.06) | 1 | 0.919–1.09 | yes |" in out
    assert "| race | moved | 1× (0.94–1.06) | 1.5× (1.41–1.59) | 1.5 | 1.38–1.63 | **no** |" in out
    assert "| race | wide | 5.5× (3–8) | 5.5× (3–8) | 1 | 0.462–2.17 | – |" in out
    assert "| race | few | 1.5× (n=2) | 1.5× (n=2) | 1 | n=2 | – |" in out
    assert "| race | seven | 1× (0.85–1.2) | 1× (0.85–1.2) | 1 | 0.857–1.17 | – |" in out  # 9th of the 49 ratios from each end
    assert out[-1] == "5 summary figures in both runs, 5 with samples in both; settled: 2 in A, 2 in B; of the 2 settled in both, 1 agree."


def test_compare_refuses_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(compare.NotARun, match="not a bench/run result folder"):
        compare.compare(V1, tmp_path)


# ----------------------------------------------------------- files and CPU
def test_a_write_that_fails_leaves_neither_the_file_nor_a_temp(tmp_path):
    out = OutDir(tmp_path)
    out.write("a.txt", "good\n")
    with pytest.raises(RuntimeError):
        with out.atomic("a.txt") as f:
            f.write("half")
            raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_cpu_shares_of_the_hypervisor_and_of_other_programs():
    a = cpu.Sample(steal=10, total=1000, busy=100, own=0.0)
    b = cpu.Sample(steal=60, total=2000, busy=600, own=2.0)
    # 1000 ticks: 50 stolen; 500 busy, of which this run's own 2 s = 2 * HZ ticks
    assert cpu.share(a, b) == (5.0, round(100 * max(500 - 2 * cpu.HZ, 0) / 1000, 1))
    assert cpu.share(b, b) == (0.0, 0.0)


# ---------------------------------------------------------- process control
def test_a_command_past_its_timeout_is_killed_with_its_children():
    r = proc.Runner()
    t = time.monotonic()
    res = r.run(["sh", "-c", "sleep 30 & echo $!; wait"], timeout=0.5)
    assert res.rc == proc.TIMED_OUT and time.monotonic() - t < 10
    child = int(res.out.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert r.child_wall >= 0.5
    assert r.run(["conclab-no-such-program"]).rc == 127


SERVER = """
import signal, socket, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print("listening 127.0.0.1:%d" % s.getsockname()[1], flush=True)
while True:
    s.accept()[0].close()
"""


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_a_service_is_reachable_inside_its_block_and_gone_after(mode):
    r = proc.Runner()
    with proc.Service(r, [sys.executable, "-c", SERVER, mode], stop_grace=0.5) as svc:
        import socket

        socket.create_connection((svc.host, svc.port), timeout=1).close()
        pid = svc.proc.pid
    assert svc.proc.returncode == (-signal.SIGTERM if mode == "polite" else -signal.SIGKILL)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_what_a_service_prints_after_its_first_line_is_kept():
    r = proc.Runner()
    bye = "signal.signal(signal.SIGTERM, lambda *a: (print('bye', flush=True), sys.exit(0)))\n"
    script = SERVER.replace("s = socket.socket()", bye + "s = socket.socket()")
    with proc.Service(r, [sys.executable, "-c", script, "polite"]) as svc:
        pass
    assert svc.tail == "bye\n"


def test_a_service_that_does_not_say_where_it_listens_is_stopped():
    r = proc.Runner()
    with pytest.raises(proc.ServiceError, match="not 'listening HOST:PORT'"):
        with proc.Service(r, ["sh", "-c", "echo hello; sleep 30"]):
            pass
    assert not r._groups


def test_ctrl_c_stops_the_running_group_at_once(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(SOURCE / 'bench')!r})
            from harness import proc
            r = proc.Runner()
            r.install_signals()
            try:
                r.run(["sh", "-c", "echo started; sleep 30"], stdout=sys.stdout)
            except proc.Interrupted:
                r.stop_all()
                sys.exit(130)
            """
        )
    )
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "started\n"
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=5) == 130
    assert time.monotonic() - t < 2
