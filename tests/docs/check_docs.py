#!/usr/bin/env python3
"""The doc test: the tutorial can never drift from the code.

- A C block in tutorial/ must be introduced by `<!-- snippet: PATH NAME -->` and
  equal, line for line, the region of PATH between `/* [snippet NAME] */` and
  `/* [end NAME] */`; or by `<!-- solution -->` (an exercise's answer, in no
  source file), and then it must compile against lib/.
- Every `$ ` line of a ```console block runs from the source root and must exit
  0, or N where it ends in `# exit N`, within max(3 x its stated time, the stated
  time + 2 s); the text block under it must match the re-run, and its range
  comment must hold, in the block and in the re-run (tests/docs/pages.py says how),
  in one of three runs: a race may lose nothing in a run where other programs
  kept its threads apart.
- An output that starts with a demo's header line (what to look for) has a range
  comment; a page with outputs says where they were printed (tutorial/refresh).
- Every relative link and image in tutorial/ and README.md points at a file, and
  at a heading of it (GitHub's anchors) where it names one.

`--slow` checks only the console blocks stated to take over 10 s (the docs-slow
suite); without it they are left out, and listed. PAGE.md arguments check only
those pages.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pages  # noqa: E402

SRC = os.environ["CONCLAB_SOURCE"]
BUILD = os.environ["CONCLAB_BUILD"]
TSAN_BUILD = os.environ.get("CONCLAB_TSAN_BUILD", "")
SLOW = "--slow" in sys.argv[1:]
ONLY = [a for a in sys.argv[1:] if a.endswith(".md")]
MARKER = re.compile(r"<!-- snippet: (\S+) (\S+) -->")
SOLUTION = "<!-- solution -->"
SOLUTION_PRELUDE = "#include <stdatomic.h>\n#include <stdint.h>\n#include \"conclab.h\"\n"
ATTEMPTS = 3
LINK_OR_ANCHOR = re.compile(r"\]\(([^)#\s]*)(#[^)\s]*)?\)")
PRINTED = re.compile(r"<!-- printed: .* -->")


def headers():
    """Each demo's header line, `NAME: ` and what --help says to watch for."""
    out = set()
    for name in sorted(os.listdir(os.path.join(SRC, "demos"))):
        exe = os.path.join(BUILD, "demos", name, name)
        if os.access(exe, os.X_OK):
            helptext = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
            watch = re.search(r"^Watch: (.*)$", helptext, re.M)
            if watch:
                out.add(f"{name}: {watch.group(1)}")
    return out


HEADERS = headers()
failures, skipped, slow = [], [], []


def fail(where, msg):
    failures.append(f"{where}: {msg}")


def region(path, name):
    lines = open(os.path.join(SRC, path)).read().split("\n")
    begin, end = f"/* [snippet {name}] */", f"/* [end {name}] */"
    try:
        i = next(k for k, l in enumerate(lines) if l.strip() == begin)
        j = next(k for k, l in enumerate(lines) if k > i and l.strip() == end)
    except StopIteration:
        return None
    return lines[i + 1 : j]


def compiles(where, body):
    with tempfile.NamedTemporaryFile("w", suffix=".c") as f:
        f.write(SOLUTION_PRELUDE + "\n".join(body) + "\n")
        f.flush()
        res = subprocess.run(["cc", "-std=c17", "-D_GNU_SOURCE", "-Wall", "-Werror", "-fsyntax-only",
                              "-Wno-unused-function", "-I", os.path.join(SRC, "lib"), f.name],
                             capture_output=True)
    if res.returncode != 0:
        fail(where, "solution does not compile: " + res.stderr.decode(errors="replace")[:500])


