#!/usr/bin/env python3
"""CPython's side of conclab's async many-waiters: TASKS asyncio tasks on one
event loop, each sleeping SLEEP_MS once. The wall time runs from before the
first task is created to after the last has finished, inside the process (no
interpreter start-up); the resident memory per task is VmRSS halfway through
the sleep, when every task is asleep, less VmRSS before the first was created.

    python3 bench/python/async_waiters.py --tasks 100000 --sleep-ms 100 [--json]
"""
import argparse
import asyncio
import json
import os
import sys
import time


def statm_bytes(field):  # 0: the address space, 1: resident
    with open("/proc/self/statm") as f:
        return int(f.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    return statm_bytes(1)


async def run(n, sleep_s):
    loop = asyncio.get_running_loop()
    state = {"woke": 0, "early": 0, "late_max": 0.0, "rss_half": 0, "vm_half": 0}
    all_done = asyncio.Event()

    async def sleeper():
        due = loop.time() + sleep_s
        await asyncio.sleep(sleep_s)
        now = loop.time()
        state["early"] += now < due
        state["late_max"] = max(state["late_max"], now - due)
        state["woke"] += 1
        if state["woke"] == n:
            all_done.set()

    def probe():
        state["rss_half"], state["vm_half"] = rss_bytes(), statm_bytes(0)

    rss0, state["vm0"] = rss_bytes(), statm_bytes(0)
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(sleeper()) for _ in range(n)]  # held: asyncio keeps weak refs
    create_s = time.perf_counter() - t0
    loop.call_later(sleep_s / 2, probe)
    await all_done.wait()
    wall = time.perf_counter() - t0
    del tasks
    return state, rss0, wall, create_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--sleep-ms", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.tasks <= 1000000 or not 2 <= a.sleep_ms <= 60000:
        ap.error("--tasks: 1 to 1000000; --sleep-ms: 2 to 60000")
    state, rss0, wall, create_s = asyncio.run(run(a.tasks, a.sleep_ms / 1000))
    per = max(state["rss_half"] - rss0, 0) / a.tasks
    exact = state["woke"] == a.tasks and state["early"] == 0
    verdict = ("CPython %d.%d.%d: %d asyncio tasks slept %d ms each on one thread: %.3f s in all, "
               "%.0f bytes resident each" % (*sys.version_info[:3], a.tasks, a.sleep_ms, wall, per))
    if a.json:
        print(json.dumps({
            "chapter": "async", "variant": "cpython-many-waiters", "threads": 1,
            "params": {"tasks": a.tasks, "sleep_ms": a.sleep_ms}, "wall_s": wall, "ops": a.tasks,
            "metrics": {"tasks": a.tasks, "wall_units": wall * 1000 / a.sleep_ms,
                        "create_ms": create_s * 1000, "late_max_ms": state["late_max"] * 1000,
                        "rss_per_task_bytes": per,
                        "vm_per_task_bytes": max(state["vm_half"] - state["vm0"], 0) / a.tasks},
            "exact": exact, "verdict": verdict, "python": sys.version.split()[0]}))
    else:
        print(verdict)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
