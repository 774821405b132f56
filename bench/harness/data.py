"""The data half of an experiment: configurations, merged rounds, rows, tables,
takeaways and chart inputs. Pure functions of their arguments: no processes, no
files (the callers write what these return)."""

import csv
import io
import itertools
import json
import math
import statistics

from .stats import estimate, fmt, fmt_estimate, median


# ---------------------------------------------------------- configurations
def expand_values(spec, variants, nproc):
    """A parameter's values as strings. spec is a list of values, or a selector
    over the demo's variants (those tagged `hangs` are never selected):
    "@all", "@tag:T" (tagged T), "@notag:T" (not tagged T); or "@cpus:N", the
    smaller of N and this machine's CPU count.
    variants: [(name, [tags])], from the demo's --list."""
    if isinstance(spec, list):
        return [str(v) for v in spec]
    if spec.startswith("@cpus:"):
        return [str(min(int(spec[6:]), nproc))]
    pick = [(n, t) for n, t in variants if "hangs" not in t]
    if spec == "@all":
        return [n for n, _ in pick]
    if spec.startswith("@tag:"):
        return [n for n, t in pick if spec[5:] in t]
    if spec.startswith("@notag:"):
        return [n for n, t in pick if spec[7:] not in t]
    raise ValueError(f"unknown selector '{spec}' (@all, @tag:T, @notag:T, @cpus:N)")


def configurations(params, exclude=()):
    """Every configuration of the parameters, {name: value}, the first parameter
    varying fastest (as hyperfine orders its -L lists), less those that match an
    entry of exclude ({name: [values]}: all its names must match)."""
    names = list(params)
    out = []
    for combo in itertools.product(*(params[n] for n in reversed(names))):
        c = dict(zip(reversed(names), combo))
        c = {n: c[n] for n in names}
        if not any(matches(c, ex) for ex in exclude):
            out.append(c)
    return out


def matches(params, sel):
    """params (strings) matches a selector {name: value or [values]}."""
    for k, v in sel.items():
        want = [str(x) for x in v] if isinstance(v, list) else [str(v)]
        if params.get(k) not in want:
            return False
    return True


def param_key(params):
    """'iters=1000 variant=atomic': a configuration as text, names sorted."""
    return " ".join(f"{k}={params[k]}" for k in sorted(params))


# ------------------------------------------------------------ rounds merged
def merge_rounds(rounds, configs):
    """hyperfine's JSON of one run per configuration per round, merged into one
    JSON of hyperfine's schema: each configuration's times from every round (in
    round order, so times[r] is round r), its statistics recomputed, `rounds`."""
    results = []
    for i, cfg in enumerate(configs):
        per = [r["results"][i] for r in rounds]
        times = [t for p in per for t in p["times"]]
        mean = statistics.fmean(times)
        results.append(
            {
                "command": per[0]["command"],
                "mean": mean,
                "stddev": statistics.stdev(times) if len(times) > 1 else None,
                "median": statistics.median(times),
                "user": statistics.fmean(p["user"] for p in per),
                "system": statistics.fmean(p["system"] for p in per),
                "min": min(times),
                "max": max(times),
                "times": times,
                "exit_codes": [c for p in per for c in p["exit_codes"]],
                "parameters": dict(cfg),
            }
        )
    return {"rounds": len(rounds), "results": results}


