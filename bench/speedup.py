"""bench/speedup.toml's summary code: the pool's dispatch cost and Amdahl's s,
round by round; the executors x workloads table and the parallelism chart."""

from harness import stats
from harness.data import wide_tsv
from harness.figures import markdown_table
from harness.stats import fmt

EXECUTORS = ("seq", "threads", "pool", "procs", "gil")
WORKS = ("cpu", "io-sleep", "io-real", "mixed")


def dispatch_us(s, spec):
    """(pool - seq) / tasks in µs, from each round's pool and seq runs."""
    w = "2" if spec["name"].endswith("_2w_us") else "1"
    pool = s.row(spec["from"], {"variant": "pool", "workers": w})
    tp = s.samples(spec["from"], {"variant": "pool", "workers": w}, "time")
    ts = s.samples(spec["from"], {"variant": "seq", "workers": w}, "time")
    xs = [(p - q) / pool["ops"] * 1e6 for p, q in zip(tp, ts)] if pool and pool["ops"] else []
    return s.figure(spec, xs)


def amdahl(s, spec):
    """Amdahl's serial fraction s fitted to threads in each round, by least squares
    on 1/S - 1/W = s (1 - 1/W) over W > 1, S the round's seq ÷ threads."""
    exp = spec["from"]
    ws = sorted({int(r["params"]["workers"]) for r in s.rows(exp)} - {1})
    per_w = {w: s.paired(exp, {"variant": "seq", "workers": w}, {"variant": "threads", "workers": w}, "time") for w in ws}
    xs = []
    for r in range(min((len(v) for v in per_w.values()), default=0)):
        pts = [(1 - 1 / w, 1 / per_w[w][r] - 1 / w) for w in ws]
        xs.append(sum(x * y for x, y in pts) / sum(x * x for x, _ in pts))
    return s.figure(spec, xs)


def all_speedup(s, exp, executor, work):
    """The median in-process speedup over seq of the `all` runs (seq itself: 1)."""
    lines = s.lines(exp, {"variant": executor, "work": work})
    return stats.median(1 if executor == "seq" else (m.get("metrics") or {}).get("speedup") for m in lines)


def tables(s):
    table = []
    for e in EXECUTORS:
        py = "threads" if e == "gil" else e
        row = {"executor": e} | {w: all_speedup(s, "table", e, w) for w in WORKS}
        row |= {"cpython_cpu": all_speedup(s, "python", py, "cpu"), "cpython_io_sleep": all_speedup(s, "python", py, "io-sleep")}
        table.append(row)
    table.append(
        {"executor": "asyncio (CPython only)"}
        | {"cpython_cpu": all_speedup(s, "python", "asyncio", "cpu"), "cpython_io_sleep": all_speedup(s, "python", "asyncio", "io-sleep")}
    )
    s.extra["table"] = table
    x = lambda v: "–" if v is None else f"{fmt(v)}×"  # noqa: E731
    cols = WORKS + ("cpython_cpu", "cpython_io_sleep")
    out = markdown_table(
        ["executor", "cpu", "io-sleep", "io-real", "mixed", "CPython cpu", "CPython io-sleep"],
        [[r["executor"]] + [x(r.get(c)) for c in cols] for r in table],
        [":--"] + ["--:"] * 6,
    )
    out.append("")
    # parallelism against W, from the cpu sweep's metrics (no runs of its own)
    rows = s.rows("cpu")
    series = [v for v in dict.fromkeys(r["params"]["variant"] for r in rows) if v != "seq"]
    points = {(r["params"]["workers"], r["params"]["variant"]): r["metrics"].get("parallelism") for r in rows}
    if rows:
        out += ["How many cores each executor kept busy in the `cpu` sweep (its metrics runs):", ""]
        out += s.chart(
            "lines", wide_tsv("workers", series, points), "speedup-parallelism",
            "cpu, 64 tasks: parallelism (CPU s / wall s, whole run) against workers",
            xlabel="workers (W)", ylabel="CPU s / wall s", logx=1, logy=0, ideal=0,
        )  # fmt: skip
    return out
