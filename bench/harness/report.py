"""REPORT.md and its pieces: provenance, calibration, warnings, times and
budgets. Text from data; no processes, no files."""

from .figures import markdown_table
from .stats import fmt


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


def calibration_md(cal, refs):
    if not cal:
        return []
    out = [
        "## Calibration: this machine's floors",
        "",
        "Measured at the start of this run by `bench/calibrate` (median of 5 repeats). "
        "Each chapter's per-operation costs read best as multiples of these.",
        "",
        "The reference column quotes published figures from other machines (bench/references.json, "
        "each linked to its source): the same kind of cost, not the same hardware.",
        "",
    ]
    rows = []
    for c in cal:
        ref = "; ".join(
            f"{r['ns']} ns: {r['what']}, {r['machine']} ([source]({r['url']}))"
            for r in refs
            if r.get("compare") == f"calibration:{c['name']}"
        )
        rows.append([c["name"], fmt(c["ns"]), f"{fmt(c['ns_min'])}–{fmt(c['ns_max'])}", c["what"], ref or "–"])
    out += markdown_table(["floor", "ns", "min–max", "what", "reference"], rows, [":--", "--:", "--:", ":--", ":--"])
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
