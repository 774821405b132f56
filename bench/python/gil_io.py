#!/usr/bin/env python3
"""CPython's side of conclab's io-threads: THREADS threads, each making ITERS
blocking calls (time.sleep) of IO_US microseconds; the GIL is released around
each one, so they overlap.

    python3 bench/python/gil_io.py --threads 100 --iters 1 --io-us 100000 [--json]
"""
import argparse
import json
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=100)
    ap.add_argument("--iters", type=int, default=1)
    ap.add_argument("--io-us", type=int, default=100000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads < 1 or a.iters < 1 or a.io_us < 1:
        ap.error("--threads, --iters and --io-us must be at least 1")
    done = [0] * a.threads

    def work(k):
        for _ in range(a.iters):
            time.sleep(a.io_us / 1e6)  # blocks with the GIL released
            done[k] += 1

    pool = [threading.Thread(target=work, args=(k,)) for k in range(a.threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    ops = sum(done)
    blocked = ops * a.io_us / 1e6
    verdict = ("CPython %d.%d.%d, %d threads x %d blocking call%s of %g ms: %.2f s of waiting "
               "done in %.3f s (%.0fx overlap)" % (*sys.version_info[:3], a.threads, a.iters,
                                                  "" if a.iters == 1 else "s", a.io_us / 1000,
                                                  blocked, wall, blocked / wall))
    if a.json:
        print(json.dumps({
            "chapter": "gil", "variant": "cpython-io", "threads": a.threads,
            "params": {"iters": a.iters, "io_us": a.io_us}, "wall_s": wall, "ops": ops,
            "metrics": {"wall_s": wall, "blocked_s": blocked, "overlap": blocked / wall},
            "exact": ops == a.threads * a.iters, "verdict": verdict}))
    else:
        print(verdict)
    return 0 if ops == a.threads * a.iters else 1


if __name__ == "__main__":
    sys.exit(main())
