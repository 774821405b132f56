"""The tutorial's pages as the docs test and tutorial/refresh read them.

A ```console block's `$ ` lines are commands, run from the source root with
`build/` meaning the build under test and `build-tsan/` the ThreadSanitizer
build in CONCLAB_TSAN_BUILD. Comment lines right above the block qualify it:

    <!-- time: 25 s -->   the time the commands take (default 2 s); over 10 s
                          they are slow, and run only in the docs-slow suite

A ```text block right after a console block (only blank lines and comment
lines between) is its output: stdout and stderr together, of every command of
the block in turn. It matches a re-run once numbers are masked and runs of
spaces squeezed: the same lines in the same order, blank lines aside, where a
line `...` stands for any number of lines. Comment lines between the two blocks:

    <!-- range: KEY LO..HI; KEY LO..HI -->
        the first number after KEY, on the first line holding KEY, lies in
        LO..HI (either end may be left open), in the block and in the re-run
"""
import os
import re
import subprocess
import time

FENCE = re.compile(r"^(\s*)```(\w*)")
COMMENT = re.compile(r"^\s*<!--\s*(\w+):\s*(.*?)\s*-->\s*$")
EXIT = re.compile(r"#\s*exit (\d+)\s*$")
# a number, with the unit glued to it if any (wrk prints 559.16us, or 1.27ms)
NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?:[a-zA-Zµ]{1,2}\b)?")
RANGE = re.compile(r'^\s*(?:"([^"]+)"|(\S+))\s+(-?[\d.]*)\.\.(-?[\d.]*)\s*$')
DEFAULT_TIME_S = 2.0
SLOW_S = 10.0
ELLIPSIS = "..."
BUSY = re.compile(r";[^;]*: the machine is busy[^;]*")
TSAN_ACCESS = re.compile(r"\b(Previous |)(?:[Rr]ead|[Ww]rite) of size")
STDBUF = "/usr/libexec/coreutils/libstdbuf.so"


def mask(line):
    """A line as the match compares it: numbers as #, spaces squeezed,"""
    # and a plural after a number as its singular ("1 wake-up", "2 wake-ups"),
    # without the warning a demo adds when other programs took its CPUs,
    line = BUSY.sub("", line)
    # which of a race's two accesses TSan caught first, the read or the write
    line = TSAN_ACCESS.sub(lambda m: m.group(1) + "access of size", line)
    return re.sub(r"# ([\w-]+?)s\b", r"# \1", " ".join(NUMBER.sub("#", line).split()))


class Block:
    def __init__(self, start, end, indent, info, body):
        self.start = start  # the opening fence's index in the page's lines
        self.end = end  # the closing fence's index
        self.indent = indent
        self.info = info
        self.body = body
        self.comments = {}  # kind -> value, from the comment lines just above
        self.output = None  # for a console block: its text block, if it has one


def blocks(lines):
    out = []
    k = 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        start, indent, info = k, m.group(1), m.group(2)
        k += 1
        body = []
        while k < len(lines) and not lines[k].strip().startswith("```"):
            line = lines[k]  # a block inside a list item is indented with it
            body.append(line[len(indent):] if line.startswith(indent) else line)
            k += 1
        block = Block(start, k, indent, info, body)
        block.prev = next((lines[p].strip() for p in range(start - 1, -1, -1) if lines[p].strip()), "")
        p = start - 1
        while p >= 0 and (COMMENT.match(lines[p]) or not lines[p].strip()):
            c = COMMENT.match(lines[p])
            if c:
                block.comments.setdefault(c.group(1), c.group(2))
            p -= 1
        block.gap_to_prev = p  # the last line above the comments and blanks
        out.append(block)
        k += 1
    for a, b in zip(out, out[1:]):
        if a.info == "console" and b.info == "text" and b.gap_to_prev == a.end:
            a.output = b
    return out


def commands(block):
    return [line[2:] for line in block.body if line.startswith("$ ")]


def stated_time(block):
    m = re.match(r"^([\d.]+)\s*s$", block.comments.get("time", ""))
    return float(m.group(1)) if m else DEFAULT_TIME_S


