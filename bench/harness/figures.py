"""A chapter's summary figures: their samples, intervals and checks, and the one
renderer of every chapter's checks table. No processes: a chart a summary draws
goes through the `draw` it is given."""

import importlib.util
import json
from dataclasses import dataclass, field

from . import data, stats
from .schema import ROUND_OF
from .stats import Estimate, fmt, fmt_estimate

# the in-process twin of a per-round figure: the same from the --json runs
IN_PROCESS = {"ns_op": "inproc_ns_op", "ops_per_s": "inproc_ops_per_s", "time": "wall_s"}


@dataclass
class Figure:
    name: str
    what: str
    est: Estimate
    goal: stats.Goal | None = None
    unit: str = ""
    sources: tuple = ()  # the experiments it comes from (their CPU figures go beside it)
    samples: list = field(default_factory=list)
    in_process: float | None = None
    reference: dict | None = None
    derived: bool = False  # read off a sweep (a crossover): no samples, no interval

    @property
    def result(self):
        return "info" if self.derived else stats.check(self.est, self.goal)

    @property
    def counted(self):
        """Counted in the settled and agreeing shares: a figure with samples."""
        return not self.derived and self.est.value is not None

    def to_json(self):
        e = self.est
        return {
            "name": self.name,
            "what": self.what,
            "value": e.value,
            "lo": e.lo,
            "hi": e.hi,
            "n": e.n,
            "interval": e.method or None,
            "settled": e.settled,
            "samples": self.samples,
            "target": self.goal.text if self.goal else None,
            "result": self.result,
            "in_process": self.in_process,
            "unit": self.unit,
            "from": list(self.sources),
            "derived": self.derived,
            "reference": self.reference,
        }


class Summary:
    """What a chapter's summary sees: this run's rows and --json lines, the samples
    of a figure, and ways to add figures, tables and charts."""

    def __init__(self, chapter, outdir, metrics, quick, nproc, calibration, refs, draw):
        self.chapter, self.quick, self.nproc = chapter, quick, nproc
        self.outdir, self.out = outdir, outdir.path  # files.OutDir, and its path
        self.calibration = calibration  # floor name -> ns
        self.refs = refs
        self._metrics = metrics
        self._draw = draw  # draw(kind, tsv_path, base, title, vars) -> bool
        self._rows = {}
        self.extra = {}  # more fields for <chapter>.summary.json
        self.failures = []

    # ---------------------------------------------------------------- data
    def rows(self, exp):
        """The rows of an experiment of this run ([] if it did not run)."""
        if exp not in self._rows:
            p = self.out / f"{self.chapter}-{exp}.rows.json"
            self._rows[exp] = json.loads(p.read_text()) if p.exists() else []
        return self._rows[exp]

    def row(self, exp, sel):
        return next((r for r in self.rows(exp) if data.matches(r["params"], sel)), None)

    def lines(self, exp, sel=None):
        """The --json lines of an experiment whose parameters (or, for a key that is
        no parameter, the line's own field, e.g. variant) match sel."""
        out = []
        for m in self._metrics:
            if m["_bench"]["experiment"] == exp:
                fields = {k: str(v) for k, v in m.items() if isinstance(v, (str, int, float))}
                if data.matches(fields | m["_bench"]["params"], sel or {}):
                    out.append(m)
        return out

    def per_run(self, exp, sel, of):
        """{rep: value} from the --json runs: inproc_ns_op, inproc_ops_per_s, wall_s
        or metric:NAME (the first matching line of each run)."""
        key = {"inproc_ns_op": "ns_per_op", "inproc_ops_per_s": "ops_per_s", "wall_s": "wall_s"}.get(of)
        out = {}
        for m in self.lines(exp, sel):
            v = m.get(key) if key else (m.get("metrics") or {}).get(of[7:])
            out.setdefault(m["_bench"]["rep"], v)
        return out

    def per_round(self, exp, sel, of):
        """[value per round] from hyperfine: time (s), ns_op or ops_per_s."""
        r = self.row(exp, sel)
        if r is not None and "round_values" in r:  # a service experiment: each round's own figure
            return list(r["round_values"].get(of) or [])
        if r is None or not r["ok"] or (of != "time" and not r["ops"]):
            return []
        ops = r["ops"]
        f = {"time": lambda t: t, "ns_op": lambda t: t / ops * 1e9, "ops_per_s": lambda t: ops / t}[of]
        return [f(t) for t in r["times"]]

    def samples(self, exp, sel, of="ns_op"):
        if of in ROUND_OF:
            return self.per_round(exp, sel, of)
        return [v for _, v in sorted(self.per_run(exp, sel, of).items())]

    def paired(self, exp, a, b, of=("ns_op", "ns_op")):
        """Per-round (or per-run) ratios of a's figure over b's, paired in time."""
        of_a, of_b = (of, of) if isinstance(of, str) else of
        if of_a in ROUND_OF:
            xs, ys = self.per_round(exp, a, of_a), self.per_round(exp, b, of_b)
            pairs = list(zip(xs, ys))
        else:
            xa, xb = self.per_run(exp, a, of_a), self.per_run(exp, b, of_b)
            pairs = [(xa[k], xb[k]) for k in sorted(xa.keys() & xb.keys())]
        return [x / y for x, y in pairs if x is not None and y]

    # ------------------------------------------------------------- figures
    def figure(self, spec, samples, **over):
        """A Figure from a [[summary.figure]] table (or keyword arguments) and samples."""
        s = spec | over
        keep_goal = s.get("goal") and not (self.quick and s.get("quick_goal") is False)
        goal = stats.parse_goal(s["goal"]) if keep_goal else None
        xs = [x for x in samples if x is not None]
        ref = next((r for r in self.refs if r.get("compare") == f"{self.chapter}:{s['name']}"), None)
        return Figure(
            name=s["name"],
            what=s["what"],
            est=stats.estimate(xs),
            goal=goal,
            unit=s.get("unit", ""),
            sources=tuple(s["sources"]) if "sources" in s else ((s["from"],) if "from" in s else ()),
            samples=xs,
            in_process=s.get("in_process_value"),
            reference=ref,
        )

    def derived(self, name, what, value, sources=(), unit=""):
        """A figure read off a sweep, with no samples of its own (never counted)."""
        return Figure(name, what, Estimate(value), unit=unit, sources=tuple(sources), derived=True)

    def evaluate(self, spec, module):
        """The figures of one [[summary.figure]] table."""
        if "code" in spec:
            got = getattr(module, spec["code"])(self, spec)
            return got if isinstance(got, list) else [got]
        of = spec.get("of", "ns_op")
        xs = self._samples_of(spec, of)
        inproc = None
        if spec.get("in_process"):
            of2 = [IN_PROCESS.get(o, o) for o in of] if isinstance(of, list) else IN_PROCESS.get(of, of)
            inproc = stats.median(self._samples_of(spec, of2))
        return [self.figure(spec, xs, in_process_value=inproc)]

    def _samples_of(self, spec, of):
        exp = spec["from"]
        if "ratio" in spec:
            xs = self.paired(exp, spec["ratio"][0], spec["ratio"][1], of)
            sel = spec["ratio"][0]
        else:
            xs = self.samples(exp, spec["row"], of if isinstance(of, str) else of[0])
            sel = spec["row"]
        scale = spec.get("scale", 1)
        if isinstance(scale, str):
            r = self.row(exp, sel)
            scale = float(r["params"][scale]) if r else None
        floor = self.calibration.get(spec["floor"]) if "floor" in spec else 1
        if scale is None or not floor:
            return []
        return [x * scale / floor + spec.get("offset", 0) for x in xs if x is not None]

    # ------------------------------------------------------ tables, charts
    def chart(self, kind, tsv, base, title, **vars):
        """Write <base>.chart.tsv and draw plots/<kind>.gp from it; the Markdown."""
        self.outdir.write(f"{base}.chart.tsv", tsv)
        if self._draw(kind, self.out / f"{base}.chart.tsv", base, title, vars):
            return [f"![{title}]({base}.png)", "", f"[SVG]({base}.svg) · chart data [{base}.chart.tsv]({base}.chart.tsv)", ""]
        self.failures.append(f"gnuplot could not draw plots/{kind}.gp ({base})")
        return [f"**FAILED**: no chart {base}.", ""]


