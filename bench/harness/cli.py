"""bench/run's driver: the command line, the order of the steps, REPORT.md.

Finds every demo ($BUILD/demos/<name>/<name>) and its variants (--list), runs the
experiments of bench/<chapter>.toml, draws the charts with plots/*.gp and writes
REPORT.md with the provenance of the run. bench/README.md documents it all."""

import argparse
import datetime
import functools
import json
import os
import shlex
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import compare as comparing
from . import cpu, experiments, figures, report, schema
from .files import OutDir
from .proc import Interrupted, Runner

PROG = "bench/run"
ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("hyperfine", "gnuplot", "meson")
CALIBRATION_BUDGET_S = 8
CPU_NOTE = 10  # a summary names its experiments where steal + other passed this %


class UsageError(Exception):
    """One line on stderr, exit 2."""


def say(msg):
    print(msg, file=sys.stderr, flush=True)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        if message.startswith("unrecognized arguments: "):
            message = f"unknown argument '{message.split(': ', 1)[1].split()[0]}'"
        elif message.startswith("argument --compare"):
            message = "--compare needs two result folders"
        elif message.startswith("argument --") and "expected one argument" in message:
            message = f"{message.split()[1].rstrip(':')} needs a value"
        raise UsageError(f"{message} (see --help)")


def parse_args(argv):
    p = Parser(
        prog=PROG,
        description="Times the demos' variants as bench/<chapter>.toml declares (hyperfine), collects their own "
        "--json metrics, draws the charts (gnuplot) and writes REPORT.md with the provenance of the run. "
        "No selector (@all, @tag:T) picks a variant tagged 'hangs'.",
        epilog="exit: 0 everything ran, 1 something failed (listed in REPORT.md and failures.txt), "
        "2 usage error or unusable build, 130 interrupted",
    )
    p.add_argument("--quick", action="store_true", help="classroom-sized run, within each chapter's quick budget")
    p.add_argument("--only", metavar="LIST", help="only these chapters, comma-separated (e.g. --only race)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<host>-<UTC yyyymmddTHHMMSSZ>/)")
    p.add_argument("--build", metavar="DIR", help="meson build folder holding the demos (default: build); optimised, no sanitizer")
    p.add_argument("--experiments", metavar="DIR", help="where the <chapter>.toml files are (default: bench/)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="B / A of two result folders on stdout; runs nothing")
    a = p.parse_args(argv)
    for opt in ("only", "out", "build", "experiments"):
        if getattr(a, opt) == "":
            raise UsageError(f"--{opt} needs a value (see --help)")
    return a


@dataclass
class Chapter:
    name: str
    demo: Path
    doc: dict  # its TOML, checked
    dir: Path  # where the TOML is
    variants: list = field(default_factory=list)  # [(name, [tags])]
    listing: list = field(default_factory=list)  # [[name, tags, description]]

    def experiments(self, quick):
        """[(name, resolved settings)] of this mode, in the file's order."""
        out = []
        for name, raw in self.doc["experiment"].items():
            exp = schema.resolve_experiment(raw, quick)
            if not exp.get("skip"):
                out.append((name, exp))
        return out


def process_age():
    """Seconds since this process started (the interpreter's start-up included)."""
    try:
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return 0.0


class Run:
    """One run of the harness: its settings, its output folder and what it found."""

    def __init__(self, args, build, chapters, out, t0, runner):
        self.quick = args.quick
        self.only = args.only
        self.build = build
        self.chapters = chapters
        self.out = out
        self.t0 = t0  # monotonic time at which this process started
        self.runner = runner
        self.nproc = os.cpu_count() or 1
        self.failures = []  # (chapter, experiment, message)
        self.metrics = {}  # chapter -> its --json lines
        self.noise = []
        self.parts = []  # REPORT.md's chapter sections, in order
        self.cpu = {}  # chapter -> {experiment: (steal, other)}
        self.times = []  # (part, seconds, quick budget)
        self.figures = {}  # chapter -> [Figure]
        self.prov_label = ""
        self.cal_cpu = None  # (steal %, other %) while bench/calibrate ran
        self.colours = {}  # chapter -> {series name: palette index}, for every chart

    say = staticmethod(say)

    def fail(self, ch, exp, msg):
        msg = " ".join(str(msg).split("\n"))
        self.failures.append((ch, exp, msg))
        self.say(f"  FAILED: {ch} {exp}: {msg}")

    def builtins(self, chapter):
        return {
            "demo": str(chapter.demo),
            "source": str(ROOT),
            "build": str(self.build),
            "out": str(self.out.path),
            "nproc": str(self.nproc),
        }

    def draw(self, kind, src, base, title, extra, chapter=None):
        """A chart through plots/<kind>.gp, each series in its chapter's colour
        (self.colours: experiments.colours_for), the ideal at this machine's cores."""
        names = experiments.series_names(kind, src, extra)
        colours = experiments.colours_for(self.colours.setdefault(chapter, {}), names)
        extra = dict(extra) if isinstance(extra, dict) else extra
        if isinstance(extra, dict):
            extra.setdefault("cores", self.nproc)
        else:
            extra = f"cores={self.nproc}; {extra}"
        ok, log = experiments.draw(self.runner, self.out, ROOT / "plots", self.prov_label, kind, src, base, title, extra, colours)
        if not ok and log:
            self.say(log)
        return ok

    # ------------------------------------------------------------ the steps
    def provenance(self, buildopts):
        def first_line(argv):
            r = self.runner.run(argv)
            return r.out.splitlines()[0] if r.rc == 0 and r.out else "n/a"

        commit = "n/a"
        r = self.runner.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
        if r.rc == 0:
            commit = r.out.strip()
            # -dirty: anything uncommitted, untracked files included (results/ is ignored)
            if self.runner.run(["git", "-C", str(ROOT), "status", "--porcelain"]).out.strip():
                commit += "-dirty"
        cpu_model = next(
            (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
            "n/a",
        )
        try:
            governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
        except OSError:
            governor = "n/a"
        try:
            loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        except OSError:
            loadavg = "n/a"
        try:
            cc_json = json.loads((self.build / "compile_commands.json").read_text())
        except (OSError, ValueError):
            cc_json = []
        compile_commands, cc_version = {}, "n/a"
        for ch in self.chapters:
            cmd = next((c["command"] for c in cc_json if c["file"].endswith(f"demos/{ch.name}/{ch.name}.c")), "n/a")
            compile_commands[ch.name] = cmd
            if cc_version == "n/a" and cmd != "n/a":
                cc_version = first_line([cmd.split()[0], "--version"])
        u = os.uname()
        now = datetime.datetime.now(datetime.timezone.utc)
        self.date_utc = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        prov = {
            "host": self.host,
            "date_utc": self.date_utc,
            "git_commit": commit,
            "mode": "quick" if self.quick else "full",
            "command": " ".join([PROG] + self.argv),
            "only": self.only.split(",") if self.only else None,
            "cpu_model": cpu_model,
            "nproc": self.nproc,
            "kernel": f"{u.sysname} {u.release} {u.machine}",
            "scaling_governor": governor,
            "loadavg_at_start": loadavg,
            "gcc_version": first_line(["gcc", "--version"]),
            "cc_version": cc_version,
            "build": {"dir": str(self.build)} | buildopts,
            "compile_commands": compile_commands,
            "tools": {
                "hyperfine": first_line(["hyperfine", "--version"]),
                "gnuplot": first_line(["gnuplot", "--version"]),
                "meson": first_line(["meson", "--version"]),
                "python": sys.version.split()[0],
            },
        }
        self.commit = commit
        self.out.write_json("provenance.json", prov)
        self.out.write("provenance.md", report.provenance_md(prov))
        self.prov_label = f"{self.host} · {commit} · {self.date_utc}" + (" · quick" if self.quick else "")
        return prov

    def calibrate(self):
        """bench/calibrate's floors, each with its interval (calibration.jsonl)."""
        exe = self.build / "bench" / "calibrate"
        if not os.access(exe, os.X_OK):
            self.say(f"note: no {exe}; the report has no calibration")
            return []
        self.say(f"[calibration] {len(schema.FLOORS)} floors in interleaved repeats")
        t, before = time.monotonic(), cpu.sample()
        # CONCLAB_CALIBRATE_ARGS (a test hook): fewer repeats where a test needs
        # a harness run but not its floors
        extra = shlex.split(os.environ.get("CONCLAB_CALIBRATE_ARGS", ""))
        r = self.runner.run([str(exe), *extra], timeout=120)
        self.cal_cpu = cpu.share(before, cpu.sample())
        took = time.monotonic() - t
        self.times.append(("calibration", took, CALIBRATION_BUDGET_S))
        self.say(f"  done in {took:.1f} s, CPU steal {self.cal_cpu[0]}%, other programs {self.cal_cpu[1]}%")
        if r.rc != 0:
            self.fail("calibration", "-", f"bench/calibrate failed: {(r.err.splitlines() or [''])[0]}")
            return []
        cal = report.floor_estimates(json.loads(line) for line in r.out.splitlines() if line.strip())
        self.out.write("calibration.jsonl", "".join(json.dumps(c) + "\n" for c in cal))
        return cal

    def run_chapter(self, chapter, k, total):
        ch = chapter.name
        t_ch = time.monotonic()
        self.metrics[ch] = []
        self.cpu[ch] = {}
        r = self.runner.run([str(chapter.demo), "--list"])
        if r.rc != 0:
            self.fail(ch, "-", f"{ch} --list failed: {(r.err.splitlines() or [''])[0]}")
            return k
        chapter.listing = [line.split("\t") for line in r.out.splitlines() if line.strip()]
        chapter.variants = [(v[0], v[1].split(",") if len(v) > 1 and v[1] else []) for v in chapter.listing]
        hangs = [n for n, t in chapter.variants if "hangs" in t]
        part = [f"## {ch}", ""]
        if chapter.doc.get("title"):
            part += [chapter.doc["title"], ""]
        part += [f"Variants (`{ch} --list`):", ""]
        part += figures.markdown_table(
            ["variant", "tags", "description"], [(v + ["", ""])[:3] for v in chapter.listing]
        )
        part.append("")
        if hangs:
            part += [f"Not timed (tagged `hangs`): {' '.join(hangs)}.", ""]
        part += experiments.capture_hangs(self, chapter, hangs, chapter.doc.get("hangs_timeout", 1))
        marker = len(part)  # the chapter's time goes here, once known

        for name, exp in chapter.experiments(self.quick):
            k += 1
            self.say(f"[{k}/{total}] {ch} {name}")
            t, before = time.monotonic(), cpu.sample()
            try:
                sub = experiments.KINDS[exp["kind"]](self, chapter, name, exp)
            except Interrupted:
                raise
            except Exception as e:  # a bug of the harness: recorded, and the run goes on
                self.fail(ch, name, f"internal error in the harness: {type(e).__name__}: {e}")
                traceback.print_exc()
                sub = [f"### {ch} · {name}", "", f"**FAILED**: the harness stopped on this experiment ({type(e).__name__}).", ""]
            steal, other = cpu.share(before, cpu.sample())
            self.cpu[ch][name] = (steal, other)
            part += sub + [f"_While this experiment ran: CPU steal {steal}%, other programs {other}% of the CPU._", ""]
            self.say(f"  done in {time.monotonic() - t:.1f} s, CPU steal {steal}%, other programs {other}%")

        if "summary" in chapter.doc:
            self.say("  summary")
            part += self.summary(chapter)
        took = time.monotonic() - t_ch
        budget = chapter.doc.get("quick_budget_s", schema.DEFAULT_BUDGET_S)
        self.times.append((ch, took, budget))
        line = f"_This chapter took {took:.1f} s" + (f" (quick budget {budget:g} s)._" if self.quick else "._")
        self.say(f"  {ch}: {took:.1f} s" + (f" (quick budget {budget:g} s)" if self.quick else ""))
        if self.quick and took > budget:
            line = f"**Over budget**: this chapter took {took:.1f} s, over its quick budget of {budget:g} s."
            self.say(f"  note: {ch} is over its quick budget")
        part[marker:marker] = [line, ""]
        self.parts.append(part)
        return k

    def summary(self, chapter):
        ch = chapter.name
        doc = chapter.doc["summary"]
        s = figures.Summary(
            ch, self.out, self.metrics[ch], self.quick, self.nproc, self.calibration, self.refs,
            functools.partial(self.draw, chapter=ch),
        )  # fmt: skip
        part = [f"### {ch} · summary", ""]
        intro = doc.get("intro", "")
        if self.quick and doc.get("quick_note"):
            intro += ("\n\n" if intro else "") + doc["quick_note"]
        figs, extra = [], []
        try:
            module = figures.load_module(chapter.dir / doc["code"]) if "code" in doc else None
            for spec in doc.get("figure", []):
                figs += s.evaluate(spec, module)
            if module is not None and hasattr(module, "tables"):
                extra = module.tables(s)
        except Interrupted:
            raise
        except Exception as e:
            self.fail(ch, "summary", f"the chapter summary failed: {type(e).__name__}: {e}")
            traceback.print_exc()
            return part + ["**FAILED**: the chapter summary failed.", ""]
        for f in s.failures:
            self.fail(ch, "summary", f)
        self.figures[ch] = figs
        if figs or s.extra:
            self.out.write_json(
                f"{ch}.summary.json",
                {"host": self.host, "commit": self.commit, "quick": self.quick, "nproc": self.nproc}
                | s.extra
                | {"checks": [f.to_json() for f in figs]},
            )
            intro += (" " if intro else "") + f"Machine-readable: [{ch}.summary.json]({ch}.summary.json)."
        if intro:
            part += [intro, ""]
        part += extra
        if figs:
            part += figures.checks_table(figs, self.cpu[ch]) + [""]
        noisy = [(e, st, ot) for e, (st, ot) in self.cpu[ch].items() if st + ot > CPU_NOTE]
        if noisy:
            which = ", ".join(f"{e} ({st}% steal, {ot}% other programs)" for e, st, ot in noisy)
            part += [
                f"**Note**: the CPU was not all this run's while {which} ran; a figure from "
                f"{'them' if len(noisy) > 1 else 'it'} may be the machine's, not the code's. Rerun before trusting a FAIL.",
                "",
            ]
        return part

    def report(self, prov, cal, steal, other, wall):
        """REPORT.md's text."""
        nfail = len(self.failures)
        elapsed = time.monotonic() - self.t0
        out = [
            "# conclab benchmark report",
            "",
            f"{'Quick' if self.quick else 'Full'} run on **{self.host}**, {self.date_utc}, commit `{self.commit}`, "
            f"build `{self.build}` ({prov['build']['buildtype']}). Took {elapsed:.0f} s.",
            "",
            f"**{nfail} failure(s)**, listed under [Failures](#failures) and in [failures.txt](failures.txt)."
            if nfail
            else "Every command ran as documented.",
            "",
        ]
        over = [f"{n} ({t:.1f} s, budget {b:g} s)" for n, t, b in self.times if b is not None and t > b]
        if self.quick and over:
            out += [f"**Note**: over its quick budget: {', '.join(over)}.", ""]
        nrows = sum(len(json.loads(p.read_text())) for p in self.out.path.glob("*.rows.json"))
        out += report.warnings(prov, steal, other, self.noise, nrows)
        out += [
            f"Of all the CPU time during the run, the hypervisor took {steal}% (steal) and other programs used {other}%.",
            "",
            "Times are wall-clock seconds of the whole process (hyperfine `-N`, one warm-up); each table gives the "
            "median and the range of the runs. A summary figure is the median of its rounds (a ratio is taken "
            "inside each round) with its 95% interval; wider than ±10% of the value, it is marked unsettled. A figure "
            "from a loaded or 2-core machine is a classroom illustration, not a benchmark of record.",
            "",
        ]
        counted = [f for fs in self.figures.values() for f in fs if f.counted]
        if counted:
            out += [
                f"Summary figures settled: {sum(f.est.settled for f in counted)} of {len(counted)} "
                f"(without an interval, fewer than 6 rounds: {sum(not f.est.has_interval for f in counted)}).",
                "",
            ]
        out += report.times_md(self.times, self.quick, wall, self.runner.child_wall)
        out += ["## Provenance", "", (self.out / "provenance.md").read_text(), "(also [provenance.json](provenance.json))", ""]
        try:
            meltdown = Path("/sys/devices/system/cpu/vulnerabilities/meltdown").read_text().strip()
        except OSError:
            meltdown = None
        out += report.calibration_md(cal, self.refs, self.cal_cpu, meltdown)
        for p in self.parts:
            out += p + [""]
        out += ["## Failures", ""]
        if nfail:
            out += [f"- {c} {e}: {m}" for c, e, m in sorted(set(self.failures))]
        else:
            out.append("None.")
        files = sorted(p.name for p in self.out.path.iterdir() if p.is_file() and not p.name.startswith("."))
        out += ["", "## Files", ""] + [f"- [{f}]({f})" for f in files if f != "REPORT.md"]
        return "\n".join(out) + "\n"


# ------------------------------------------------------------------ setup
def check_build(runner, build):
    """meson's options of the build, or UsageError if its figures would mislead."""
    r = runner.run(["meson", "introspect", "--buildoptions", str(build)])
    if r.rc != 0:
        raise UsageError(f"'{build}' is not a configured meson build folder")
    opts = {}
    for o in json.loads(r.out):
        v = o["value"]
        opts[o["name"]] = " ".join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
    get = lambda k: opts.get(k, "n/a")  # noqa: E731
    if get("buildtype") in ("plain", "debug"):
        raise UsageError(
            f"refusing to benchmark {build}: buildtype={get('buildtype')} is not optimised, the figures would mislead "
            "(use meson setup -Dbuildtype=release or debugoptimized)"
        )
    if get("optimization") in ("0", "g", "plain"):
        raise UsageError(
            f"refusing to benchmark {build}: optimization={get('optimization')} is not optimised, the figures would "
            "mislead (use -Doptimization=2)"
        )
    if get("b_sanitize") != "none" or "-fsanitize" in f"{get('c_args')} {get('c_link_args')}":
        raise UsageError(
            f"refusing to benchmark {build}: it is a sanitizer build (b_sanitize={get('b_sanitize')} "
            f"c_args='{get('c_args')}'), the figures would mislead; use a build without sanitizers"
        )
    keys = ("buildtype", "optimization", "b_sanitize", "b_ndebug", "b_lto", "c_args", "c_link_args")
    return {k: get(k) for k in keys}


def find_chapters(build, only, exp_dir):
    demos = sorted(d.name for d in (build / "demos").glob("*/") if os.access(d / d.name, os.X_OK) and (d / d.name).is_file())
    if not demos:
        raise UsageError(f"no demos found under {build}/demos/ (build first: ninja -C {build})")
    names = demos
    if only is not None:
        names = [w for w in only.split(",") if w]
        for w in names:
            if w not in demos:
                raise UsageError(f"--only: no demo '{w}' in {build}/demos (found: {' '.join(demos)})")
        if not names:
            raise UsageError("--only: empty chapter list")
    chapters, skipped = [], []  # skipped: (name, the line REPORT.md gives it)
    if only is None:
        # a chapter meson left out (the cluster chapter without MPI): said, not silent
        for toml in sorted(exp_dir.glob("*.toml")):
            if toml.stem not in demos:
                say(f"note: {toml.stem} is not in this build; skipped")
                skipped.append((toml.stem, f"Skipped: this build has no `{toml.stem}` demo (meson leaves a "
                                "chapter out when what it needs is missing, and `meson setup` said why)."))
    for n in names:
        toml = exp_dir / f"{n}.toml"
        if not toml.is_file():
            say(f"note: {n} has no {toml.name}; skipped")
            skipped.append((n, f"Skipped: no `{n}.toml` in the experiments folder."))
            continue
        try:
            doc = schema.load(toml)
        except schema.SchemaError as e:
            raise UsageError(str(e)) from None
        chapters.append(Chapter(n, build / "demos" / n / n, doc, exp_dir))
    return chapters, skipped


def main(argv):
    t0 = time.monotonic() - process_age()
    runner = Runner()
    runner.install_signals()
    try:
        return _main(argv, t0, runner)
    except UsageError as e:
        say(f"{PROG}: {e}")
        return 2
    except Interrupted:  # before the output folder exists
        runner.stop_all()
        say(f"{PROG}: interrupted")
        return 130


def _main(argv, t0, runner):
    args = parse_args(argv)
    if args.compare:
        try:
            sys.stdout.write(comparing.compare(*args.compare))
        except comparing.NotARun as e:
            raise UsageError(str(e)) from None
        return 0
    exp_dir = Path(args.experiments or ROOT / "bench")
    if not exp_dir.is_dir():
        raise UsageError(f"--experiments: '{args.experiments}' is not a folder")
    for tool in TOOLS:
        if not shutil.which(tool):
            raise UsageError(f"'{tool}' not found; install it (Debian: apt-get install {tool})")
    build = Path(args.build or ROOT / "build")
    if not build.is_dir():
        raise UsageError(f"build folder '{build}' not found (meson setup {build} && ninja -C {build})")
    build = build.resolve()
    buildopts = check_build(runner, build)
    chapters, skipped = find_chapters(build, args.only, exp_dir.resolve())

    host = socket.gethostname().split(".")[0]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_path = Path(args.out or ROOT / "results" / f"{host}-{stamp}")
    try:
        out_path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder '{out_path}': {e.strerror}") from None
    if any(not p.name.startswith(".") for p in out_path.iterdir()):
        say(f"note: {out_path} is not empty; this run's files replace those of the same name")
    out = OutDir(out_path.resolve())
    run = Run(args, build, chapters, out, t0, runner)
    run.host, run.argv, run.buildopts = host, argv, buildopts
    try:
        return _run(run, chapters, skipped)
    except Interrupted:
        run.runner.stop_all()
        out.cleanup()
        say(f"{PROG}: interrupted")
        return 130


def _run(run, chapters, skipped):
    start = cpu.sample()
    prov = run.provenance(run.buildopts)
    try:
        run.refs = json.loads((ROOT / "bench" / "references.json").read_text())
    except (OSError, ValueError):
        run.refs = []
    cal = run.calibrate()
    run.calibration = {c["name"]: c["ns"] for c in cal}
    total = sum(len(c.experiments(run.quick)) for c in chapters)
    k = 0
    for chapter in chapters:
        k = run.run_chapter(chapter, k, total)
    for n, why in skipped:
        run.parts.append([f"## {n}", "", why, ""])
    steal, other = cpu.share(start, cpu.sample())
    if run.failures:
        run.out.write("failures.txt", "".join(f"{c}\t{e}\t{m}\n" for c, e, m in sorted(set(run.failures))))
    else:
        (run.out / "failures.txt").unlink(missing_ok=True)
    wall = time.monotonic() - run.t0
    counted = [f for fs in run.figures.values() for f in fs if f.counted]
    run.out.write_json(
        "run.json",
        {
            "format": 2,
            "mode": "quick" if run.quick else "full",
            "times": [{"part": n, "s": round(t, 2), "quick_budget_s": b} for n, t, b in run.times],
            "wall_s": round(wall, 2),
            "child_s": round(run.runner.child_wall, 2),
            "overhead_pct": round(100 * (wall - run.runner.child_wall) / wall, 2),
            "steal_pct": steal,
            "other_pct": other,
            "figures": len(counted),
            "settled": sum(f.est.settled for f in counted),
        },
    )
    run.out.write("REPORT.md", run.report(prov, cal, steal, other, wall))
    run.say(f"report: {run.out.path / 'REPORT.md'} ({time.monotonic() - run.t0:.0f} s)")
    if run.failures:
        run.say(f"{PROG}: {len(run.failures)} failure(s), see {run.out.path / 'failures.txt'}")
        return 1
    return 0
