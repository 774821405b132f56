"""The experiment kinds: each runs its commands through the Runner, writes its
files atomically and returns its part of REPORT.md. A new kind is one function
here, its name in KINDS and in schema.KINDS (bench/README.md, "Adding a kind").

Every kind gets `run` (the Run of bench/harness/cli.py: runner, out, say, fail,
draw, metrics), the chapter and the experiment's resolved settings."""

import json
import math
import os
import resource
import shlex
import shutil
import subprocess
from pathlib import Path

from . import data
from .proc import TIMED_OUT, Service, ServiceError


# ------------------------------------------------------------ commands
# Linux carries a process's peak RSS (ru_maxrss) across exec: a demo forked from
# this 15-20 MB interpreter would report at least that as its own peak. Through a
# small program that forks it (coreutils' timeout, its time limit 0: none), it
# starts afresh, as under hyperfine. Every command the driver runs itself goes so.
FRESH = ["timeout", "0"]


def expand(template, values):
    """The argv of a command template: split like a shell (quotes allowed), then
    each {name} replaced by its value, so that a value stays one word."""
    words = shlex.split(template)
    return [w.format_map(values) if "{" in w else w for w in words]


class _Keep(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def shown(template, chapter, values=None):
    """A command as REPORT.md shows it: the demo by its name, paths relative, and
    the placeholders in values filled in (the others left as they are)."""
    t = template.replace("{demo}", chapter).replace("{source}/", "").replace("{build}/", "")
    return t.format_map(_Keep(values)) if values else t


def installed(program):
    if "/" in program:
        return Path(program).is_file() and os.access(program, os.X_OK)
    return shutil.which(program) is not None


def _secs(x):
    return str(int(x)) if float(x) == int(x) else str(x)


def header(chapter, name, exp):
    title = exp.get("title") or f"{chapter.name} {name}"
    out = [f"### {chapter.name} · {name}", "", title, ""]
    if exp["description"]:
        out += [exp["description"], ""]
    return out, title


def chart_vars(exp, x):
    c = exp["chart"]
    v = {
        "xlabel": c.get("xlabel", x),
        "ylabel": c.get("ylabel", c.get("value", "ns_op")),
        "logy": int(c.get("logy", False)),
        "logx": int(c.get("logx", False)),
        "ideal": c.get("ideal", 0),
    }
    if c.get("kind") in ("lines", "speedup"):
        v["errors"] = 1  # data.lines_tsv writes each point's interval
    if "key" in c:
        v["key"] = c["key"]
    return v


# ------------------------------------------------------------ hyperfine
def parse_json_lines(text):
    """(objects, bad lines) of a --json run's output: one JSON object a line."""
    objs, bad = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            o = json.loads(line)
        except ValueError:
            o = None
        (objs if isinstance(o, dict) else bad).append(o if isinstance(o, dict) else line)
    return objs, bad


def metrics_runs(run, chapter, name, exp, argvs, configs, cnames):
    """Each configuration's --json runs, interleaved (every configuration once,
    then every one again): a machine that slows down over the minutes then slows
    every configuration alike. The lines go to <chapter>.metrics.jsonl."""
    ch = chapter.name
    keep = [m for m in run.metrics[ch] if m["_bench"]["experiment"] != name]
    new, failed = [], set()
    reps = exp["metrics_runs"]
    run.say(f"  metrics: {len(configs)} configurations x {reps} --json runs, interleaved")
    tmp = run.out.temp(f"{ch}.metrics.jsonl")
    with open(tmp, "w") as f:
        for m in keep:
            f.write(json.dumps(m) + "\n")
        f.flush()
        for rep in range(1, reps + 1):
            for i, cfg in enumerate(configs):
                if i in failed:
                    continue
                r = run.runner.run(FRESH + argvs[i] + ["--json"], timeout=exp["timeout"])
                objs, bad = parse_json_lines(r.out)
                what = f"{cnames[i]} --json"
                first = (r.err.splitlines() or [""])[0]
                if not objs:
                    run.fail(ch, name, f"{what} printed no JSON (exit {r.rc}): {first}")
                    failed.add(i)
                elif r.rc != 0:
                    killed = f" (killed after {_secs(exp['timeout'])}s)" if r.rc == TIMED_OUT else ""
                    run.fail(ch, name, f"{what} exited {r.rc}{killed}: {first}")
                    failed.add(i)
                if bad and i not in failed:
                    run.fail(ch, name, f"a --json run of {json.dumps(cfg)} printed a line that is not a JSON object")
                if i in failed:
                    continue
                for o in objs:
                    o["_bench"] = {"experiment": name, "params": cfg, "rep": rep, "exit": r.rc}
                    f.write(json.dumps(o) + "\n")
                    new.append(o)
    run.out.commit(tmp, f"{ch}.metrics.jsonl")
    run.metrics[ch] = keep + new


def hyperfine_rounds(run, base, exp, names, cmdlines):
    """`rounds` rounds of one hyperfine invocation, each timing every configuration
    once (after `warmup` runs in the first round): in a round every configuration
    meets the machine in the same state. Returns the rounds' JSON, or the status
    of a hyperfine that failed."""
    n = exp["rounds"]
    run.say(f"  hyperfine: {len(cmdlines)} configurations x ({exp['warmup']} warm-up + {n} runs), in {n} interleaved rounds")
    log = run.out.temp(f"{base}.hyperfine.log")
    rounds, rc, warm = [], 0, exp["warmup"]
    with open(log, "w") as f:
        for r in range(1, n + 1):
            f.write(f"# round {r} of {n}\n")
            f.flush()
            rj = run.out.temp(f"{base}.hyperfine.json")
            argv = ["hyperfine", "-N", "--warmup", str(warm), "--runs", "1", "--ignore-failure"]
            argv += ["--style", "basic", "--export-json", str(rj)]
            for name, cmd in zip(names, cmdlines):
                argv += ["--command-name", name, cmd]
            limit = exp["timeout"] * (warm + 1) * len(cmdlines) + 60
            res = run.runner.run(argv, timeout=limit, stdout=f, stderr=subprocess.STDOUT)
            rc = res.rc
            if rc == 0:
                try:
                    rounds.append(json.loads(rj.read_text()))
                except ValueError:
                    rc = -1
            rj.unlink(missing_ok=True)
            warm = 0
            if rc != 0:
                break
    run.out.commit(log, f"{base}.hyperfine.log")
    return rounds, rc


def run_hyperfine(run, chapter, name, exp):
    ch, base = chapter.name, f"{chapter.name}-{name}"
    part, title = header(chapter, name, exp)
    values = run.builtins(chapter)
    argv0 = expand(exp["command"], values | {p: "" for p in exp["params"]})[0]
    if not installed(argv0):
        run.say(f"  skipped: {argv0} is not installed")
        return part + [f"Skipped: `{Path(argv0).name if '/' in argv0 else argv0}` is not installed.", ""]

    params = {}
    for p, spec in exp["params"].items():
        params[p] = data.expand_values(spec, chapter.variants, run.nproc)
        if not params[p]:
            run.fail(ch, name, f"parameter '{p}' has no values ('{spec}')")
            return part + ["**FAILED**: a parameter has no values.", ""]
    names = list(params)
    configs = data.configurations(params, exp["exclude"])
    argvs = [expand(exp["command"], values | c) for c in configs]
    cmd_shown = shown(exp["command"], ch)
    cnames = [shown(exp["command"], ch, c) for c in configs]

    if exp["metrics_runs"]:
        metrics_runs(run, chapter, name, exp, argvs, configs, cnames)
    rounds, rc = hyperfine_rounds(run, base, exp, cnames, [shlex.join(a) for a in argvs])

    ps = "; ".join(f"`{p}` = {', '.join(v)}" for p, v in params.items())
    warm = "after one warm-up " if exp["warmup"] == 1 else f"after {exp['warmup']} warm-up runs " if exp["warmup"] else ""
    mruns = f"metrics: median of {exp['metrics_runs']} `--json` runs per configuration." if exp["metrics_runs"] else "no `--json` runs."
    part += [
        f"Command: `{cmd_shown}`, parameters: {ps}",
        f"hyperfine `-N`, {exp['rounds']} interleaved rounds of one run per configuration {warm}(whole process: start-up included); {mruns}",
        "",
    ]
    if rc != 0 or not rounds:
        log = (run.out / f"{base}.hyperfine.log").read_text().splitlines()
        why = next((line for line in log if "error" in line.lower()), log[-1] if log else "")
        run.fail(ch, name, f"hyperfine failed (status {rc}), see {base}.hyperfine.log: {why}")
        return part + [f"**FAILED**: hyperfine exited {rc}; see [{base}.hyperfine.log]({base}.hyperfine.log).", ""]

    merged = data.merge_rounds(rounds, configs)
    run.out.write_json(f"{base}.hyperfine.json", merged)
    run.out.write(f"{base}.hyperfine.csv", data.hyperfine_csv(merged, names))
    run.out.write(f"{base}.hyperfine.md", data.hyperfine_md(merged))
    for r in merged["results"]:
        if any(c != exp["exit"] for c in r["exit_codes"]):
            line = f"{r['command']}: exit codes {','.join(str(c) for c in sorted(set(r['exit_codes'])))}"
            run.fail(ch, name, line)
            part += [f"**FAILED**: `{line}`", ""]

    rows = data.derive_rows(merged, run.metrics[ch], name, exp["metrics"], exp["baseline"], exp["exit"])
    run.out.write_json(f"{base}.rows.json", rows)
    run.out.write(f"{base}.tsv", data.rows_tsv(rows, names, exp["metrics"]))
    table = data.rows_md(rows, names, exp["metrics"], exp["baseline"])
    run.out.write(f"{base}.md", table)
    run.noise += [(ch, name, p, s) for p, s in data.noisy(rows)]
    part += [table.rstrip("\n"), ""]
    if t := data.takeaway(rows, names):
        part.append(t)
    note = ""
    if exp["baseline"]:
        b = ", ".join(str(v) for v in exp["baseline"].values())
        note = (
            f"`× {b}` = ns/op divided by the ns/op of `{b}` at the same other parameters, round by round, "
            "then the median of the rounds (above 1: slower). "
        )
    part += [
        note + "ns/op = hyperfine time / ops, where ops is what the demo reports doing (threads × iters unless "
        "the variant caps it); in-process ns/op is the demo's own timing of the threaded part (median of its `--json` runs).",
        "",
    ]
    part += hyperfine_chart(run, chapter, name, exp, rows, names, title)
    part += [
        f"Files: [hyperfine JSON]({base}.hyperfine.json) · [hyperfine CSV]({base}.hyperfine.csv) · "
        f"[hyperfine Markdown]({base}.hyperfine.md) · [hyperfine log]({base}.hyperfine.log) · "
        f"[table TSV]({base}.tsv) · [rows JSON]({base}.rows.json) · [metrics]({ch}.metrics.jsonl)",
        "",
    ]
    return part


def hyperfine_chart(run, chapter, name, exp, rows, names, title):
    c = exp["chart"]
    kind = c.get("kind", "none")
    if kind == "none":
        return []
    base = f"{chapter.name}-{name}"
    x = c.get("x", names[0])
    value = c.get("value", "ns_op")
    if kind == "bars":
        tsv = data.bars_tsv(rows, x, value)
    else:
        series = c.get("series") or next((n for n in names if n != x), None)
        tsv = data.lines_tsv(rows, x, series, value)
    run.out.write(f"{base}.chart.tsv", tsv)
    if run.draw(kind, run.out / f"{base}.chart.tsv", base, title, chart_vars(exp, x), chapter=chapter.name):
        return [f"![{title}]({base}.png)", "", f"[SVG]({base}.svg) · chart data [{base}.chart.tsv]({base}.chart.tsv)", ""]
    run.fail(chapter.name, name, f"gnuplot could not draw plots/{kind}.gp")
    return ["**FAILED**: no chart.", ""]


# ----------------------------------------------------------------- trace
def run_trace(run, chapter, name, exp):
    """One run (not timed) with --trace into the output folder, and its chart."""
    ch = chapter.name
    cfg = {p: data.expand_values(v, chapter.variants, run.nproc)[0] for p, v in exp["params"].items()}
    values = run.builtins(chapter) | cfg
    exp = exp | {k: exp[k].format_map(values) for k in ("title", "description") if exp.get(k)}
    part, title = header(chapter, name, exp)
    file = exp.get("trace_file") or f"{ch}-{name}.trace.csv"
    tmp = run.out.temp(file, suffix=Path(file).suffix)
    samples_tmp = tmp.with_suffix(".samples.tsv")
    part += [f"Command: `{shown(exp['command'], ch, cfg | {'trace': file})}`", ""]
    try:
        r = run.runner.run(FRESH + expand(exp["command"], values | {"trace": str(tmp)}), timeout=exp["timeout"])
        if r.rc != exp["exit"] or tmp.stat().st_size == 0:
            first = (r.err.splitlines() or [""])[0]
            run.fail(ch, name, f"{shown(exp['command'], ch, cfg | {'trace': file})} exited {r.rc}: {first}")
            return part + [f"**FAILED**: the command exited {r.rc}.", ""]
        run.out.commit(tmp, file)
        samples = Path(file).with_suffix(".samples.tsv").name
        if samples_tmp.exists() and samples_tmp.stat().st_size:
            run.out.commit(samples_tmp, samples)
    finally:
        tmp.unlink(missing_ok=True)
        samples_tmp.unlink(missing_ok=True)
    part += ["Its output:", "", "```", r.out.rstrip("\n"), "```", ""]
    kind = exp["chart"].get("kind", "timeline")
    if kind == "none":
        return part
    src = run.out / (samples if kind == "series" else file)
    extra = exp["chart"].get("args", "").replace("{out}", str(run.out.path))
    if run.draw(kind, src, f"{ch}-{name}", title, extra, chapter=ch):
        return part + [f"![{title}]({ch}-{name}.png)", "", f"[SVG]({ch}-{name}.svg) · trace [{file}]({file})", ""]
    run.fail(ch, name, f"gnuplot could not draw plots/{kind}.gp")
    return part + [f"**FAILED**: no chart. Trace: [{file}]({file})", ""]


# ---------------------------------------------------------------- service
WRK_LUA = "bench/server/wrk-json.lua"  # wrk's summary as one JSON line


def open_files():
    """Raise this process's RLIMIT_NOFILE soft limit to the hard one (its children,
    wrk and the servers, inherit it); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard if hard != resource.RLIM_INFINITY else 1 << 30


def files_needed(connections):
    """Open files a point needs: wrk's sockets and the server's, with room to spare."""
    return 2 * connections + 200


def run_service(run, chapter, name, exp):
    """Each configuration (a server and the parameters) in `rounds` interleaved
    rounds: the server started in its own process group (pinned to CPU 0), then
    `wrk -t1` (pinned to CPU 1) for `duration` seconds, then SIGTERM to the server,
    2 s, and SIGKILL to what is left (proc.Service; Ctrl-C does the same). wrk's
    figures and the server's counts go to <chapter>.metrics.jsonl, one line a run."""
    ch, base = chapter.name, f"{chapter.name}-{name}"
    part, title = header(chapter, name, exp)
    if not installed("wrk") or (exp["pin"] and not installed("taskset")):
        run.say("  skipped: wrk is not installed")
        return part + ["Skipped: `wrk` is not installed (Debian: `apt-get install wrk`).", ""]
    values = run.builtins(chapter)
    params = {p: data.expand_values(v, chapter.variants, run.nproc) for p, v in exp["params"].items()}
    names = list(params)
    configs = data.configurations(params, exp["exclude"])
    limit = open_files()
    cparam = exp["connections"]
    skip = {}
    for i, c in enumerate(configs):
        need = files_needed(int(c[cparam]))
        if need > limit:
            skip[i] = f"needs {need} open files (2 × {cparam} + 200), the limit here is {limit}"
    pin = exp["pin"] and run.nproc >= 2
    dur = float(exp["duration"])
    whole = dur >= 1 and dur == int(dur)
    lua = str(Path(values["source"]) / WRK_LUA)
    cnames = [" ".join(f"{k}={v}" for k, v in c.items()) for c in configs]
    ch_lines = [m for m in run.metrics[ch] if m["_bench"]["experiment"] != name]
    new = []
    run.say(f"  service: {len(configs) - len(skip)} configurations x {exp['rounds']} rounds of wrk for {dur:g} s, interleaved")
    for rnd in range(1, exp["rounds"] + 1):
        for i, cfg in enumerate(configs):
            if i in skip:
                continue
            server = expand(exp["servers"][cfg["server"]], values | cfg)
            if not installed(server[0]):
                skip[i] = f"`{Path(server[0]).name}` is not installed"
                continue
            argv = (["taskset", "-c", "0"] if pin else []) + server
            wrk = ["wrk", "-t1", "-c", cfg[cparam], "-d", f"{int(dur) if whole else math.ceil(dur) + 5}s"]
            svc = Service(run.runner, argv)
            try:
                with svc:
                    url = f"http://{svc.host}:{svc.port}/"
                    load = (["taskset", "-c", "1"] if pin else []) + wrk + ["--latency", "-s", lua, url]
                    r = run.runner.run(load, timeout=dur + 30, interrupt_after=None if whole else dur)
            except ServiceError as e:
                rc = svc.proc.returncode if svc.proc is not None else None
                if rc == 2:  # the server refused its flags: e.g. a design not built here
                    skip[i] = f"the server exited 2: {e}"
                else:
                    run.fail(ch, name, f"{cnames[i]}: {e}")
                    skip[i] = "failed to start"
                continue
            w = data.parse_wrk(r.out)
            counts = data.parse_counts(svc.tail)
            if w is None:
                run.fail(ch, name, f"{cnames[i]}, round {rnd}: wrk exited {r.rc} without its summary: {(r.err.splitlines() or [''])[0]}")
                continue
            if w["errors"] or w["non2xx"]:
                run.fail(ch, name, f"{cnames[i]}, round {rnd}: wrk saw {w['errors']} socket errors and {w['non2xx']} non-2xx replies")
            if counts is None or counts.get("responses", 0) < w["requests"]:
                run.fail(ch, name, f"{cnames[i]}, round {rnd}: the server's counts {counts} are below wrk's {w['requests']} replies")
            line = {
                "ops": w["requests"],
                "wall_s": w["duration_s"],
                "ops_per_s": w["ops_per_s"],
                "metrics": {k: w[k] for k in data.SERVICE_METRICS if k in w}
                | data.server_costs(counts)
                | {f"server_{k}": v for k, v in (counts or {}).items() if isinstance(v, (int, float))},
                "_bench": {"experiment": name, "params": cfg, "rep": rnd, "exit": r.rc},
            }
            new.append(line)
    run.metrics[ch] = ch_lines + new
    with run.out.atomic(f"{ch}.metrics.jsonl") as f:
        for m in run.metrics[ch]:
            f.write(json.dumps(m) + "\n")

    shown_servers = "; ".join(f"`{k}`: `{shown(v, ch)}`" for k, v in exp["servers"].items() if k in params.get("server", []))
    ps = "; ".join(f"`{p}` = {', '.join(v)}" for p, v in params.items())
    pinning = "the server pinned to CPU 0 and wrk to CPU 1 (`taskset`)" if pin else "not pinned (fewer than 2 CPUs)"
    how = f"`wrk -d {int(dur)}s`" if whole else "wrk stopped by SIGINT, after which it reports as at the end of `-d`"
    part += [
        f"Servers: {shown_servers}. Parameters: {ps}.",
        f"Load: `wrk -t1 -c {{{cparam}}} --latency` for {dur:g} s per run ({how}), {pinning}; "
        f"{exp['rounds']} interleaved rounds, a fresh server each run, stopped with SIGTERM. wrk is a closed "
        "loop: each connection sends its next request only when the last reply is in, so its latency "
        "leaves out the requests a slow server kept from being sent (coordinated omission).",
        "",
    ]
    for i in sorted(skip):
        part.append(f"- Not run: `{cnames[i]}`: {skip[i]}.")
    if skip:
        part.append("")
    rows = [r for r in data.service_rows(run.metrics[ch], name, configs, exp["rounds"], exp["baseline"])]
    run.out.write_json(f"{base}.rows.json", rows)
    table = data.service_md(rows, names, exp["baseline"])
    run.out.write(f"{base}.md", table)
    part += [table.rstrip("\n"), ""]
    note = (
        "requests/s, p50 and p99: the median of the rounds and its 95% interval. server CPU µs/reply: the "
        "server's CPU time (user + system) over its replies; sleeps/reply: its voluntary context switches "
        "(a thread of it waited) over its replies; both medians of the rounds, and both much less moved than "
        "requests/s by other programs on the machine."
    )
    if exp["baseline"]:
        b = ", ".join(str(v) for v in exp["baseline"].values())
        note = f"`× {b}`: requests/s over {b}'s at the same other parameters, round by round, then the median (above 1: more requests than {b}). " + note
    part += [note, ""]
    charted = [r for r in rows if r["runs"]]  # a point not run has no line to be on
    if exp["chart"].get("kind", "lines") == "lines" and len({r["params"][cparam] for r in charted}) > 1:
        series = "server" if "server" in names else None
        charts = (
            ("", "ops_per_s", "requests/s (median)", "", 0),
            ("-p99", "metric:p99_us", "p99 latency, µs (wrk, closed loop)", ": p99 latency", 1),
            ("-cpu", "metric:cpu_us", "server CPU time per reply, µs", ": server CPU time per reply", 1),
        )
        for suffix, value, ylabel, what, logy in charts:
            tsv = data.lines_tsv(charted, cparam, series, value)
            run.out.write(f"{base}{suffix}.chart.tsv", tsv)
            t = title + what
            chart_vars = {"xlabel": cparam, "ylabel": ylabel, "logx": 1, "logy": logy, "ideal": 0, "errors": 1}
            if run.draw("lines", run.out / f"{base}{suffix}.chart.tsv", f"{base}{suffix}", t, chart_vars, chapter=ch):
                part += [f"![{t}]({base}{suffix}.png)", "", f"[SVG]({base}{suffix}.svg) · chart data [{base}{suffix}.chart.tsv]({base}{suffix}.chart.tsv)", ""]
            else:
                run.fail(ch, name, "gnuplot could not draw plots/lines.gp")
    part += [f"Files: [table]({base}.md) · [rows JSON]({base}.rows.json) · [metrics]({ch}.metrics.jsonl)", ""]
    return part


KINDS = {"hyperfine": run_hyperfine, "trace": run_trace, "service": run_service}


# ------------------------------------------------------------ the hangs
def capture_hangs(run, chapter, hangs, timeout):
    """Run each variant tagged `hangs` once with a short watchdog and keep what
    the watchdog says; anything but its exit 3 is a failure."""
    if not hangs:
        return []
    t = _secs(timeout)
    part = [f"Each was run once (`--timeout {t}`) to capture what the watchdog reports:", ""]
    for v in hangs:
        argv = FRESH + [str(chapter.demo), "--variant", v, "--timeout", t]
        r = run.runner.run(argv, timeout=float(timeout) + 30, stderr=subprocess.STDOUT)
        out = "\n".join(r.out.splitlines()[:40])
        part += [f"`{chapter.name} --variant {v}` (exit {r.rc}):", "", "```", out, "```", ""]
        if r.rc != 3:
            run.fail(chapter.name, "hangs", f"{chapter.name} --variant {v} exited {r.rc}, not the watchdog's 3")
    return part


# ---------------------------------------------------------------- charts
def series_names(kind, src, extra):
    """The series of a lines or speedup chart's input, in column order: the
    header after the x column (the first third of the rest with errors=1)."""
    if kind not in ("lines", "speedup"):
        return []
    try:
        with open(src) as f:
            head = f.readline().rstrip("\n").split("\t")[1:]
    except OSError:
        return []
    errors = extra.get("errors") == 1 if isinstance(extra, dict) else "errors=1" in extra.replace(" ", "")
    return head[: len(head) // 3] if errors else head


def colours_for(index, names):
    """The palette index (1 to 10) of each series name, from a chapter's index
    {name: palette index}: a name new to the chapter gets the next index, so
    that a series keeps one colour on every chart of its chapter."""
    for n in names:
        index.setdefault(n, len(index) % 10 + 1)
    return [index[n] for n in names]


def draw(runner, out, plots, prov, kind, src, base, title, extra, colours=None):
    """plots/<kind>.gp from src to <base>.svg and .png, atomically. extra: gnuplot
    assignments, as a dict or a string; colours: the palette index of each series
    (gnuplot's `colours`). Returns whether both files were made, and gnuplot's
    last lines."""
    if isinstance(extra, dict):
        extra = "; ".join(f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in extra.items())
    tmpbase = out.temp(base)
    clean = lambda s: str(s).replace("'", "")  # noqa: E731
    assign = f"in='{src}'; out='{tmpbase}'; title='{clean(title)}'; term='both'; prov='{clean(prov)}'"
    if colours:
        assign += f"; colours='{' '.join(str(c) for c in colours)}'"
    assign += f"; {extra}"
    r = runner.run(["gnuplot", "-e", assign, str(plots / f"{kind}.gp")], stderr=subprocess.STDOUT)
    svg, png = Path(f"{tmpbase}.svg"), Path(f"{tmpbase}.png")
    ok = r.rc == 0 and svg.exists() and svg.stat().st_size and png.exists() and png.stat().st_size
    if ok:
        out.commit(svg, f"{base}.svg")
        out.commit(png, f"{base}.png")
    for p in (svg, png, tmpbase):
        p.unlink(missing_ok=True)
    return bool(ok), "\n".join(r.out.splitlines()[-5:])
