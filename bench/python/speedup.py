#!/usr/bin/env python3
"""CPython's side of conclab's speedup chapter: the same tasks as the C demo,
run sequentially, on threads, on a thread pool, on processes and on asyncio.

    python3 bench/python/speedup.py --variant threads --work cpu --tasks 16 \\
        --size 100000 --workers 16 [--latency-ms 5] [--json]

cpu: task i sums i*i over its own slice [i*size, (i+1)*size) of one range,
wrapping at 2**64 as the C kernel does; the total is checked in closed form.
io-sleep: each task sleeps --latency-ms. With --json, one JSON line like the
demo's: ops, wall_s (from the first task submitted to the last result, pool
and process start-up included), metrics (cpu_s with children, parallelism).
"""
import argparse
import json
import resource
import sys
import threading
import time

MASK = 2**64 - 1


def cpu_task(i, size):
    total = 0
    for k in range(i * size, (i + 1) * size):
        total += k * k
    return total & MASK


def io_task(i, latency_s):
    time.sleep(latency_s)
    return i


def closed(n):  # sum of k*k for k < n, mod 2**64
    return (n - 1) * n * (2 * n - 1) // 6 & MASK if n else 0


def run_seq(task, args, n, w):
    return [task(i, args) for i in range(n)]


def run_threads(task, args, n, w):  # w threads, each with every w-th task
    results = [None] * n

    def share(first):
        for i in range(first, n, w):
            results[i] = task(i, args)

    threads = [threading.Thread(target=share, args=(k,)) for k in range(w)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# asyncio, concurrent.futures and multiprocessing are imported where used: each
# adds tens of ms to start-up, which every timed run would pay.
def run_pool(task, args, n, w):
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(max_workers=w) as pool:
        return list(pool.map(task, range(n), [args] * n))


def run_procs(task, args, n, w):
    import concurrent.futures as cf
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # as the C demo: fork, no re-import
    with cf.ProcessPoolExecutor(max_workers=w, mp_context=ctx) as pool:
        return list(pool.map(task, range(n), [args] * n, chunksize=max(1, n // w)))


def run_asyncio(task, args, n, w):
    import asyncio

    async def one(i):
        if task is io_task:
            await asyncio.sleep(args)  # the loop waits for all the sleeps at once
            return i
        return task(i, args)  # CPU work blocks the loop: no overlap at all

    async def main():
        return await asyncio.gather(*(one(i) for i in range(n)))

    return asyncio.run(main())


EXECUTORS = {"seq": run_seq, "threads": run_threads, "pool": run_pool,
             "procs": run_procs, "asyncio": run_asyncio}


def cpu_seconds():
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=EXECUTORS, default="seq")
    p.add_argument("--work", choices=("cpu", "io-sleep"), default="cpu")
    p.add_argument("--tasks", type=int, default=16)
    p.add_argument("--size", type=int, default=100000)
    p.add_argument("--workers", type=int, default=0, help="default: one per task")
    p.add_argument("--latency-ms", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.tasks < 1 or a.size < 1 or a.workers < 0 or not 0 <= a.latency_ms <= 5000:
        p.error("--tasks and --size must be positive, --latency-ms 0 to 5000")
    n, w = a.tasks, (1 if a.variant == "seq" else a.workers or a.tasks)
    task, args = (cpu_task, a.size) if a.work == "cpu" else (io_task, a.latency_ms / 1000)

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    results = EXECUTORS[a.variant](task, args, n, w)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0

    if a.work == "cpu":
        exact = sum(results) & MASK == closed(n * a.size)
    else:
        exact = results == list(range(n))
    verdict = f"{'all' if exact else 'WRONG:'} {n} tasks, {wall:.3f} s wall, {cpu:.3f} s CPU"
    if a.json:
        print(json.dumps({"chapter": "speedup", "variant": a.variant, "implementation": "cpython",
                          "python": sys.version.split()[0], "ops": n, "wall_s": wall,
                          "ns_per_op": wall * 1e9 / n,
                          "metrics": {"tasks": n, "workers": w, "cpu_s": cpu,
                                      "parallelism": cpu / wall},
                          "exact": exact, "verdict": verdict}))
    else:
        print(f"{a.variant:8} {verdict}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
