"""bench/procs.toml's summary code: fork's cost per GiB and where it crosses
spawn's, the IPC table beside ipc-bench's, the start-cost table with CPython's,
and the IPC and bandwidth charts."""

from harness import stats
from harness.data import wide_tsv
from harness.figures import markdown_table
from harness.stats import fmt, fmt_estimate

# the demo's mechanisms, their metric, and ipc-bench's row for them (100-byte ping-pong,
# msg/s, i5-4590S, Ubuntu 20.04: goldsborough/ipc-bench README.md at 1579b65)
MECHS = (
    ("pipe", "pipe_per_s", "Pipes", 162441),
    ("socketpair", "socketpair_per_s", "Domain sockets", 130372),
    ("mq", "mq_per_s", "Message Queues", 232253),
    ("ring-spin", "ring_spin_per_s", "Shared Memory (a spinning reader)", 4702557),
    ("ring-futex", "ring_futex_per_s", None, None),
    ("ring-eventfd", "ring_eventfd_per_s", None, None),
    ("eventfd", "eventfd_per_s", None, None),
)
SIZES = ("64", "8192", "65536")


def _sweep(s, variant):
    """{rss MiB: {rep: start_us}} of one start method."""
    out = {}
    for r in s.rows("start"):
        if r["params"]["variant"] == variant:
            rss = int(r["params"]["rss"])
            out[rss] = s.per_run("start", {"variant": variant, "rss": r["params"]["rss"]}, "metric:start_us")
    return out


def _slope(points):
    """Least squares slope of [(x, y)], or None."""
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def fork_slope(s, spec):
    """fork's µs per MiB fitted over the RSS sweep, run by run, in ms per GiB."""
    sweep = _sweep(s, "fork")
    reps = set.intersection(*(set(v) for v in sweep.values())) if sweep else set()
    xs = []
    for rep in sorted(reps):
        b = _slope([(rss, by_rep[rep]) for rss, by_rep in sweep.items() if by_rep[rep] is not None])
        if b is not None:
            xs.append(b * 1024 / 1000)
    return s.figure(spec, xs, sources=["start"])


def cross(s, spec):
    """The RSS at which fork's fitted line meets spawn's median (spawn is flat)."""
    fork = {rss: stats.median(v.values()) for rss, v in _sweep(s, "fork").items()}
    spawn = [stats.median(v.values()) for v in _sweep(s, "spawn").values()]
    points = [(x, y) for x, y in fork.items() if y is not None]
    b, level = _slope(points), stats.median(spawn)
    at = None
    if b and b > 0 and level is not None:
        a = sum(y for _, y in points) / len(points) - b * sum(x for x, _ in points) / len(points)
        at = (level - a) / b
    return s.derived(spec["name"], spec["what"], at, sources=["start"], unit=" MiB")


def _floor_mb_s(s):
    """The calibrated memcpy floor in MB/s (its ns are per MiB), or None."""
    ns = s.calibration.get("memcpy")
    return 1048576 / ns * 1e3 if ns else None


def over_memcpy_floor(s, spec):
    """A bandwidth of the copy experiment as a share of the calibrated memcpy floor."""
    floor = _floor_mb_s(s)
    metric = spec["name"].removesuffix("_over_floor")
    xs = [x / floor for x in s.samples("copy", {}, f"metric:{metric}") if x is not None] if floor else []
    return s.figure(spec, xs, sources=["copy"])


def _ipc_estimates(s):
    """{(mechanism, size): Estimate} of round trips/s over the ipc runs."""
    out = {}
    for size in SIZES:
        if s.row("ipc", {"bytes": size}) is None:
            continue
        for name, metric, _, _ in MECHS:
            out[(name, size)] = stats.estimate(s.samples("ipc", {"bytes": size}, f"metric:{metric}"))
    return out


def _rank(values):
    """1 for the largest of {key: value}, and so on."""
    order = sorted((k for k in values if values[k] is not None), key=lambda k: -values[k])
    return {k: i + 1 for i, k in enumerate(order)}


