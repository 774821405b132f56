#!/usr/bin/env python3
"""CPython's side of conclab's speedup chapter: the same tasks as the C demo,
run sequentially, on threads, on a thread pool, on processes and on asyncio.

    python3 bench/python/speedup.py [--variant all|seq|threads|pool|procs|asyncio]
        [--work cpu|io-sleep] [--tasks 16] [--size 100000] [--workers 16]
        [--latency-ms 10] [--json]

cpu: task i sums i*i over its own slice [i*size, (i+1)*size) of one range,
wrapping at 2**64 as the C kernel does; the total is checked in closed form.
io-sleep: each task sleeps --latency-ms. With --json, one JSON line per
executor like the demo's: ops, wall_s (from the first task submitted to the
last result, pool and process start-up included), metrics (cpu_s with
children, parallelism, and with --variant all, speedup over the seq run).
"""
import argparse
import importlib
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


# asyncio, concurrent.futures and multiprocessing are imported only by the runs
# that use them, before their clock starts: each adds tens of ms.
NEEDS = {"pool": ["concurrent.futures"], "procs": ["concurrent.futures", "multiprocessing"],
         "asyncio": ["asyncio"]}


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
    p.add_argument("--variant", choices=[*EXECUTORS, "all"], default="all")
    p.add_argument("--work", choices=("cpu", "io-sleep"), default="cpu")
    p.add_argument("--tasks", type=int, default=16)
    p.add_argument("--size", type=int, default=100000)
    p.add_argument("--workers", type=int, default=0, help="default: one per task")
    p.add_argument("--latency-ms", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.tasks < 1 or a.size < 1 or a.workers < 0 or not 0 <= a.latency_ms <= 5000:
        p.error("--tasks and --size must be positive, --latency-ms 0 to 5000")
    # all: every executor in turn in this one process, as the demo's "all" does,
    # each with its speedup over the seq run just before
    names = list(EXECUTORS) if a.variant == "all" else [a.variant]
    seq_wall, status = None, 0
    for name in names:
        wall, line = run_one(a, name, seq_wall)
        seq_wall = wall if name == "seq" else seq_wall
        print(json.dumps(line) if a.json else f"{name:8} {line['verdict']}", flush=True)
        status |= 0 if line["exact"] else 1
    return status


def run_one(a, name, seq_wall):
    n, w = a.tasks, (1 if name == "seq" else a.workers or a.tasks)
    task, args = (cpu_task, a.size) if a.work == "cpu" else (io_task, a.latency_ms / 1000)
    for module in NEEDS.get(name, []):
        importlib.import_module(module)

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    results = EXECUTORS[name](task, args, n, w)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0

    if a.work == "cpu":
        exact = sum(results) & MASK == closed(n * a.size)
    else:
        exact = results == list(range(n))
    metrics = {"tasks": n, "workers": w, "cpu_s": cpu, "parallelism": cpu / wall}
    if seq_wall is not None:
        metrics["speedup"] = seq_wall / wall
    verdict = f"{'all' if exact else 'WRONG:'} {n} tasks, {wall:.3f} s wall, {cpu:.3f} s CPU"
    return wall, {"chapter": "speedup", "variant": name, "implementation": "cpython",
                  "python": sys.version.split()[0], "params": {"work": a.work},
                  "ops": n, "wall_s": wall, "ns_per_op": wall * 1e9 / n,
                  "metrics": metrics, "exact": exact, "verdict": verdict}

if __name__ == "__main__":
    sys.exit(main())
