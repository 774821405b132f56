-- wrk's summary as one JSON line on stdout, after its own report: the figures
-- the harness's service experiments read (bench/harness/experiments.py). Only
-- done() is defined, so wrk keeps its fast path (no Lua per request).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk":{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
