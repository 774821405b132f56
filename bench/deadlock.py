"""bench/deadlock.toml's summary code: the watchdog's latency per timeout, where
lock ordering overtakes the global lock, and the sweeps and costs chart."""

from harness import stats
from harness.figures import markdown_table
from harness.stats import fmt


def latency(s, spec):
    """One figure per --timeout of `latency`: each round's wall time less T."""
    out = []
    for row in s.rows("latency"):
        t = row["params"]["timeout"]
        xs = [x - float(t) for x in s.samples("latency", {"timeout": t}, "time")]
        out.append(s.figure(spec, xs, name=f"latency_{t}", what=spec["what"].format(timeout=t), sources=["latency"]))
    return out


def sweep(s, exp):
    """[(accounts, global-lock ns, transfer-ordered ns)], in-process medians."""
    out = []
    for a in dict.fromkeys(r["params"]["accounts"] for r in s.rows(exp)):
        g, o = (s.row(exp, {"variant": v, "accounts": a}) for v in ("global-lock", "transfer-ordered"))
        out.append((int(a), g and g["inproc_ns_op"], o and o["inproc_ns_op"]))
    return sorted(out)


def overtakes(s, spec):
    """The fewest accounts at which transfer-ordered's median beats global-lock's:
    read off the sweep, so a figure without an interval of its own."""
    at = next((a for a, g, o in sweep(s, spec["from"]) if g is not None and o is not None and o < g), None)
    return s.derived(spec["name"], spec["what"], at, sources=[spec["from"]])


def tables(s):
    out = []
    for exp, label in (("overtake", "Accounts sweep (ns per transfer, 2 threads):"), ("overtake_work", "With --work-ns 300:")):
        rows = sweep(s, exp)
        s.extra[f"{exp}_sweep"] = [{"accounts": a, "global": g, "ordered": o} for a, g, o in rows]
        out += [label, ""]
        out += markdown_table(
            ["accounts", "global-lock", "transfer-ordered"], [(a, fmt(g), fmt(o)) for a, g, o in rows], ["--:"] * 3
        )
        out.append("")
    # the per-acquisition costs as bars: median of the --json runs, error bars
    # its 95% interval (none below 6 runs)
    bars = {}
    for label, v, k, cls in (
        ("plain mutex", "lockdep", "plain_ns", "other"),
        ("recursive", "recursive", "recursive_ns", "correct"),
        ("lockdep", "lockdep", "lockdep_ns", "correct"),
    ):
        e = stats.estimate(x for x in s.samples("costs", {"variant": v}, f"metric:{k}") if x is not None)
        bars[label] = (e.value, e.lo if e.has_interval else e.value, e.hi if e.has_interval else e.value, cls)
    s.extra["costs_ns"] = {k: v[0] for k, v in bars.items()}
    tsv = "".join(
        "\t".join([k] + ["NaN" if x is None else str(x) for x in v[:3]] + [v[3]]) + "\n" for k, v in bars.items()
    )
    tsv = "kind\tns\tlo\thi\tclass\n" + tsv
    out += s.chart(
        "bars", tsv, "deadlock-costs", "ns per uncontended acquire/release (median of the runs; error bars: its 95% interval)",
        ylabel="ns per acquire/release", logy=0,
    )  # fmt: skip
    return out

