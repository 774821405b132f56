"""bench/patterns.toml's summary code: the token bucket's achieved rate (with its 2%
goal on the full run's 10 s, no goal on the quick run's 0.3 s), and the graceful
drain against the longest request plus 100 ms."""


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
    for line in s.lines("shutdown", {"variant": "graceful"}):
        latency = float(line["_bench"]["params"]["latency"])
        drain = (line.get("metrics") or {}).get("drain_ms")
        if drain is not None:
            out.append(drain / (latency + 100))
    return s.figure(spec, out, sources=["shutdown"])