def markdown_table(head, rows, align=None):
    """A Markdown table; align: one ':--' / '--:' per column (default: left)."""
    align = align or [":--"] * len(head)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def load_module(path):
    """A chapter's summary code (summary.code), as a module."""
    spec = importlib.util.spec_from_file_location(f"conclab_summary_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------- the one checks table
def _reference(f):
    r = f.reference
    v = r.get("value", r.get("ns"))
    return f"{fmt(v)}{f.unit}: {r['what']}; {r['machine']} ([source]({r['url']}))"


def value_cell(f, cpu):
    """'1.87× (1.80–1.93)', with 'unsettled' and the CPU figures of its experiments
    when the interval is wider than ±10%."""
    if f.derived:
        return "–" if f.est.value is None else f"{fmt(f.est.value)}{f.unit}"
    s = fmt_estimate(f.est, f.unit)
    if f.est.has_interval and not f.est.settled:
        shares = [cpu[e] for e in f.sources if e in cpu]
        if shares:
            steal = max(x[0] for x in shares)
            other = max(x[1] for x in shares)
            s += f" unsettled (steal {steal}%, other programs {other}%)"
        else:
            s += " unsettled"
    return s


def checks_table(figures, cpu):
    """Every chapter's checks table: value with its interval, in-process and
    published figure columns where a figure has them. cpu: {experiment: (steal, other)}."""
    inproc = any(f.in_process is not None for f in figures)
    refs = any(f.reference for f in figures)
    head = ["check", "value"] + (["in-process"] if inproc else []) + ["target", "result"]
    head += ["published figure"] if refs else []
    align = [":--", "--:"] + (["--:"] if inproc else []) + [":--", ":--"] + ([":--"] if refs else [])
    rows = []
    for f in figures:
        res = f.result
        cells = [f.what, value_cell(f, cpu)] + ([fmt(f.in_process)] if inproc else [])
        cells += [f.goal.text if f.goal else "–", "**FAIL**" if res == "FAIL" else res]
        cells += [_reference(f) if f.reference else "–"] if refs else []
        rows.append(cells)
    out = markdown_table(head, rows, align)
    counted = [f for f in figures if f.counted]
    if counted:
        n = sum(f.est.settled for f in counted)
        out += ["", f"Settled (95% interval within ±10% of the value): {n} of {len(counted)} figures."]
    return out
