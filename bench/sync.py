"""bench/sync.toml's summary code: the primitive cost bars (1 and 2 threads), in
ns with the calibrated mutex floor beside them, and CPython's column."""

from harness import stats
from harness.figures import markdown_table
from harness.stats import fmt

PRIMS = (
    ("mutex", "mutex_ns"),
    ("sem_t", "sem_ns"),
    ("bounded sem", "bsem_ns"),
    ("event wait", "event_ns"),
    ("rwlock read", "rw_read_ns"),
    ("rwlock write", "rw_write_ns"),
    ("fair read", "fair_read_ns"),
    ("fair write", "fair_write_ns"),
)
CPYTHON = {"mutex_ns": "lock_ns", "sem_ns": "sem_ns", "bsem_ns": "bsem_ns", "event_ns": "event_ns"}


def _median(s, exp, sel, key):
    xs = [x for x in s.samples(exp, sel, f"metric:{key}") if x is not None]
    return (stats.median(xs), min(xs), max(xs)) if xs else None


def tables(s):
    out = []
    floor = (s.calibration or {}).get("mutex")
    lines = ["label\tvalue\tmin\tmax\tclass"]
    rows = []
    for name, key in PRIMS:
        cells = [name]
        for t in ("1", "2"):
            m = _median(s, "costs", {"threads": t}, key)
            if m:
                lines.append(f"{name}, {t}T\t{m[0]}\t{m[1]}\t{m[2]}\tother")
            cells.append(fmt(m[0]) if m else "")
            cells.append(fmt(m[0] / floor) if m and floor else "")
        py = CPYTHON.get(key)
        m = _median(s, "cpython", {}, py) if py else None
        cells.append(fmt(m[0]) if m else "")
        rows.append(cells)
    if len(lines) > 1:
        out += ["ns per acquire and release (medians of the `--json` runs; × the calibrated mutex floor"
                + (f", {fmt(floor)} ns" if floor else "") + "; CPython: one thread):", ""]
        out += markdown_table(
            ["primitive", "1 thread, ns", "× floor", "2 threads, ns", "× floor", "CPython, ns"],
            rows, [":--"] + ["--:"] * 5)
        out.append("")
        out += s.chart("bars", "\n".join(lines) + "\n", "sync-costs",
                       "ns per acquire and release, 1 thread (1T) and 2 threads (2T); whiskers min-max",
                       ylabel="ns per operation (log)", logy=1)
    return out