def hyperfine_csv(merged, names):
    """hyperfine's CSV export: its columns, the parameters sorted by name."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    pn = sorted(names)
    w.writerow(["command", "mean", "stddev", "median", "user", "system", "min", "max"] + [f"parameter_{n}" for n in pn])
    for r in merged["results"]:
        vals = [r["command"]] + [r[k] for k in ("mean", "stddev", "median", "user", "system", "min", "max")]
        w.writerow(["" if v is None else v for v in vals] + [r["parameters"].get(n, "") for n in pn])
    return buf.getvalue()


def hyperfine_md(merged):
    """hyperfine's Markdown export: mean, min, max in ms, relative to the fastest."""
    best = min(r["mean"] for r in merged["results"])
    lines = ["| Command | Mean [ms] | Min [ms] | Max [ms] | Relative |", "|:---|---:|---:|---:|---:|"]
    for r in merged["results"]:
        lines.append(
            f"| `{r['command']}` | {fmt(r['mean'] * 1000)} | {fmt(r['min'] * 1000)} | {fmt(r['max'] * 1000)} | {fmt(r['mean'] / best)} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- rows
def metrics_of(lines, experiment, params):
    """The --json lines of one configuration of one experiment."""
    return [m for m in lines if m["_bench"]["experiment"] == experiment and m["_bench"]["params"] == params]


def derive_rows(merged, lines, experiment, metric_keys=(), baseline=None, expect_exit=0):
    """One row per configuration: hyperfine's figures, ops and ns/op, the
    demo's in-process figures (medians of its --json runs), and, against a
    baseline ({param: value}), the ratio: each round's ns/op over the baseline's
    ns/op of the same round at the same other parameters (paired), then the
    median of those per-round ratios. times and ratios keep the rounds."""
    rows = []
    for r in merged["results"]:
        p = r["parameters"]
        ms = metrics_of(lines, experiment, p)
        ops0 = median(m.get("ops") for m in ms)
        if ops0 is None and "threads" in p and "iters" in p:
            ops0 = float(p["threads"]) * float(p["iters"])
        ok = all(c == expect_exit for c in r["exit_codes"])
        ops = ops0 if ok else None
        row = {
            "params": p,
            "command": r["command"],
            "runs": len(r["times"]),
            "times": r["times"],
            "median_s": r["median"],
            "min_s": r["min"],
            "max_s": r["max"],
            "mean_s": r["mean"],
            "stddev_s": r["stddev"],
            "ops": ops0,
            "ns_op": r["median"] / ops * 1e9 if ops else None,
            "ns_op_min": r["min"] / ops * 1e9 if ops else None,
            "ns_op_max": r["max"] / ops * 1e9 if ops else None,
            "ops_per_s": ops / r["median"] if ops and r["median"] else None,
            "inproc_ns_op": median(m.get("ns_per_op") for m in ms),
            "metrics": {k: median((m.get("metrics") or {}).get(k) for m in ms) for k in metric_keys},
            # the --json runs' values behind those medians, in run order: their intervals
            "samples": {"inproc_ns_op": [m.get("ns_per_op") for m in ms]}
            | {f"metric:{k}": [(m.get("metrics") or {}).get(k) for m in ms] for k in metric_keys},
            "metrics_runs": len(ms),
            "tags": ms[0].get("tags", []) if ms else [],
            "exit_codes": sorted(set(r["exit_codes"])),
            "ok": ok,  # every timed run exited as expected
        }
        rows.append(row)
    for row in rows:
        row["ratios"], row["ratio"] = None, None
        if baseline:
            b = baseline_row(rows, row, baseline)
            if b and b["ns_op"] is not None and row["ns_op"] is not None:
                scale = b["ops"] / row["ops"]
                row["ratios"] = [t / bt * scale for t, bt in zip(row["times"], b["times"])]
                row["ratio"] = statistics.median(row["ratios"])
        row["speedup"] = 1 / row["ratio"] if row["ratio"] else None
    return rows


def baseline_row(rows, row, baseline):
    """The row that matches the baseline and has the same other parameters."""
    others = {k: v for k, v in row["params"].items() if k not in baseline}
    for b in rows:
        if matches(b["params"], baseline) and all(b["params"].get(k) == v for k, v in others.items()):
            return b
    return None


ROW_FIELDS = [
    "runs", "median_s", "min_s", "max_s", "mean_s", "stddev_s", "ops", "ns_op", "ns_op_min",
    "ns_op_max", "ops_per_s", "inproc_ns_op", "ratio",
]  # fmt: skip


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def rows_tsv(rows, names, metric_keys):
    """The table as TSV: parameters, ROW_FIELDS, the metrics, tags, exit codes."""
    out = ["\t".join(list(names) + ROW_FIELDS + list(metric_keys) + ["tags", "exit_codes"])]
    for r in rows:
        cells = [r["params"][n] for n in names] + [_cell(r[f]) for f in ROW_FIELDS]
        cells += [_cell(r["metrics"].get(k)) for k in metric_keys]
        cells += [",".join(r["tags"]), ",".join(str(c) for c in r["exit_codes"])]
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


def varying(rows, names):
    """The parameters that take more than one value in the rows."""
    return [n for n in names if len({r["params"][n] for r in rows}) > 1]


def rows_md(rows, names, metric_keys, baseline=None):
    """The Markdown table: varying parameters as columns, fixed ones in a line above."""
    vary = varying(rows, names)
    fixed = [n for n in names if n not in vary]
    out = []
    if fixed and rows:
        out.append("Fixed: " + ", ".join(f"`{n}` = {rows[0]['params'][n]}" for n in fixed) + ".")
    bcol = [f"× {', '.join(str(v) for v in baseline.values())}"] if baseline else []
    head = vary + ["tags", "median ms", "min ms", "max ms", "ns/op (median)", "ns/op min–max", "in-process ns/op"]
    head += bcol + list(metric_keys) + ["exit"]
    out.append("| " + " | ".join(head) + " |")
    align = [":--"] * len(vary) + [":--"] + ["--:"] * 6 + ["--:"] * len(bcol) + ["--:"] * len(metric_keys) + [":--"]
    out.append("|" + "|".join(align) + "|")
    for r in rows:
        ms = lambda k: fmt(r[k] * 1000 if r[k] is not None else None)  # noqa: E731
        rng = f"{fmt(r['ns_op_min'])}–{fmt(r['ns_op_max'])}" if r["ns_op_min"] is not None else "–"
        cells = [r["params"][n] for n in vary] + [",".join(r["tags"])]
        cells += [ms("median_s"), ms("min_s"), ms("max_s"), fmt(r["ns_op"]), rng, fmt(r["inproc_ns_op"])]
        cells += [fmt(r["ratio"])] if baseline else []
        cells += [fmt(r["metrics"].get(k)) for k in metric_keys]
        cells += [",".join(str(c) for c in r["exit_codes"])]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def takeaway(rows, names):
    """One line computed from the rows, never written by hand: the fastest and the
    slowest correct configurations (of all of them if none is tagged correct)."""
    vary = varying(rows, names)
    correct = [r for r in rows if r["ns_op"] is not None and "correct" in r["tags"]]
    pool = correct or [r for r in rows if r["ns_op"] is not None]
    if len(pool) < 2 or not vary:
        return None
    lo = min(pool, key=lambda r: r["ns_op"])
    hi = max(pool, key=lambda r: r["ns_op"])
    desc = lambda r: "`" + " ".join(f"{n}={r['params'][n]}" for n in vary) + "`"  # noqa: E731
    which = "correct " if correct else ""
    return (
        f"**Takeaway** (computed from this run): of the {which}configurations, the fastest is "
        f"{desc(lo)} at {fmt(lo['ns_op'])} ns/op and the slowest {desc(hi)} at {fmt(hi['ns_op'])} ns/op, "
        f"{fmt(hi['ns_op'] / lo['ns_op'])}× apart."
    )


def noisy(rows, limit=0.5):
    """(params, spread) of the rows whose runs spread by more than limit × median."""
    out = []
    for r in rows:
        if r["median_s"]:
            spread = (r["max_s"] - r["min_s"]) / r["median_s"]
            if spread > limit:
                out.append((r["params"], spread))
    return out


# ------------------------------------------------------------ chart inputs
def _nan(v):
    return "NaN" if v is None or (isinstance(v, float) and math.isnan(v)) else _cell(v)


def value_of(row, value):
    """A row's plotted value: a field (ns_op, median_s, ops_per_s, inproc_ns_op,
    speedup) or metric:NAME."""
    if value.startswith("metric:"):
        return row["metrics"].get(value[7:])
    return row.get(value)


def value_samples(row, value):
    """The samples behind a row's plotted value: one per round (ns_op, median_s,
    ops_per_s, speedup) or one per --json run (inproc_ns_op, metric:NAME); a
    service experiment's row keeps each round's figures in round_values."""
    if "round_values" in row:
        return [v for v in row["round_values"].get(value, []) if v is not None]
    times, ops = row["times"], row["ops"]
    if value == "median_s":
        return times
    if value in ("ns_op", "ops_per_s"):
        if not row["ok"] or not ops:
            return []
        return [t / ops * 1e9 for t in times] if value == "ns_op" else [ops / t for t in times if t]
    if value == "speedup":
        return [1 / r for r in row["ratios"] or [] if r]
    return [v for v in row.get("samples", {}).get(value, []) if v is not None]


def interval_of(row, value):
    """(low, high) of the 95% interval of a row's plotted value (stats.estimate of
    its samples), or (None, None) below 6 samples."""
    e = estimate(value_samples(row, value))
    return (e.lo, e.hi) if e.has_interval else (None, None)


def bars_tsv(rows, x, value):
    """bars.gp's input: label, value, the 95% interval's low and high ends (the
    value itself when there is no interval: no error bar), class (correct,
    broken, other)."""
    out = ["\t".join([x, value, "lo", "hi", "class"])]
    for r in rows:
        v = value_of(r, value)
        cls = "correct" if "correct" in r["tags"] else "broken" if {"racy", "wrong"} & set(r["tags"]) else "other"
        lo, hi = interval_of(r, value) if v is not None else (None, None)
        lo, hi = (v, v) if lo is None else (lo, hi)
        out.append("\t".join([r["params"][x], _nan(v), _nan(lo), _nan(hi), cls]))
    return "\n".join(out) + "\n"


def _num_key(s):
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, 0.0, s)


