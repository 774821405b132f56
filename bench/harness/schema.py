"""bench/<chapter>.toml: reading, checking and resolving an experiment file.

Strict: an unknown key, a wrong type, a placeholder that names no parameter or a
figure that names no experiment is an error naming the file and the key. The
schema is documented in bench/README.md; keep the two in step."""

import re
import tomllib
from pathlib import Path

from .stats import parse_goal

KINDS = ("hyperfine", "trace", "service")  # bench/harness/experiments.py: KINDS
CHARTS = {"hyperfine": ("bars", "lines", "speedup", "none"), "trace": ("timeline", "series", "none"), "service": ("lines", "none")}
VALUES = ("ns_op", "median_s", "ops_per_s", "inproc_ns_op", "speedup")
# the figures' sources: per round (hyperfine) or per --json run (metrics)
ROUND_OF = ("ns_op", "time", "ops_per_s")
RUN_OF = ("inproc_ns_op", "inproc_ops_per_s", "wall_s")
BUILTINS = ("demo", "source", "build", "out", "trace", "nproc")
DEFAULT_BUDGET_S = 11
# bench/calibrate's floors, by their stable names (`calibrate --list`), for a
# figure's `floor`; bench/README.md, "Calibration", says what each one times
FLOORS = (
    "mutex", "atomic_add", "cache_line", "syscall", "futex", "eventfd", "thread", "fork", "spawn",
    "pipe", "socketpair", "memcpy",
)  # fmt: skip

CHAPTER = {"title": "str", "quick_budget_s": "num", "hangs_timeout": "num", "experiment": "experiments", "summary": "summary"}
EXPERIMENT = {
    "kind": "str", "title": "str", "description": "str", "command": "str", "params": "params",
    "rounds": "posint", "warmup": "nat", "metrics_runs": "nat", "metrics": "strlist",
    "baseline": "sel", "exit": "int", "timeout": "num", "exclude": "sellist", "chart": "chart",
    "trace_file": "str", "quick": "quick", "servers": "strtable", "duration": "posnum", "pin": "bool",
    "connections": "str",
}  # fmt: skip
QUICK = {k: t for k, t in EXPERIMENT.items() if k not in ("kind", "quick")} | {"skip": "bool"}
CHART = {
    "kind": "str", "x": "str", "series": "str", "value": "str", "ideal": "nat", "xlabel": "str",
    "ylabel": "str", "logx": "bool", "logy": "bool", "key": "str", "args": "str",
}  # fmt: skip
SUMMARY = {"intro": "str", "quick_note": "str", "code": "str", "figure": "figures"}
FIGURE = {
    "name": "str", "what": "str", "from": "str", "ratio": "selpair", "row": "sel", "of": "of",
    "scale": "scale", "offset": "num", "floor": "str", "goal": "str", "unit": "str",
    "in_process": "bool", "code": "str", "quick_goal": "bool",
}  # fmt: skip
DEFAULTS = {
    "kind": "hyperfine", "description": "", "params": {}, "warmup": 1, "metrics_runs": 5,
    "metrics": [], "baseline": None, "exit": 0, "timeout": 60, "exclude": [], "chart": {},
    "pin": True, "connections": "connections",
}  # fmt: skip
# keys that only some kinds take
ONLY = {"servers": "service", "duration": "service", "pin": "service", "connections": "service"}


class SchemaError(Exception):
    pass


