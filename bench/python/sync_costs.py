#!/usr/bin/env python3
"""CPython's side of conclab's sync primitive costs: ns per acquire and release
of threading.Lock, Semaphore(1), BoundedSemaphore(1), per Event.wait() on a set
event, and per Condition acquire + notify + release, in one thread (uncontended),
each timed over OPS calls.

    python3 bench/python/sync_costs.py [--ops 50000] [--json]
"""
import argparse
import json
import sys
import threading
import time


def per_op_ns(fn, ops):
    t0 = time.perf_counter_ns()
    fn(ops)
    return (time.perf_counter_ns() - t0) / ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=50000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.ops < 1:
        ap.error("--ops must be at least 1")

    lock, sem, bsem = threading.Lock(), threading.Semaphore(1), threading.BoundedSemaphore(1)
    ev, cond = threading.Event(), threading.Condition()
    ev.set()

    def pairs(p):
        def run(n):
            for _ in range(n):
                p.acquire()
                p.release()
        return run

    def event_wait(n):
        for _ in range(n):
            ev.wait()

    def cond_notify(n):
        for _ in range(n):
            with cond:
                cond.notify()

    m = {
        "lock_ns": per_op_ns(pairs(lock), a.ops),
        "sem_ns": per_op_ns(pairs(sem), a.ops),
        "bsem_ns": per_op_ns(pairs(bsem), a.ops),
        "event_ns": per_op_ns(event_wait, a.ops),
        "cond_ns": per_op_ns(cond_notify, a.ops),
    }
    total_s = sum(m.values()) * a.ops / 1e9
    verdict = ("CPython %d.%d.%d, ns per operation: Lock %.0f, Semaphore %.0f, BoundedSemaphore "
               "%.0f, Event.wait %.0f, Condition notify %.0f"
               % (*sys.version_info[:3], m["lock_ns"], m["sem_ns"], m["bsem_ns"], m["event_ns"],
                  m["cond_ns"]))
    if a.json:
        print(json.dumps({"chapter": "sync", "variant": "cpython", "ops": a.ops * len(m),
                          "wall_s": total_s, "ns_per_op": total_s * 1e9 / (a.ops * len(m)),
                          "metrics": m, "verdict": verdict}))
    else:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
