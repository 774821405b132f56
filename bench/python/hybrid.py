#!/usr/bin/env python3
"""CPython's side of conclab's hybrid chapter: an asyncio loop that hands work to
executors while a lag monitor (a task asking to wake every 2 ms) notes how late
it runs.

    to-thread      three 1-unit blocking calls through asyncio.to_thread
    cpu-to-thread  2 CPU jobs per CPU of one unit each on the default executor
                   (a thread pool): the GIL lets one run at a time
    cpu-to-procs   the same jobs on a ProcessPoolExecutor of CPUs - 1 workers
    pool-in-callback  4 requests, each in a coroutine that makes a
                   ProcessPoolExecutor() (one worker per CPU), awaits one tiny task
                   on it and shuts it down, as a `with` block does: the time the
                   loop's thread spends in the executor's start and shutdown

    python3 bench/python/hybrid.py --variant cpu-to-thread [--unit-ms 100] [--json]

A unit is --unit-ms (100 ms by default); a CPU job is a sum of squares whose
length is calibrated to one unit before the loop starts, and checked against
its closed form.
"""
import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
import time

LAG_EVERY_S = 0.002


def sum_squares(lo, hi):
    s = 0
    for i in range(lo, hi):
        s += i * i
    return s


def closed(n):  # the sum of i*i for i < n
    return (n - 1) * n * (2 * n - 1) // 6


def calibrate(unit_s):
    terms, took = 1 << 12, 0.0
    while took < 0.01:
        terms *= 2
        t0 = time.perf_counter()
        sum_squares(0, terms)
        took = time.perf_counter() - t0
    for _ in range(2):  # the best of three
        t0 = time.perf_counter()
        sum_squares(0, terms)
        took = min(took, time.perf_counter() - t0)
    return max(1, int(terms * unit_s / took))


def plus_one(x):
    return x + 1


def blocking_call(i, unit_s):
    time.sleep(unit_s)
    return i * 10 + 1


async def monitor(lags, stop):
    loop = asyncio.get_running_loop()
    due = loop.time() + LAG_EVERY_S
    while not stop.is_set():
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        lags.append(now - due)
        due = now + LAG_EVERY_S


async def run(variant, unit_s, jobs, workers, terms):
    loop = asyncio.get_running_loop()
    lags, stop = [], asyncio.Event()
    mon = asyncio.create_task(monitor(lags, stop))
    await asyncio.sleep(0)
    pool = None
    if variant == "cpu-to-procs":
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
        # start the workers before the clock: the page measures the work, not the start
        await asyncio.gather(*(loop.run_in_executor(pool, sum_squares, 0, 1)
                               for _ in range(workers)))
    elif variant == "cpu-to-thread":
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    t0 = time.perf_counter()
    stall = 0.0
    if variant == "pool-in-callback":
        n, ok = 4, 0
        for i in range(n):
            await asyncio.sleep(0.005)
            t1 = time.perf_counter()  # `with ProcessPoolExecutor() as ex:` in the coroutine
            ex = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
            fut = loop.run_in_executor(ex, plus_one, i)  # submit starts the workers here
            stall += time.perf_counter() - t1
            ok += await fut == i + 1
            t1 = time.perf_counter()
            ex.shutdown(wait=True)  # the block's exit, on the loop's thread
            stall += time.perf_counter() - t1
    elif variant == "to-thread":
        got = await asyncio.gather(*(asyncio.to_thread(blocking_call, i, unit_s)
                                     for i in range(3)))
        ok = sum(g == i * 10 + 1 for i, g in enumerate(got))
        n = 3
    else:
        got = await asyncio.gather(*(loop.run_in_executor(pool, sum_squares, i * terms,
                                                          (i + 1) * terms)
                                     for i in range(jobs)))
        ok = sum(g == closed((i + 1) * terms) - closed(i * terms) for i, g in enumerate(got))
        n = jobs
    wall = time.perf_counter() - t0
    await asyncio.sleep(2 * LAG_EVERY_S)  # a stall in the last step shows at the next sample
    stop.set()
    await mon
    if pool is not None:
        pool.shutdown()
    return wall, n, ok, sorted(lags), stall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", required=True,
                    choices=["to-thread", "cpu-to-thread", "cpu-to-procs",
                             "pool-in-callback"])
    ap.add_argument("--unit-ms", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2 * (os.cpu_count() or 1))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 10 <= a.unit_ms <= 1000:
        ap.error("--unit-ms: 10 to 1000")
    if not 1 <= a.jobs <= 64:
        ap.error("--jobs: 1 to 64")
    cpus = os.cpu_count() or 1
    workers = a.workers or (3 if a.variant == "to-thread" else
                            max(1, cpus - 1) if a.variant == "cpu-to-procs" else cpus)
    unit_s = a.unit_ms / 1000
    terms = calibrate(unit_s) if a.variant.startswith("cpu") else 0
    wall, n, ok, lags, stall = asyncio.run(run(a.variant, unit_s, a.jobs, workers, terms))
    units = wall / unit_s
    p99 = lags[-(-len(lags) * 99 // 100) - 1] * 1000 if lags else 0.0
    metrics = {"makespan_units": units, "lag_p99_ms": p99,
               "lag_max_ms": lags[-1] * 1000 if lags else 0.0, "lag_samples": len(lags)}
    if a.variant.startswith("cpu"):
        metrics["speedup"] = n / units
    if a.variant == "pool-in-callback":
        metrics["stall_per_request_ms"] = stall * 1000 / n
    verdict = ("CPython %d.%d.%d %s: %d of %d results right in %.2f units; the loop's lag "
               "p99 %.1f ms" % (*sys.version_info[:3], a.variant, ok, n, units, p99))
    if a.json:
        print(json.dumps({
            "chapter": "hybrid", "variant": "cpython-" + a.variant, "threads": workers,
            "params": {"unit_ms": a.unit_ms, "jobs": a.jobs, "workers": workers},
            "wall_s": wall, "ops": n, "metrics": metrics, "exact": ok == n,
            "verdict": verdict, "python": sys.version.split()[0]}))
    else:
        print(verdict)
    return 0 if ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