def _scalar(v):
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _check_type(where, t, v):
    """An error message if v is not of schema type t, else None."""
    ok = {
        "str": lambda: isinstance(v, str),
        "int": lambda: isinstance(v, int) and not isinstance(v, bool),
        "posint": lambda: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "nat": lambda: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "num": lambda: _scalar(v) and not isinstance(v, str),
        "posnum": lambda: _scalar(v) and not isinstance(v, str) and v > 0,
        "strtable": lambda: isinstance(v, dict) and v and all(isinstance(x, str) for x in v.values()),
        "bool": lambda: isinstance(v, bool),
        "strlist": lambda: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "params": lambda: isinstance(v, dict)
        and all(isinstance(x, str) or (isinstance(x, list) and x and all(_scalar(y) for y in x)) for x in v.values()),
        "sel": lambda: isinstance(v, dict) and all(_scalar(x) or (isinstance(x, list) and all(_scalar(y) for y in x)) for x in v.values()),
        "sellist": lambda: isinstance(v, list) and all(isinstance(x, dict) for x in v),
        "selpair": lambda: isinstance(v, list) and len(v) == 2 and all(isinstance(x, dict) for x in v),
        "of": lambda: isinstance(v, str) or (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)),
        "scale": lambda: _scalar(v),
    }[t]()
    if ok:
        return None
    what = {
        "posint": "a positive integer", "nat": "an integer >= 0", "num": "a number", "int": "an integer",
        "posnum": "a number above 0", "strtable": "a table of NAME = \"command\"",
        "str": "a string", "bool": "true or false", "strlist": "a list of strings",
        "params": "a table of NAME = [values] or NAME = \"@selector\"",
        "sel": "a table of parameter = value (or [values])", "sellist": "a list of tables",
        "selpair": "a list of two tables", "of": "a string or a list of two strings",
        "scale": "a number or a parameter name",
    }[t]  # fmt: skip
    return f"{where} must be {what}"


def _keys(file, where, table, spec):
    if not isinstance(table, dict):
        raise SchemaError(f"{file}: {where} must be a table")
    for k, v in table.items():
        key = f"{where}.{k}" if where else k
        if k not in spec:
            raise SchemaError(f"{file}: unknown key '{key}'")
        t = spec[k]
        if t in ("experiments", "summary", "chart", "quick", "figures"):
            continue
        if msg := _check_type(key, t, v):
            raise SchemaError(f"{file}: {msg}")


def _check_of(file, where, of):
    for o in of if isinstance(of, list) else [of]:
        if o not in ROUND_OF + RUN_OF and not (o.startswith("metric:") and len(o) > 7):
            raise SchemaError(f"{file}: {where}.of: '{o}' is not one of {', '.join(ROUND_OF + RUN_OF)} or metric:NAME")
    if isinstance(of, list) and (of[0] in ROUND_OF) != (of[1] in ROUND_OF):
        raise SchemaError(f"{file}: {where}.of: a ratio pairs two per-round or two per-run figures, not one of each")


def placeholders(template):
    return re.findall(r"\{([^{}]*)\}", template)


def _check_experiment(file, name, exp, mode_keys):
    where = f"experiment.{name}"
    kind = exp.get("kind", "hyperfine")
    if kind not in KINDS:
        raise SchemaError(f"{file}: {where}.kind: '{kind}' is not one of {', '.join(KINDS)}")
    required = {"hyperfine": ("command", "rounds"), "trace": ("command",), "service": ("servers", "duration", "rounds")}
    for req in required[kind]:
        if req not in exp:
            raise SchemaError(f"{file}: {where}.{req} is required{mode_keys}")
    for k in exp:
        if k in ONLY and ONLY[k] != kind and not (k in DEFAULTS and exp[k] == DEFAULTS[k]):
            raise SchemaError(f"{file}: {where}.{k}: only a {ONLY[k]} experiment takes it")
    params = exp.get("params", {})
    commands = {"command": exp["command"]} if "command" in exp else {}
    if kind == "service":
        if "command" in exp:
            raise SchemaError(f"{file}: {where}.command: a service experiment has servers instead")
        commands = {f"servers.{k}": v for k, v in exp["servers"].items()}
        for p in ("server", exp["connections"]):
            if p not in params:
                raise SchemaError(f"{file}: {where}.params.{p} is required{mode_keys}")
        if isinstance(params["server"], str) or not set(map(str, params["server"])) <= set(exp["servers"]):
            raise SchemaError(f"{file}: {where}.params.server: each value must name one of servers ({', '.join(exp['servers'])})")
    for key, command in commands.items():
        for p in placeholders(command):
            if p not in params and p not in BUILTINS:
                raise SchemaError(f"{file}: {where}.{key}: '{{{p}}}' is neither a parameter nor one of {{{'}, {'.join(BUILTINS)}}}")
    for sel_name in ("baseline",):
        for k in exp.get(sel_name) or {}:
            if k not in params:
                raise SchemaError(f"{file}: {where}.{sel_name}: '{k}' is not a parameter")
    chart = exp.get("chart", {})
    _keys(file, f"{where}.chart", chart, CHART)
    ck = chart.get("kind", "none")
    if ck not in CHARTS[kind]:
        raise SchemaError(f"{file}: {where}.chart.kind: '{ck}' is not one of {', '.join(CHARTS[kind])}")
    for axis in ("x", "series"):
        if axis in chart and chart[axis] not in params:
            raise SchemaError(f"{file}: {where}.chart.{axis}: '{chart[axis]}' is not a parameter")
    v = chart.get("value", "ns_op")
    if v not in VALUES and not (v.startswith("metric:") and v[7:] in exp.get("metrics", [])):
        raise SchemaError(f"{file}: {where}.chart.value: '{v}' is not one of {', '.join(VALUES)} or metric:NAME of metrics")