def wide_tsv(x_name, series_names, points, intervals=None):
    """lines.gp's "wide" input: x, then one column per series; points maps
    (x, series) to a value; NaN where a point is missing. With intervals, a map
    of (x, series) to (low, high), the low ends of every series follow, then the
    high ends (lines.gp's errors=1); a point without one gets its value twice."""
    xs = sorted({x for x, _ in points}, key=_num_key)
    head = [x_name] + [str(s) for s in series_names]
    if intervals is not None:
        head += [f"{s} lo" for s in series_names] + [f"{s} hi" for s in series_names]
    out = ["\t".join(head)]
    for xv in xs:
        vals = [points.get((xv, s)) for s in series_names]
        cells = [str(xv)] + [_nan(v) for v in vals]
        if intervals is not None:
            ends = [intervals.get((xv, s), (v, v)) for s, v in zip(series_names, vals)]
            cells += [_nan(lo if lo is not None else v) for (lo, _), v in zip(ends, vals)]
            cells += [_nan(hi if hi is not None else v) for (_, hi), v in zip(ends, vals)]
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


def lines_tsv(rows, x, series, value):
    """One line per value of the series parameter, in order of first appearance,
    with each point's 95% interval (wide_tsv's intervals)."""
    ser = list(dict.fromkeys(r["params"][series] for r in rows)) if series else [value]
    points, intervals = {}, {}
    for r in rows:
        key = (r["params"][x], r["params"][series] if series else value)
        if key not in points:
            points[key] = value_of(r, value)
            intervals[key] = interval_of(r, value)
    return wide_tsv(x, ser, points, intervals)


