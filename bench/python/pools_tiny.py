#!/usr/bin/env python3
"""CPython's side of conclab's tiny-task stream (bench/pool_peer.c): TASKS tasks
that each return their number, submitted one by one to a ThreadPoolExecutor or a
ProcessPoolExecutor of WORKERS, then all waited for. The clock runs from the
first submit to the last result; making the pool (and its processes) is outside
it, as in the C peers.

    python3 bench/python/pools_tiny.py --executor thread|process --workers 2 --tasks 20000 [--json]
"""
import argparse
import concurrent.futures as cf
import json
import sys
import time


def tiny(i):
    return i


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executor", choices=("thread", "process"), required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.workers < 1 or a.tasks < 1:
        ap.error("--workers and --tasks must be at least 1")
    kind = cf.ThreadPoolExecutor if a.executor == "thread" else cf.ProcessPoolExecutor
    with kind(max_workers=a.workers) as ex:
        # start every worker before the clock: ProcessPoolExecutor spawns them lazily
        list(ex.map(tiny, range(a.workers)))
        t0 = time.perf_counter()
        fs = [ex.submit(tiny, i) for i in range(a.tasks)]
        total = sum(f.result() for f in fs)
        wall = time.perf_counter() - t0
    exact = total == a.tasks * (a.tasks - 1) // 2
    verdict = "CPython %d.%d.%d %sPoolExecutor(%d): %d tiny tasks, %.1f us each, %.0f tasks/s" % (
        *sys.version_info[:3], a.executor.capitalize(), a.workers, a.tasks, wall / a.tasks * 1e6,
        a.tasks / wall)
    if a.json:
        print(json.dumps({
            "chapter": "pools", "variant": "cpython-" + a.executor, "threads": a.workers,
            "python": "%d.%d.%d" % sys.version_info[:3],
            "params": {"workers": a.workers, "tasks": a.tasks}, "wall_s": wall, "ops": a.tasks,
            "ns_per_op": wall / a.tasks * 1e9,
            "metrics": {"tasks_per_s": a.tasks / wall}, "exact": exact, "verdict": verdict}))
    else:
        print(verdict)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
