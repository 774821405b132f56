"""bench/gil.toml's summary code: the C / C + GIL / CPython table, the I/O and
convoy tables, and their three charts."""

from harness.data import wide_tsv
from harness.figures import markdown_table
from harness.stats import fmt

SERIES = ("C", "C+GIL", "CPython", "C+GIL, released in the kernel")


def _m(row, key):
    return row["metrics"].get(key) if row else None


def tables(s):
    table = []
    for r in s.rows("cpu"):
        t = r["params"]["threads"]
        py, na = s.row("cpython", {"threads": t}), s.row("native", {"threads": t})
        table.append(
            {
                "threads": int(t),
                "c": _m(r, "speedup_nogil"), "c_gil": _m(r, "speedup_gil"), "c_gil_native": _m(na, "speedup_native"),
                "cpython_threads": _m(py, "speedup_threads"), "cpython_processes": _m(py, "speedup_processes"),
                "par_c": _m(r, "parallelism_nogil"), "par_c_gil": _m(r, "parallelism_gil"),
                "par_c_gil_native": _m(na, "parallelism_native"), "par_cpython": _m(py, "parallelism_threads"),
            }
        )  # fmt: skip
    io = []
    for r in s.rows("io"):
        pt = s.row("cpython_io", {"threads": r["params"]["threads"]})
        io.append(
            {
                "threads": int(r["params"]["threads"]),
                "c_gil_s": r["median_s"],
                "cpython_s": pt and pt["median_s"],
                "cpython_inproc_s": _m(pt, "wall_s"),
            }
        )
    keys = ("p50_us", "p99_us", "alone_p50_us", "alone_p99_us", "per_s", "alone_per_s", "slowdown")
    convoy = [{"interval_ms": int(r["params"]["interval"])} | {k: _m(r, k) for k in keys} for r in s.rows("convoy")]
    s.extra |= {"table": table, "io": io, "convoy": convoy}

    x = lambda v: "–" if v is None else f"{fmt(v)}×"  # noqa: E731
    ms = lambda v: fmt(v / 1000 if v is not None else None)  # noqa: E731
    py = next((m.get("python") for m in s.lines("cpython")), None)
    out = [f"CPython here: {py or 'not run'}.", ""]
    out += markdown_table(
        ["threads", "C", "C + GIL", "C + GIL released in the kernel", "CPython threads", "CPython processes",
         "parallelism C", "C + GIL", "released", "CPython threads"],
        [[r["threads"], x(r["c"]), x(r["c_gil"]), x(r["c_gil_native"]), x(r["cpython_threads"]),
          x(r["cpython_processes"]), fmt(r["par_c"]), fmt(r["par_c_gil"]), fmt(r["par_c_gil_native"]),
          fmt(r["par_cpython"])] for r in table],
        ["--:"] * 10,
    )  # fmt: skip
    out.append("")
    cols = ("c", "c_gil", "cpython_threads", "c_gil_native")
    pcols = ("par_c", "par_c_gil", "par_cpython", "par_c_gil_native")
    sp = {(r["threads"], n): r[c] for r in table for n, c in zip(SERIES, cols)}
    par = {(r["threads"], n): r[c] for r in table for n, c in zip(SERIES, pcols)}
    out += s.chart(
        "lines", wide_tsv("threads", SERIES, sp), "gil-speedup", "CPU work: speedup over one thread (dashed: ideal)",
        xlabel="threads", ylabel="speedup over one thread (x)", ideal=2,
    )  # fmt: skip
    # CPU time / wall time does not move with the clock speed or a noisy neighbour
    # the way a speedup does: the steadier picture of "one at a time"
    out += s.chart(
        "lines", wide_tsv("threads", SERIES, par), "gil-parallelism",
        "CPU work: parallelism (CPU time / wall time; dashed: ideal)",
        xlabel="threads", ylabel="threads running at once, on average", ideal=2,
    )  # fmt: skip
    out += [
        "I/O: N threads, one 100 ms blocking call each (hyperfine medians of the whole process; CPython also "
        "timed inside, without its start-up):",
        "",
    ]
    out += markdown_table(
        ["threads", "C + GIL s", "CPython threads s", "CPython, in-process s"],
        [[r["threads"], fmt(r["c_gil_s"]), fmt(r["cpython_s"]), fmt(r["cpython_inproc_s"])] for r in io],
        ["--:"] * 4,
    )
    out += ["", "Convoy: an I/O thread's response latency (ms) against a CPU-bound thread, by switch interval, and alone:", ""]
    out += markdown_table(
        ["switch interval", "p50", "p99", "alone p50", "alone p99", "responses/s", "alone", "fewer"],
        [[f"{r['interval_ms']} ms", ms(r["p50_us"]), ms(r["p99_us"]), ms(r["alone_p50_us"]), ms(r["alone_p99_us"]),
          fmt(r["per_s"]), fmt(r["alone_per_s"]), x(r["slowdown"])] for r in convoy],
        ["--:"] * 8,
    )  # fmt: skip
    out.append("")
    names = ("p50 vs CPU thread", "p99 vs CPU thread", "p50 alone", "p99 alone")
    lat = {(r["interval_ms"], n): r[k] / 1000 if r[k] is not None else None for r in convoy for n, k in zip(names, keys[:4])}
    out += s.chart(
        "lines", wide_tsv("interval_ms", names, lat), "gil-convoy",
        "convoy: I/O response latency against switch interval (log scales)",
        xlabel="switch interval (ms)", ylabel="latency (ms, log)", logx=1, logy=1,
    )  # fmt: skip
    return out