# ------------------------------------------------------- service experiments
def parse_wrk(text):
    """The figures of one wrk run, from the JSON line bench/server/wrk-json.lua
    prints at its end: {requests, duration_s, ops_per_s, p50_us, p90_us, p99_us,
    max_us, mean_us, errors (socket errors and timeouts), non2xx}; None if absent."""
    for line in reversed(text.splitlines()):
        if line.startswith('{"wrk":'):
            try:
                w = json.loads(line)["wrk"]
            except (ValueError, KeyError):
                return None
            e, lat = w["errors"], w["latency_us"]
            secs = w["duration_us"] / 1e6
            return {
                "requests": w["requests"],
                "duration_s": secs,
                "ops_per_s": w["requests"] / secs if secs > 0 else None,
                "p50_us": lat["p50"],
                "p90_us": lat["p90"],
                "p99_us": lat["p99"],
                "max_us": lat["max"],
                "mean_us": lat["mean"],
                "errors": e["connect"] + e["read"] + e["write"] + e["timeout"],
                "non2xx": e["status"],
            }
    return None


def parse_counts(tail):
    """A server's counts: the last JSON object it printed after its first line."""
    for line in reversed(tail.splitlines()):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict):
            return o
    return None


SERVICE_METRICS = ["p50_us", "p90_us", "p99_us", "max_us", "errors", "non2xx", "cpu_us", "sleeps"]