def check_console(where, block):
    """Run the block's commands; check exit statuses, the output and its ranges."""
    out = block.output
    if out is not None:
        try:
            pages.ranges(out)
        except ValueError as e:
            fail(where, str(e))
            return
        for p in pages.check_ranges(out, out.body):
            fail(where, f"the page's own output: {p}")
        first = pages.nonblank(out.body)[:1]
        if first and first[0] in HEADERS and "range" not in out.comments:
            fail(where, "an output with a header line (what to look for) needs a "
                        "<!-- range: KEY LO..HI --> comment for the figure that carries the lesson")
    if (pages.stated_time(block) > pages.SLOW_S) != SLOW:
        if not SLOW:
            slow.append(f"{where} ({pages.stated_time(block):g} s)")
        return
    # A race that loses nothing in one run (other programs kept its threads from
    # overlapping) is not drift: an output must be reproduced by one of a few runs.
    for attempt in range(1, ATTEMPTS + 1):
        problems = rerun(block)
        if problems is None or not problems:
            return
        if problems[0].startswith("exit") or attempt == ATTEMPTS:
            for p in problems:
                fail(where, p + (f" (in each of {ATTEMPTS} runs)" if attempt > 1 else ""))
            return


def rerun(block):
    """The problems of one re-run of a console block ([] for none), or None when it
    did not run (a skipped TSan command, or one that timed out, reported here)."""
    where = f"{block.page}:{block.start + 1}"
    out = block.output
    printed = []
    for cmd in pages.commands(block):
        res = pages.run(cmd, SRC, BUILD, TSAN_BUILD, pages.limit_s(block))
        if isinstance(res, str):
            (skipped if res.startswith("skipped") else failures).append(f"{where}: {res}: {cmd}")
            return None
        status, lines, _ = res
        if status != pages.want_exit(cmd):
            return [f"exit {status}, expected {pages.want_exit(cmd)}: {cmd} {lines[-4:]}"]
        printed += lines
    if out is None:
        return []
    want, got = pages.nonblank(out.body), pages.nonblank(printed)
    problems = []
    if pages.match(want, got) is None:
        problems.append("the output differs from a re-run (tutorial/refresh rewrites it): "
                        + pages.first_difference(want, got))
    return problems + [f"the re-run: {p}" for p in pages.check_ranges(out, got)]


def check_page(path):
    rel = os.path.relpath(path, SRC)
    text = open(path).read()
    lines = text.split("\n")
    has_output = False
    for block in pages.blocks(lines):
        block.page = rel
        where = f"{rel}:{block.start + 1}"
        marker = MARKER.match(block.prev)
        if block.info == "c" and block.prev == SOLUTION:
            compiles(where, block.body)
        elif block.info == "c":
            if not marker:
                fail(where, "a C block without a <!-- snippet: PATH NAME --> or <!-- solution -->")
                continue
            want = region(marker.group(1), marker.group(2))
            if want is None:
                fail(where, f"no region {marker.group(2)} in {marker.group(1)}")
            elif block.body != want:
                fail(where, f"differs from {marker.group(1)} [{marker.group(2)}]")
        elif block.info == "console":
            has_output |= block.output is not None
            check_console(where, block)
    if has_output and not PRINTED.search(text) and not SLOW:
        fail(rel, "outputs, but no <!-- printed: ... --> line saying where (tutorial/refresh writes it)")
    for m in LINK_OR_ANCHOR.finditer(text):
        target, anchor = m.group(1) or "", (m.group(2) or "")[1:]
        if re.match(r"^[a-z]+:", target):
            continue
        dest = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        if not os.path.exists(dest):
            fail(rel, f"broken link: {target}")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            fail(rel, f"broken link: {target}#{anchor} (no such heading)")


def anchors(path):
    """The anchors GitHub makes of a page's headings, and its <a id> tags."""
    text = open(path).read()
    text_no_code = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    out, seen = set(re.findall(r'<a id="([^"]+)"', text)), {}
    for h in re.findall(r"^#{1,6} (.*)$", text_no_code, re.M):
        slug = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def main():
    pages_ = [os.path.join(SRC, "README.md")]
    tdir = os.path.join(SRC, "tutorial")
    pages_ += sorted(os.path.join(tdir, f) for f in os.listdir(tdir) if f.endswith(".md"))
    for page in pages_:
        if not ONLY or any(page.endswith(o) for o in ONLY):
            check_page(page)
    for s in skipped:
        print(s)
    if slow:
        print(f"left to the docs-slow suite: {', '.join(slow)}")
    for f in failures:
        print(f)
    print(f"{len(pages_)} pages checked, {len(skipped)} commands skipped, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
