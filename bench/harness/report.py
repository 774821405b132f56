"""REPORT.md and its pieces: provenance, calibration, warnings, times and
budgets. Text from data; no processes, no files."""

from .figures import markdown_table
from .stats import estimate, fmt


def provenance_md(p):
    b = p["build"]
    rows = [
        ("host", p["host"]), ("date (UTC)", p["date_utc"]), ("git commit", f"`{p['git_commit']}`"),
        ("mode", f"{p['mode']}: `{p['command']}`"), ("CPU", p["cpu_model"]), ("nproc", p["nproc"]),
        ("kernel", p["kernel"]), ("scaling governor", p["scaling_governor"]),
        ("load average at start", p["loadavg_at_start"]), ("compiler", p["cc_version"]),
        ("gcc", p["gcc_version"]), ("build", f"`{b['dir']}`"),
        ("buildtype / optimization", f"{b['buildtype']} / -O{b['optimization']}"),
        ("b_sanitize / b_ndebug / b_lto", f"{b['b_sanitize']} / {b['b_ndebug']} / {b['b_lto']}"),
        ("c_args", f"`{b['c_args'] or '(none)'}`"), ("c_link_args", f"`{b['c_link_args'] or '(none)'}`"),
    ] + list(p["tools"].items())  # fmt: skip
    out = ["| | |", "|:--|:--|"] + [f"| {k} | {v} |" for k, v in rows]
    out += ["", "Compile command of each demo (from compile_commands.json):", ""]
    out += [f"- {k}: `{v}`" for k, v in p["compile_commands"].items()]
    return "\n".join(out) + "\n"


def floor_estimates(lines):
    """bench/calibrate's floors, each with the harness's interval of its repeats
    (stats.estimate of its samples): ns (the median), lo, hi, n, interval, settled."""
    out = []
    for c in lines:
        e = estimate(c.get("samples") or [c["ns"]])
        out.append(c | {"ns": e.value, "lo": e.lo, "hi": e.hi, "n": e.n, "interval": e.method or None, "settled": e.settled})
    return out


def fmt_ns(ns, lo=None, hi=None):
    """A duration in the unit that reads best: '15.4 ns', '2.39 µs (2.21–2.60)', '1.43 ms'."""
    unit, div = ("ns", 1) if ns < 1e3 else ("µs", 1e3) if ns < 1e6 else ("ms", 1e6)
    s = f"{fmt(ns / div)} {unit}"
    return s + (f" ({fmt(lo / div)}–{fmt(hi / div)})" if lo is not None and hi is not None else "")


def calibration_md(cal, refs, cpu_share=None, meltdown=None):
    """The calibration table: each floor's median with its 95% interval, what it
    times, and the published figures of bench/references.json beside it."""
    if not cal:
        return []
    repeats = max(c["n"] for c in cal)
    out = [
        "## Calibration: this machine's floors",
        "",
        f"Measured at the start of this run by `bench/calibrate`: {repeats} interleaved repeats (every floor once, "
        "then every floor again), each about 20 ms, after a warm-up; the median of the repeats with its 95% "
        "interval, marked unsettled when wider than ±10%. Each chapter's per-operation costs read best as "
        "multiples of these (a summary figure's `floor`).",
        "",
        "The reference column quotes published figures from other machines (bench/references.json, "
        "each linked to its source): the same kind of cost, not the same hardware.",
        "",
    ]
    if cpu_share is not None:
        out += [f"_While it ran: CPU steal {cpu_share[0]}%, other programs {cpu_share[1]}% of the CPU._", ""]
    if meltdown:
        out += [f"Kernel page-table isolation (`/sys/devices/system/cpu/vulnerabilities/meltdown`): {meltdown}.", ""]
    rows = []
    for c in cal:
        value = fmt_ns(c["ns"], c.get("lo"), c.get("hi"))
        if c.get("lo") is not None and not c.get("settled"):
            value += " unsettled"
        what = c["what"]
        if c.get("bytes") and c["ns"]:
            gb = lambda ns: c["bytes"] / ns  # noqa: E731  bytes per ns = GB/s
            what += f": {fmt(gb(c['ns']))} GB/s"
            if c.get("lo") is not None:
                what += f" ({fmt(gb(c['hi']))}–{fmt(gb(c['lo']))})"
        ref = "; ".join(
            f"{fmt_ns(r['ns'])}: {r['what']}; {r['machine']} ([source]({r['url']}))"
            for r in refs
            if r.get("compare") == f"calibration:{c['name']}"
        )
        rows.append([c["name"], value, what, ref or "–"])
    out += markdown_table(["floor", "median (95% interval)", "what", "reference"], rows, [":--", "--:", ":--", ":--"])
    return out + ["", "([calibration.jsonl](calibration.jsonl))", ""]


def warnings(prov, steal, other, noise, nrows):
    out = []
    g = prov["scaling_governor"]
    if g not in ("n/a", "performance"):
        out.append(
            f"**Warning**: CPU frequency scaling is on (governor `{g}`): times can vary with the clock. "
            "For steadier figures: `cpupower frequency-set -g performance`."
        )
    if steal > 2:
        out.append(
            f"**Warning**: the hypervisor gave {steal}% of this machine's CPU time to other guests during the run "
            "(steal, in /proc/stat): a virtual core was often not there when a thread wanted it, which moves short "
            "timings and parallel speedups most. Each experiment gives its own figure."
        )
    if other > 5:
        out.append(
            f"**Warning**: other programs used {other}% of the CPU time during the run: they compete for the cores. "
            "Each experiment gives its own figure."
        )
    load = prov["loadavg_at_start"].split()[0] if prov["loadavg_at_start"] != "n/a" else "0"
    if float(load) > prov["nproc"] / 2:
        out.append(
            f"**Warning**: the machine was busy when the run started (load average {load} on {prov['nproc']} cores): "
            "other work competes for the cores."
        )
    if noise:
        ch, exp, params, spread = max(noise, key=lambda n: n[3])
        desc = " ".join(f"{k}={params[k]}" for k in sorted(params))
        out.append(
            f"**Warning**: a noisy machine: {len(noise)} of {nrows} configurations spread by more than 50% of their "
            f"median between runs (worst: {ch} {exp} `{desc}`, {spread * 100:.0f}%). Compare medians and ratios, and "
            "rerun before you trust a small difference."
        )
    return [line for w in out for line in (w, "")]


def times_md(times, quick, wall, child):
    """The time each part took against its quick budget, and the harness's overhead."""
    out = [
        "## Time",
        "",
        "Each part's wall time" + (" against its quick budget (`quick_budget_s` in bench/<chapter>.toml):" if quick else ":"),
        "",
    ]
    rows = []
    for name, t, budget in times:
        flag = " **over budget**" if quick and budget is not None and t > budget else ""
        rows.append([name, f"{t:.1f} s{flag}", f"{budget:g} s" if quick and budget is not None else "–"])
    total_budget = sum(b for _, _, b in times if b is not None)
    rows.append(["all", f"{sum(t for _, t, _ in times):.1f} s", f"{total_budget:g} s" if quick else "–"])
    out += markdown_table(["part", "time", "budget"], rows, [":--", "--:", "--:"])
    over = wall - child
    out += [
        "",
        f"Harness overhead: {over:.2f} s of {wall:.1f} s ({100 * over / wall:.1f}%; at most 3%): the driver's wall "
        "time less the time during which a program it started was running (hyperfine, the demos, gnuplot).",
        "",
    ]
    return out
