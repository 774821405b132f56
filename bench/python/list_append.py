#!/usr/bin/env python3
"""CPython's side of conclab's vector-append: THREADS threads each append ITERS
items, (thread, index), to one shared list with no lock; then the list's length
and how many distinct items it holds, against THREADS x ITERS.

    python3 bench/python/list_append.py --threads 10 --iters 100000 [--json]
"""
import argparse
import json
import sys
import threading
import time

items = []


def append_many(thread, iters):
    for i in range(iters):
        items.append((thread, i))  # one call into C, which runs it whole under the GIL


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--iters", type=int, default=100000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads < 1 or a.iters < 1:
        ap.error("--threads and --iters must be at least 1")
    pool = [threading.Thread(target=append_many, args=(t, a.iters)) for t in range(a.threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    expected = a.threads * a.iters
    kept = len(set(items))
    verdict = ("CPython %d.%d.%d, %d threads x %d appends to one list: length %d, %d distinct "
               "items, %d lost" % (*sys.version_info[:3], a.threads, a.iters, len(items), kept,
                                   expected - kept))
    if a.json:
        print(json.dumps({
            "chapter": "race", "variant": "cpython-list-append", "threads": a.threads,
            "params": {"iters": a.iters}, "wall_s": wall, "ops": expected,
            "ns_per_op": wall * 1e9 / expected,
            "metrics": {"length": len(items), "distinct": kept, "lost": expected - kept,
                        "kept_pct": 100.0 * kept / expected},
            "exact": kept == expected == len(items), "verdict": verdict}))
    else:
        print(verdict)
    return 0 if kept == expected == len(items) else 1


if __name__ == "__main__":
    sys.exit(main())
