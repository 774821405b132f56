#!/usr/bin/env python3
"""CPython's side of conclab's async gather: three tasks sleeping 2, 1 and 3
units (a unit: UNIT_MS, 100 ms by default), gathered; the makespan, inside the
process, against the 3 units of the longest.

    python3 bench/python/async_gather.py --unit-ms 100 [--json]
"""
import argparse
import asyncio
import json
import sys
import time


async def run(unit_s):
    async def fetch(i, units):
        await asyncio.sleep(units * unit_s)
        return 10 * i

    t0 = time.perf_counter()
    values = await asyncio.gather(fetch(1, 2), fetch(2, 1), fetch(3, 3))
    return time.perf_counter() - t0, values


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unit-ms", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.unit_ms <= 1000:
        ap.error("--unit-ms: 1 to 1000")
    wall, values = asyncio.run(run(a.unit_ms / 1000))
    units = wall * 1000 / a.unit_ms
    exact = values == [10, 20, 30] and 3 <= units < 6
    verdict = ("CPython %d.%d.%d: tasks of 2, 1 and 3 units together took %.2f units"
               % (*sys.version_info[:3], units))
    if a.json:
        print(json.dumps({
            "chapter": "async", "variant": "cpython-gather", "threads": 1,
            "params": {"unit_ms": a.unit_ms}, "wall_s": wall, "ops": 3,
            "metrics": {"makespan_units": units, "overhead_ms": (units - 3) * a.unit_ms},
            "exact": exact, "verdict": verdict, "python": sys.version.split()[0]}))
    else:
        print(verdict)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
