#!/usr/bin/env python3
"""The doc test: the tutorial can never drift from the code.

- A C block in tutorial/ must be introduced by `<!-- snippet: PATH NAME -->` and
  equal, line for line, the region of PATH between `/* [snippet NAME] */` and
  `/* [end NAME] */`; or by `<!-- solution -->` (an exercise's answer, in no
  source file), and then it must compile against lib/.
- Every `$ ` line of a ```console block runs from the source root, with `build/`
  meaning the build under test, and must exit 0, or N where it ends in `# exit N`.
- Every relative link and image in tutorial/ and README.md points at a file.
"""
import os
import re
import subprocess
import sys
import tempfile

SRC = os.environ["CONCLAB_SOURCE"]
BUILD = os.environ["CONCLAB_BUILD"]
MARKER = re.compile(r"<!-- snippet: (\S+) (\S+) -->")
SOLUTION = "<!-- solution -->"
SOLUTION_PRELUDE = "#include <stdatomic.h>\n#include <stdint.h>\n#include \"conclab.h\"\n"
EXIT = re.compile(r"#\s*exit (\d+)\s*$")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
failures = []


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


def blocks(lines):
    """(start line, fence info, body lines, marker line before the fence)."""
    k = 0
    while k < len(lines):
        m = re.match(r"^(\s*)```(\w*)", lines[k])
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
        prev = next((lines[p] for p in range(start - 1, -1, -1) if lines[p].strip()), "")
        yield start + 1, info, body, prev
        k += 1


def run_command(where, cmd):
    m = EXIT.search(cmd)
    want = int(m.group(1)) if m else 0
    cmd = re.sub(r"(?<![\w/.-])build/", BUILD + "/", cmd)
    try:
        res = subprocess.run(["bash", "-c", cmd], cwd=SRC, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        fail(where, f"timed out: {cmd}")
        return
    if res.returncode != want:
        err = res.stderr.decode(errors="replace").strip().splitlines()[-3:]
        fail(where, f"exit {res.returncode}, expected {want}: {cmd} {err}")


def compiles(where, body):
    with tempfile.NamedTemporaryFile("w", suffix=".c") as f:
        f.write(SOLUTION_PRELUDE + "\n".join(body) + "\n")
        f.flush()
        res = subprocess.run(["cc", "-std=c17", "-D_GNU_SOURCE", "-Wall", "-Werror", "-fsyntax-only",
                              "-Wno-unused-function", "-I", os.path.join(SRC, "lib"), f.name],
                             capture_output=True)
    if res.returncode != 0:
        fail(where, "solution does not compile: " + res.stderr.decode(errors="replace")[:500])


def check_page(path):
    rel = os.path.relpath(path, SRC)
    text = open(path).read()
    lines = text.split("\n")
    for lineno, info, body, prev in blocks(lines):
        where = f"{rel}:{lineno}"
        marker = MARKER.match(prev.strip())
        if info == "c" and prev.strip() == SOLUTION:
            compiles(where, body)
        elif info == "c":
            if not marker:
                fail(where, "a C block without a <!-- snippet: PATH NAME --> or <!-- solution -->")
                continue
            want = region(marker.group(1), marker.group(2))
            if want is None:
                fail(where, f"no region {marker.group(2)} in {marker.group(1)}")
            elif body != want:
                fail(where, f"differs from {marker.group(1)} [{marker.group(2)}]")
        elif info == "console":
            for line in body:
                if line.startswith("$ "):
                    run_command(where, line[2:])
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        if not os.path.exists(os.path.join(os.path.dirname(path), target)):
            fail(rel, f"broken link: {target}")


def main():
    pages = [os.path.join(SRC, "README.md")]
    tdir = os.path.join(SRC, "tutorial")
    pages += sorted(os.path.join(tdir, f) for f in os.listdir(tdir) if f.endswith(".md"))
    for page in pages:
        check_page(page)
    for f in failures:
        print(f)
    print(f"{len(pages)} pages checked, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