def server_costs(counts):
    """What each reply cost the server, from the counts of its last line: CPU time
    (user + system, µs) and sleeps (voluntary context switches: a thread of the
    server waited; the involuntary ones are other programs taking the CPU), per
    response; None where the server did not say."""
    n = (counts or {}).get("responses")
    if not n or "cpu_s" not in counts:
        return {"cpu_us": None, "sleeps": None}
    return {"cpu_us": counts["cpu_s"] * 1e6 / n, "sleeps": counts["voluntary_cs"] / n}


def service_rows(lines, experiment, configs, rounds, baseline=None):
    """One row per configuration of a service experiment, from its runs' lines
    (one per round; a missing round is None in round_values, which keeps
    requests/s as ops_per_s and the others as metric:NAME): the median
    requests/s with its range, the medians of the latency figures, and against
    a baseline ({param: value}) each round's requests/s over the baseline's in
    the same round, and their median (above 1: more requests than the baseline)."""
    rows = []
    for cfg in configs:
        ms = metrics_of(lines, experiment, cfg)
        by_rep = {m["_bench"]["rep"]: m for m in ms}
        rps = [by_rep[r]["ops_per_s"] if r in by_rep else None for r in range(1, rounds + 1)]
        got = [x for x in rps if x is not None]
        per = {f"metric:{k}": [by_rep[r]["metrics"].get(k) if r in by_rep else None for r in range(1, rounds + 1)] for k in SERVICE_METRICS}
        rows.append(
            {
                "params": cfg,
                "runs": len(got),
                "ops_per_s": median(got),
                "ops_per_s_min": min(got) if got else None,
                "ops_per_s_max": max(got) if got else None,
                "round_values": {"ops_per_s": rps} | per,
                "metrics": {k: median((m.get("metrics") or {}).get(k) for m in ms) for k in SERVICE_METRICS},
                "tags": [],
                "ok": bool(got),
            }
        )
    for row in rows:
        row["ratios"], row["ratio"] = None, None
        if baseline:
            b = baseline_row(rows, row, baseline)
            if b is not None:
                pairs = zip(row["round_values"]["ops_per_s"], b["round_values"]["ops_per_s"])
                row["ratios"] = [x / y if x is not None and y else None for x, y in pairs]
                row["ratio"] = median(row["ratios"])
    return rows


def service_md(rows, names, baseline=None):
    """A service experiment's Markdown table: requests/s and p50/p99 latency, each
    the median of the rounds with its 95% interval, and the ratio to the baseline."""
    vary = varying(rows, names) or list(names)
    bcol = [f"× {', '.join(str(v) for v in baseline.values())}"] if baseline else []
    head = vary + ["runs", "requests/s (95% interval)", "min–max"] + bcol + ["p50 ms", "p99 ms", "max ms", "server CPU µs/reply", "sleeps/reply", "errors"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join([":--"] * len(vary) + ["--:"] * (len(head) - len(vary))) + "|"]

    def ms(key, r):
        xs = [x / 1000 for x in r["round_values"][f"metric:{key}"] if x is not None]
        return fmt_estimate(estimate(xs)) if xs else "–"

    for r in rows:
        m = r["metrics"]
        rng = f"{fmt(r['ops_per_s_min'])}–{fmt(r['ops_per_s_max'])}" if r["ops_per_s_min"] is not None else "–"
        rps = [x for x in r["round_values"]["ops_per_s"] if x is not None]
        cells = [r["params"][n] for n in vary] + [str(r["runs"]), fmt_estimate(estimate(rps)) if rps else "–", rng]
        cells += [fmt(r["ratio"])] if baseline else []
        errors = None if m["errors"] is None else m["errors"] + (m["non2xx"] or 0)
        cells += [ms("p50_us", r), ms("p99_us", r), fmt(m["max_us"] / 1000 if m["max_us"] is not None else None)]
        cells += [fmt(m["cpu_us"]), fmt(m["sleeps"]), fmt(errors)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