def _ipc_table(s, est):
    sizes = [z for z in SIZES if (MECHS[0][0], z) in est]
    ours = {n: est[(n, "64")].value for n, _, ref, _ in MECHS if ref and (n, "64") in est}
    theirs = {n: v for n, _, ref, v in MECHS if ref}
    r_ours, r_theirs = _rank(ours), _rank(theirs)
    head = ["mechanism"] + [f"{int(z):,} B" for z in sizes] + ["ipc-bench, 100 B", "rank here / there"]
    rows, extra = [], []
    for name, _, ref, v in MECHS:
        cells = [name] + [fmt_estimate(est[(name, z)]) for z in sizes]
        cells += [f"{v:,} ({ref})" if ref else "–", f"{r_ours.get(name, '–')} / {r_theirs[name]}" if ref else "–"]
        rows.append(cells)
        extra.append({"mechanism": name} | {z: est[(name, z)].value for z in sizes})
    s.extra["ipc_table"] = extra
    out = ["Round trips per second (median of the runs, 95% interval), beside ipc-bench's published "
           "100-byte ping-pong (i5-4590S, Ubuntu 20.04); ranks among the four that both measure:", ""]
    return out + markdown_table(head, rows, [":--"] + ["--:"] * (len(head) - 1)) + [""]


def _ipc_charts(s, est):
    out = []
    bars = []
    for name, metric, _, _ in MECHS:
        xs = [x for x in s.samples("ipc", {"bytes": "64"}, f"metric:{metric}") if x is not None]
        if xs:
            bars.append(f"{name}\t{stats.median(xs)}\t{min(xs)}\t{max(xs)}\tcorrect")
    if bars:
        tsv = "mechanism\tround_trips_per_s\tmin\tmax\tclass\n" + "\n".join(bars) + "\n"
        out += s.chart("bars", tsv, "procs-ipc", "round trips per second, 64-byte messages (median; whiskers: min-max)",
                       ylabel="round trips per second (log)", logy=1)  # fmt: skip
    points = {(int(z), n): e.value for (n, z), e in est.items() if e.value is not None}
    if len({x for x, _ in points}) > 1:
        tsv = wide_tsv("bytes", [n for n, _, _, _ in MECHS], points)
        out += s.chart("lines", tsv, "procs-ipc-sizes", "round trips per second against the message size",
                       xlabel="message bytes (log2)", ylabel="round trips per second (log)", logx=1, logy=1)  # fmt: skip
    return out


def _bandwidth_chart(s):
    bars = []
    for label, exp, sel, metric in (
        ("C: pipes", "copy", {}, "copy_mb_s"),
        ("C: shared memory", "copy", {}, "shm_mb_s"),
        ("C: one memcpy", "copy", {}, "memcpy_mb_s"),
        ("CPython: Queues", "python", {"rss": "0"}, "copy_mb_s"),
        ("CPython: shared_memory", "python", {"rss": "0"}, "shm_mb_s"),
    ):
        xs = [x for x in s.samples(exp, sel, f"metric:{metric}") if x is not None] if s.rows(exp) else []
        if xs:
            cls = "other" if "memcpy" in label else "correct"
            bars.append(f"{label}\t{stats.median(xs)}\t{min(xs)}\t{max(xs)}\t{cls}")
    if not bars:
        return []
    tsv = "way\tmb_s\tmin\tmax\tclass\n" + "\n".join(bars) + "\n"
    return s.chart("bars", tsv, "procs-bandwidth", "4 MiB of int32 doubled by a child and back: MB/s (median; whiskers: min-max)",
                   ylabel="MB/s (log)", logy=1)  # fmt: skip


def _start_table(s):
    rows, extra = [], []
    for r in s.rows("start"):
        e = stats.estimate(s.samples("start", r["params"], "metric:start_us"))
        rows.append((r["params"]["variant"], r["params"]["rss"], fmt_estimate(e, " µs")))
        extra.append({"variant": r["params"]["variant"], "rss_mib": int(r["params"]["rss"]), "start_us": e.value})
    for r in s.rows("python"):
        for k in ("fork", "spawn", "forkserver"):
            e = stats.estimate(s.samples("python", r["params"], f"metric:start_{k}_us"))
            rows.append((f"CPython {k}", r["params"]["rss"], fmt_estimate(e, " µs")))
            extra.append({"variant": f"cpython-{k}", "rss_mib": int(r["params"]["rss"]), "start_us": e.value})
    s.extra["start_table"] = extra
    if not rows:
        return []
    out = ["Start + reap (or Process start + join), median of the runs with its 95% interval:", ""]
    return out + markdown_table(["method", "parent RSS (MiB)", "per start"], rows, [":--", "--:", "--:"]) + [""]


def tables(s):
    est = _ipc_estimates(s)
    out = _start_table(s)
    if est:
        out += _ipc_table(s, est) + _ipc_charts(s, est)
    return out + _bandwidth_chart(s)
