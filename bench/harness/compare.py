"""bench/run --compare A B: two result folders side by side, B / A. Reads the
folders of this harness and of the bash one before it (v1: no rounds kept with
its summary figures, so those have a value and no interval)."""

import json
from pathlib import Path

from . import stats
from .data import param_key
from .stats import fmt


class NotARun(Exception):
    pass


def load(folder):
    """{"version", "configs": {(exp, params): row}, "figures": {(chapter, name): fig}}."""
    d = Path(folder)
    if not (d / "REPORT.md").is_file():
        raise NotARun(f"--compare: '{folder}' is not a bench/run result folder (no REPORT.md)")
    version = json.loads((d / "run.json").read_text()).get("format", 2) if (d / "run.json").is_file() else 1
    configs, figures = {}, {}
    for f in sorted(d.glob("*.rows.json")):
        exp = f.name[: -len(".rows.json")]
        for r in json.loads(f.read_text()):
            configs[(exp, param_key(r["params"]))] = r
    for f in sorted(d.glob("*.summary.json")):
        ch = f.name[: -len(".summary.json")]
        for c in json.loads(f.read_text()).get("checks", []):
            v = c.get("value")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v != 0:
                # v1 kept only the value; v2 keeps the samples it came from
                c = dict(c, samples=c.get("samples") or [], counted=version >= 2 and not c.get("derived"))
                figures[(ch, c["name"])] = c
    return {"version": version, "configs": configs, "figures": figures}


def _div(b, a):
    return b / a if a and b is not None else None


def configurations_table(a, b):
    """v1's table: the median times and the relative column, B / A, point values."""
    joined = [(k, a["configs"][k], b["configs"][k]) for k in a["configs"] if k in b["configs"]]
    out = [
        "| experiment | parameters | A median ms | B median ms | B / A | relative: B / A |",
        "|:--|:--|--:|--:|--:|--:|",
    ]
    times, rels = [], []
    for (exp, params), ra, rb in joined:
        t = _div(rb["median_s"], ra["median_s"])
        rel = _div(rb.get("ratio"), ra.get("ratio"))
        times.append(t)
        rels.append(rel)
        out.append(
            f"| {exp} | {params} | {fmt(ra['median_s'] * 1000)} | {fmt(rb['median_s'] * 1000)} | {fmt(t)} | {fmt(rel)} |"
        )
    known = [r for r in rels if r is not None]
    far = max((abs(r - 1) for r in known), default=None)
    within = sum(abs(r - 1) <= 0.1 for r in known)
    out += [
        "",
        f"{len(joined)} configurations in both runs; median B / A {fmt(stats.median(times))}; "
        f"relative figures: median {fmt(stats.median(rels))}, the furthest from 1 off by "
        f"{fmt(far * 100) + '%' if far is not None else '–'}; within 10%: {within} of {len(known)}.",
    ]
    return out


def figures_table(a, b):
    """Each summary figure in both runs: A and B with their intervals, B / A with
    its interval over both runs' rounds, and whether the two runs agree."""
    keys = [k for k in a["figures"] if k in b["figures"]]
    if not keys:
        return []
    out = [
        "",
        "Summary figures (each chapter's checks, from `<chapter>.summary.json`): B / A with its 95% "
        "interval over both runs' rounds (a bootstrap of the ratio of medians when both have 10 or more, "
        "the rank-based interval of all the ratios b / a when both have 6 or more, none below); the runs "
        f"agree on a figure when that interval lies within {stats.AGREE[0]:.2f}–{stats.AGREE[1]:.2f}.",
        "",
        "| chapter | figure | A | B | B / A | interval | agree |",
        "|:--|:--|--:|--:|--:|--:|:--|",
    ]
    settled_a = settled_b = both = agree = 0
    for k in keys:
        fa, fb = a["figures"][k], b["figures"][k]
        ea, eb = stats.estimate(fa["samples"]), stats.estimate(fb["samples"])
        counted = fa["counted"] and fb["counted"]
        r = stats.ratio_estimate(fa["samples"], fb["samples"]) if counted else stats.Estimate(_div(fb["value"], fa["value"]))
        if r.value is None:
            r = stats.Estimate(_div(fb["value"], fa["value"]))
        sa, sb = counted and ea.settled, counted and eb.settled
        settled_a += sa
        settled_b += sb
        ok = None
        if sa and sb:
            both += 1
            ok = stats.agrees(r)
            agree += ok
        cell = lambda f, e: stats.fmt_estimate(e, f.get("unit", "")) if e.n else fmt(f["value"]) + f.get("unit", "")  # noqa: E731
        interval = f"{fmt(r.lo)}–{fmt(r.hi)}" if r.has_interval else (f"n={r.n}" if 0 < r.n < stats.INTERVAL_FROM else "–")
        verdict = "–" if ok is None else "yes" if ok else "**no**"
        out.append(f"| {k[0]} | {fa.get('what') or k[1]} | {cell(fa, ea)} | {cell(fb, eb)} | {fmt(r.value)} | {interval} | {verdict} |")
    counted_n = sum(a["figures"][k]["counted"] and b["figures"][k]["counted"] for k in keys)
    out += [
        "",
        f"{len(keys)} summary figures in both runs, {counted_n} with samples in both; settled: {settled_a} in A, "
        f"{settled_b} in B; of the {both} settled in both, {agree} agree.",
    ]
    return out


def compare(folder_a, folder_b):
    """The Markdown of --compare (raises NotARun)."""
    a, b = load(folder_a), load(folder_b)
    out = [
        "# bench/run --compare",
        "",
        f"A: `{folder_a}` (harness v{a['version']})  ",
        f"B: `{folder_b}` (harness v{b['version']})",
        "",
        "B / A of the median times, and of the relative column (`×` a baseline) where the",
        "experiment has one: a relative figure that holds across machines or runs stays near 1.",
        "",
    ]
    out += configurations_table(a, b)
    out += figures_table(a, b)
    return "\n".join(out) + "\n"
