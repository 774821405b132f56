#!/usr/bin/env python3
"""The contract's rules that a reading of the source can check.

- No demo source file is longer than 600 lines: a larger chapter puts its
  designs or plumbing in files of their own beside it.
- A demo never tells variants apart by name, by function pointer, by the
  address of its data or by an enum behind its data: it reads the variant's
  `kind` (no strcmp on a name, no `->worker ==`, no `d == &design`).
- No comment in lib/ or demos/ points at a file that does not exist.
"""
import glob
import os
import re
import sys

SRC = os.environ.get("CONCLAB_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
MAX_LINES = 600
# strcmp/strncmp on anything that reads a variant's name, or a comparison of
# the worker or run pointers
BY_NAME = re.compile(r"str(n)?cmp\s*\([^;]*\bname\b")
BY_POINTER = re.compile(r"->(worker|run)\s*[!=]=|[!=]=\s*\w+->variant->(worker|run)\b")
BY_ADDRESS = re.compile(r"[!=]=\s*&\w")
ENUM_DATA = re.compile(r"\(\s*const\s+enum\s+\w+\s*\*\s*\)")
MENTION = re.compile(r"\b((?:lib|demos|tests|bench|plots|tutorial)/[\w./-]+\.(?:[ch]|md|py|gp))\b")

failures = []
for path in sorted(glob.glob(os.path.join(SRC, "demos", "*", "*.[ch]"))):
    rel = os.path.relpath(path, SRC)
    lines = open(path).read().split("\n")
    if len(lines) - 1 > MAX_LINES:
        failures.append(f"{rel}: {len(lines) - 1} lines, more than {MAX_LINES}")
    for n, line in enumerate(lines, 1):
        if BY_NAME.search(line):
            failures.append(f"{rel}:{n}: compares a variant's name (use its kind)")
        if BY_POINTER.search(line):
            failures.append(f"{rel}:{n}: compares a variant's function pointer (use its kind)")
        if BY_ADDRESS.search(line):
            failures.append(f"{rel}:{n}: compares an address, as an identity test (use a kind)")
        if ENUM_DATA.search(line):
            failures.append(f"{rel}:{n}: reads an enum behind a pointer (use the variant's kind)")

for path in sorted(glob.glob(os.path.join(SRC, "lib", "*.[ch]")) +
                   glob.glob(os.path.join(SRC, "demos", "*", "*.[ch]"))):
    rel = os.path.relpath(path, SRC)
    for n, line in enumerate(open(path), 1):
        for m in MENTION.finditer(line):
            if not os.path.exists(os.path.join(SRC, m.group(1))):
                failures.append(f"{rel}:{n}: names {m.group(1)}, which does not exist")

for f in failures:
    print(f)
print(f"{len(failures)} problem(s)" if failures else "the demos keep the contract's rules")
sys.exit(1 if failures else 0)
