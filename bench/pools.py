"""bench/pools.toml's summary code: the process pool's gain from chunking (chunk 1
against its best size, run by run), and the chunking chart with CPython beside,
and the tiny-task and request tables."""

from harness import stats
from harness.data import wide_tsv
from harness.figures import markdown_table
from harness.stats import fmt

CHUNK_SERIES = ("thread pool", "process pool", "CPython ThreadPoolExecutor", "CPython ProcessPoolExecutor")


def _metric(row, key):
    return (row or {}).get("metrics", {}).get(key)


def chunk_gain(s, spec):
    """ns per item at chunk 1 over the best chunk size's, on the process pool: in
    each round of --json runs (every size once per round), chunk 1 over the
    fastest size of that round."""
    sizes = [r["params"]["chunk"] for r in s.rows("chunking") if r["params"]["pool"] == "process"]
    runs = {c: s.per_run("chunking", {"pool": "process", "chunk": c}, "metric:item_ns") for c in sizes}
    one = runs.get("1", {})
    xs = []
    for rep, v1 in sorted(one.items()):
        others = [runs[c].get(rep) for c in sizes if c != "1"]
        others = [x for x in others if x]
        if v1 and others:
            xs.append(v1 / min(others))
    return s.figure(spec, xs, sources=["chunking"])


def _bars(s, exp, of, bars, base, title, ylabel):
    """Bars of one figure per row (label, selection, class): the median of the
    --json runs, whiskers min-max."""
    lines = ["label\tvalue\tmin\tmax\tclass"]
    for label, sel, cls in bars:
        xs = [x for x in s.samples(exp, sel, of) if x is not None]
        if xs:
            lines.append(f"{label}\t{stats.median(xs)}\t{min(xs)}\t{max(xs)}\t{cls}")
    if len(lines) == 1:
        return []
    return s.chart("bars", "\n".join(lines) + "\n", base, title, ylabel=ylabel)


def tables(s):
    out = []
    out += _bars(
        s, "glib", "inproc_ns_op",
        [(f"{name}, {w} threads", {"impl": impl, "workers": w}, "other")
         for w in ("2", "4") for impl, name in (("glib", "GLib"), ("conclab", "lib"))],
        "pools-glib", "ns per tiny task: GLib GThreadPool and the lib pool (median of the runs; whiskers min-max)",
        "ns per task (in-process)",
    )  # fmt: skip
    out += _bars(
        s, "requests", "metric:us_per_request",
        (("pool-per-request", {"variant": "pool-per-request"}, "other"),
         ("pool-reused", {"variant": "pool-reused"}, "correct")),
        "pools-requests", "us per request: a pool per request, one pool reused (median of the runs; whiskers min-max)",
        "us per request",
    )  # fmt: skip
    out += _bars(
        s, "first_result", "metric:first_ms",
        (("as-completed", {"variant": "as-completed"}, "correct"), ("map-ordered", {"variant": "map-ordered"}, "correct")),
        "pools-first-result", "ms to the first result of 5 tasks 50 ms apart (median of the runs; whiskers min-max)",
        "ms to the first result",
    )  # fmt: skip
    # per-item cost against chunk size: both pools, and CPython's executors
    points = {}
    for r in s.rows("chunking"):
        label = "thread pool" if r["params"]["pool"] == "thread" else "process pool"
        points[(int(r["params"]["chunk"]), label)] = _metric(r, "item_ns")
    for r in s.rows("cpython_chunking"):
        label = "CPython %sPoolExecutor" % r["params"]["executor"].capitalize()
        points[(int(r["params"]["chunk"]), label)] = _metric(r, "item_ns")
    if points:
        s.extra["chunking_ns"] = {f"{x} {k}": v for (x, k), v in points.items()}
        chunks = sorted({x for x, _ in points})
        out += ["ns per item against items per chunk (medians of the `--json` runs):", ""]
        out += markdown_table(
            ["chunk"] + list(CHUNK_SERIES),
            [[c] + [fmt(points.get((c, k))) for k in CHUNK_SERIES] for c in chunks],
            ["--:"] * (1 + len(CHUNK_SERIES)),
        )
        out.append("")
        # Pool.map's default (1,250 here) is in the table; beside 1,000 on a log axis
        # its tic label would overwrite that one's
        drawn = {k: v for k, v in points.items() if k[0] in (1, 10, 100, 1000)}
        # only the series that ran (the quick run has no CPython): lines.gp cannot
        # take a column with no value at all
        series = [n for n in CHUNK_SERIES if any(v is not None for (_, k), v in drawn.items() if k == n)]
        out += s.chart(
            "lines", wide_tsv("chunk", series, drawn), "pools-chunking-all",
            "ns per item against chunk size: the two pools of lib and the CPython executors",
            xlabel="items per chunk (log)", ylabel="ns per item (log)", logx=1, logy=1,
        )  # fmt: skip
    # the tiny-task stream: GLib, lib, CPython
    rows = []
    for r in s.rows("glib"):
        rows.append((r["params"]["impl"], r["params"]["workers"], _metric(r, "tasks_per_s"), r.get("inproc_ns_op")))
    for r in s.rows("cpython_tiny"):
        rows.append(("CPython " + r["params"]["executor"], "2", _metric(r, "tasks_per_s"), r.get("inproc_ns_op")))
    if rows:
        s.extra["tiny_tasks"] = [{"impl": i, "workers": w, "tasks_per_s": t, "ns": n} for i, w, t, n in rows]
        out += ["A stream of tiny tasks (medians of the `--json` runs; the clock from the first submit to all done):", ""]
        out += markdown_table(
            ["pool", "threads", "tasks/s", "ns per task"],
            [[i, w, fmt(t), fmt(n)] for i, w, t, n in rows],
            [":--", "--:", "--:", "--:"],
        )
        out.append("")
    return out
