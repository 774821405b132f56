"""bench/patterns.toml's summary code: the token bucket's achieved rate (with its 2%
goal on the full run's 10 s, no goal on the quick run's 0.3 s), the graceful
drain against the longest request plus 100 ms, and the pool-size chart."""

from harness.data import wide_tsv
from harness.stats import estimate


def token_bucket_rate(s, spec):
    """The rate the server read ÷ the configured rate, one sample per run."""
    xs = s.paired("token_bucket", {}, {}, ("metric:achieved_rate", "metric:configured_rate"))
    over = {"sources": ["token_bucket"]}
    if not s.quick:
        over["goal"] = "0.98 to 1.02"
    return s.figure(spec, xs, **over)


def drain_over_bound(s, spec):
    """drain_ms ÷ (latency + 100 ms), for the graceful stop."""
    out = []
    for line in s.lines("shutdown_wrk", {"variant": "graceful"}):
        latency = float(line["_bench"]["params"]["latency"])
        drain = (line.get("metrics") or {}).get("drain_ms")
        if drain is not None:
            out.append(drain / (latency + 100))
    return s.figure(spec, out, sources=["shutdown_wrk"])


POOL_SIZES = (1, 2, 4, 8, 16)


def tables(s):
    """p50 and p99 latency against the pool's size (conn-pool-size, whose run
    tries every size in turn), each the median of the --json runs with its
    interval."""
    lines = s.lines("pool_size")
    if not lines:
        return []
    points, intervals = {}, {}
    for size in POOL_SIZES:
        for q in ("p50", "p99"):
            e = estimate([(m.get("metrics") or {}).get(f"{q}_ms_{size}") for m in lines])
            if e.value is not None:
                points[(size, q)] = e.value
                if e.has_interval:
                    intervals[(size, q)] = (e.lo, e.hi)
    return s.chart(
        "lines", wide_tsv("pool size", ("p50", "p99"), points, intervals), "patterns-pool-size",
        "connection pool: latency against pool size, 320 queries/s, a backend serving 4 at once",
        xlabel="connections in the pool", ylabel="latency (ms, log)", logx=1, logy=1, errors=1,
    )  # fmt: skip