def limit_s(block):
    t = stated_time(block)
    return max(3 * t, t + 2)


def ranges(block):
    """[(key, lo, hi)] from a text block's range comment, or a ValueError."""
    spec = block.comments.get("range")
    if spec is None:
        return []
    out = []
    for part in spec.split(";"):
        m = RANGE.match(part)
        if not m or (m.group(3) == "" and m.group(4) == ""):
            raise ValueError(f"a range is KEY LO..HI: {part.strip()!r}")
        lo = float(m.group(3)) if m.group(3) else float("-inf")
        hi = float(m.group(4)) if m.group(4) else float("inf")
        out.append((m.group(1) or m.group(2), lo, hi))
    return out


def value_after(lines, key):
    """The first number after KEY on the first line holding KEY, or None."""
    for line in lines:
        flat = " ".join(line.split())
        i = flat.find(key)
        if i >= 0:
            m = NUMBER.search(flat, i + len(key))
            return float(m.group(0).replace(",", "")) if m and not m.group(0).startswith("0x") else None
    return None


def check_ranges(block, lines):
    """Problems of LINES (a block's or a re-run's) against the block's ranges."""
    problems = []
    for key, lo, hi in ranges(block):
        v = value_after(lines, key)
        if v is None:
            problems.append(f"no number after {key!r}")
        elif not lo <= v <= hi:
            problems.append(f"{key!r} is {v:g}, outside {lo:g}..{hi:g}")
    return problems


def match(want, got):
    """Index in GOT of each line of WANT (None for `...`), or None if they differ.
    Blank lines are left out of both beforehand."""
    w = [mask(x) for x in want]
    g = [mask(x) for x in got]
    memo = {}

    def at(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(w):
            res = [] if j == len(g) else None
        elif w[i] == ELLIPSIS:
            res = None
            for k in range(j, len(g) + 1):
                rest = at(i + 1, k)
                if rest is not None:
                    res = [None] + rest
                    break
        elif j < len(g) and w[i] == g[j]:
            rest = at(i + 1, j + 1)
            res = None if rest is None else [j] + rest
        else:
            res = None
        memo[(i, j)] = res
        return res

    return at(0, 0)


def first_difference(want, got):
    """A one-line account of where WANT and GOT part, for the failure message."""
    i = 0
    while i < min(len(want), len(got)) and want[i] != ELLIPSIS and mask(want[i]) == mask(got[i]):
        i += 1
    if i < len(want) and want[i] == ELLIPSIS:
        return f"after line {i} of the block (past a '...')"
    w = want[i] if i < len(want) else "(end of block)"
    g = got[i] if i < len(got) else "(end of output)"
    return f"line {i + 1}: the page has {w!r}, the run printed {g!r}"


def nonblank(lines):
    return [x.rstrip() for x in lines if x.strip()]


def run(cmd, src, build, tsan_build, timeout_s):
    """(exit status, output lines, seconds), or a string: why it did not run."""
    if re.search(r"(?<![\w/.-])build-tsan/", cmd):
        if not tsan_build:
            return "skipped: a TSan command, and CONCLAB_TSAN_BUILD is unset"
        cmd = re.sub(r"(?<![\w/.-])build-tsan/", tsan_build.rstrip("/") + "/", cmd)
    cmd = re.sub(r"(?<![\w/.-])build/", build.rstrip("/") + "/", cmd)
    env = dict(os.environ)
    env.setdefault("TSAN_OPTIONS", "atexit_sleep_ms=0")  # as the test suites run it
    if os.path.exists(STDBUF) and "build-tsan" not in cmd:
        # stdout line by line, as on a terminal, so that it keeps its place among
        # the lines of stderr (what `stdbuf -oL` does, here for every command of
        # a pipeline)
        env.update(LD_PRELOAD=STDBUF, _STDBUF_O="L")
    t0 = time.monotonic()
    try:
        res = subprocess.run(["bash", "-c", cmd], cwd=src, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout_s:g} s"
    return res.returncode, res.stdout.decode(errors="replace").split("\n"), time.monotonic() - t0


def want_exit(cmd):
    m = EXIT.search(cmd)
    return int(m.group(1)) if m else 0
