"""bench/barrier.toml's summary code: spin against the other barriers, run by run."""

OTHERS = ("pthread", "condvar")


def against_others(s, spec):
    """spin's ns per episode over the other barriers' in the same --json run:
    over the fastest other at 2 threads, over the slowest or over condvar at the
    most threads of `cost` (oversubscribed on a small machine)."""
    exp = spec["from"]
    most = max((int(r["params"]["threads"]) for r in s.rows(exp)), default=0)
    threads = 2 if spec["name"] == "spin_fastest_2" else most
    runs = {v: s.per_run(exp, {"variant": v, "threads": threads}, "metric:episode_ns") for v in ("spin",) + OTHERS}
    pick = {"spin_fastest_2": min, "spin_worst_oversubscribed": max}.get(spec["name"])
    xs = []
    for rep, spin in runs["spin"].items():
        others = [runs[v].get(rep) for v in OTHERS] if pick else [runs["condvar"].get(rep)]
        if spin is not None and all(others):
            xs.append(spin / (pick(others) if pick else others[0]))
    what = spec["what"].replace("at the most threads", f"at {threads} threads")
    return s.figure(spec, xs, what=what)
