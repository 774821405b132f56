"""bench/async.toml's summary code: lib's loop, threads and CPython's asyncio side
by side for many sleepers (wall and memory per task against the task count, two
charts), and the switch and gather columns."""

from harness import stats
from harness.data import wide_tsv
from harness.figures import markdown_table
from harness.stats import fmt

SIDES = (("lib's loop", "waiters"), ("threads", "waiters_threads"), ("CPython asyncio", "waiters_cpython"))


def _median(s, exp, sel, key):
    xs = [x for x in s.samples(exp, sel, f"metric:{key}") if x is not None]
    return stats.median(xs) if xs else None


def tables(s):
    table = []
    for n in sorted({int(r["params"]["tasks"]) for _, exp in SIDES for r in s.rows(exp)}):
        row = {"tasks": n}
        for name, exp in SIDES:
            sel = {"tasks": str(n)}
            row[name] = {k: _median(s, exp, sel, k) for k in ("wall_units", "create_ms", "rss_per_task_bytes")}
        table.append(row)
    s.extra["waiters"] = table
    if not table:
        return []
    ms = lambda v: fmt(v * 100) if v is not None else "–"  # noqa: E731  (units of 100 ms -> ms)
    out = ["Many sleepers: wall time in ms (one 100 ms sleep each; creation included) and resident "
           "bytes per sleeping task, medians of the programs' own runs:", ""]
    head = ["tasks"] + [f"{n} ms" for n, _ in SIDES] + [f"{n} B/task" for n, _ in SIDES]
    out += markdown_table(
        head,
        [[f"{r['tasks']:,}"] + [ms(r[n]["wall_units"]) for n, _ in SIDES]
         + [fmt(r[n]["rss_per_task_bytes"]) for n, _ in SIDES] for r in table],
        ["--:"] * len(head),
    )  # fmt: skip
    out.append("")
    names = [n for n, _ in SIDES]
    wall = {(r["tasks"], n): (r[n]["wall_units"] * 100 if r[n]["wall_units"] is not None else None)
            for r in table for n in names}  # fmt: skip
    rss = {(r["tasks"], n): r[n]["rss_per_task_bytes"] for r in table for n in names}
    if len(table) < 2:  # the quick run's one task count: a table, no chart
        return out + _columns(s)
    why = "threads end near 32,000 here: pid_max"
    out += s.chart(
        "lines", wide_tsv("tasks", names, wall), "async-waiters-wall",
        f"N sleepers x 100 ms: wall time (log-log; {why})",
        xlabel="tasks (N)", ylabel="wall time, ms (log)", logx=1, logy=1,
    )  # fmt: skip
    out += s.chart(
        "lines", wide_tsv("tasks", names, rss), "async-waiters-rss",
        f"N sleepers: resident bytes per task (log-log; {why})",
        xlabel="tasks (N)", ylabel="bytes per task (log)", logx=1, logy=1,
    )  # fmt: skip
    return out + _columns(s)


def _columns(s):
    cols = []
    for label, exp, key in (
        ("task switch, ns", "switch", "tasks_ns"), ("CPython task switch, ns", "switch_cpython", "tasks_ns"),
        ("thread switch (condvar), ns", "switch", "condvar_ns"), ("thread switch (futex), ns", "switch", "futex_ns"),
        ("thread switch (pipe), ns", "switch", "pipe_ns"),
        ("gather 2/1/3 units, ms past 300", "gather", "overhead_ms"),
        ("CPython gather, ms past 300", "gather_cpython", "overhead_ms"),
    ):  # fmt: skip
        cols.append((label, _median(s, exp, {}, key)))
    s.extra["columns"] = dict(cols)
    out = ["Switches and gather (medians of the runs):", ""]
    out += markdown_table(["figure", "median"], [[k, fmt(v)] for k, v in cols], [":--", "--:"])
    out.append("")
    return out