def resolve_experiment(raw, quick):
    """An experiment's settings in this mode: the defaults, then its keys, then in
    quick mode its [quick] table (params and chart merged key by key)."""
    exp = DEFAULTS | {k: v for k, v in raw.items() if k != "quick"}
    q = raw.get("quick", {}) if quick else {}
    for k, v in q.items():
        exp[k] = (exp.get(k) or {}) | v if k in ("params", "chart") else v
    return exp


def load(path):
    """Read and check a chapter's TOML file; returns its table. Raises SchemaError."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SchemaError(f"{file}: {e}") from None
    _keys(file, "", doc, CHAPTER)
    exps = doc.get("experiment")
    if not isinstance(exps, dict) or not exps:
        raise SchemaError(f"{file}: no [experiment.NAME] table")
    for name, raw in exps.items():
        _keys(file, f"experiment.{name}", raw, EXPERIMENT)
        quick = raw.get("quick", {})
        _keys(file, f"experiment.{name}.quick", quick, QUICK)
        for mode, keys in (("", False), (" (in quick mode)", True)):
            _check_experiment(file, name, resolve_experiment(raw, keys), mode)
    summary = doc.get("summary", {})
    _keys(file, "summary", summary, SUMMARY)
    if "code" in summary and not (Path(path).parent / summary["code"]).is_file():
        raise SchemaError(f"{file}: summary.code: no file '{summary['code']}' beside it")
    figures = summary.get("figure", [])
    if not isinstance(figures, list):
        raise SchemaError(f"{file}: summary.figure must be an array of tables ([[summary.figure]])")
    for i, fig in enumerate(figures):
        where = f"summary.figure[{i}]"
        _keys(file, where, fig, FIGURE)
        sources = [k for k in ("ratio", "row", "code") if k in fig]
        if len(sources) != 1:
            raise SchemaError(f"{file}: {where} needs exactly one of ratio, row or code")
        if "code" in fig and "code" not in summary:
            raise SchemaError(f"{file}: {where}.code: summary.code names no Python file")
        if "code" not in fig:
            for req in ("name", "what", "from"):
                if req not in fig:
                    raise SchemaError(f"{file}: {where}.{req} is required")
        if "from" in fig and fig["from"] not in exps:
            raise SchemaError(f"{file}: {where}.from: no experiment '{fig['from']}'")
        if "of" in fig:
            _check_of(file, where, fig["of"])
        if "floor" in fig and fig["floor"] not in FLOORS:
            raise SchemaError(f"{file}: {where}.floor: no floor '{fig['floor']}' (one of {', '.join(FLOORS)})")
        if "goal" in fig:
            try:
                parse_goal(fig["goal"])
            except ValueError as e:
                raise SchemaError(f"{file}: {where}.goal: {e}") from None
    return doc
