#!/usr/bin/env python3
"""CPython's side of conclab's threads memory and create-join: what one Python
thread costs. COUNT threads are started and each blocks on one Event; VmRSS and
VmSize of /proc/self/status, and the system's KernelStack of /proc/meminfo, are
read before and after, and divided by COUNT. Then JOINS threads that do
nothing are started and joined one at a time.

    python3 bench/python/threads_cost.py --count 1000 [--stack-kib 64] [--joins 2000] [--json]
"""
import argparse
import json
import sys
import threading
import time


def kib(field, path="/proc/self/status"):
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in {path}")


def memory():
    return kib("VmRSS"), kib("VmSize"), kib("KernelStack", "/proc/meminfo")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--stack-kib", type=int, default=0, help="threading.stack_size; 0: the default")
    ap.add_argument("--joins", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.count < 1 or a.joins < 1 or a.stack_kib < 0:
        ap.error("--count and --joins must be at least 1, --stack-kib at least 0")
    if a.stack_kib:
        threading.stack_size(a.stack_kib * 1024)

    release = threading.Event()
    parked = threading.Semaphore(0)

    def blocked():
        parked.release()
        release.wait()

    pool = [threading.Thread(target=blocked) for _ in range(a.count)]
    rss0, vm0, ks0 = memory()
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    create_s = time.perf_counter() - t0
    for _ in pool:  # every thread is inside release.wait() or about to be
        parked.acquire()
    rss1, vm1, ks1 = memory()
    release.set()
    for t in pool:
        t.join()

    t0 = time.perf_counter()
    for _ in range(a.joins):
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
    join_s = time.perf_counter() - t0

    m = {
        "count": a.count,
        "rss_kib": (rss1 - rss0) / a.count,
        "kstack_kib": (ks1 - ks0) / a.count,
        "virt_mib": (vm1 - vm0) / a.count / 1024,
        "create_us": create_s / a.count * 1e6,
        "create_join_us": join_s / a.joins * 1e6,
    }
    verdict = ("CPython %d.%d.%d, %d threads blocked at once; each: %.1f KiB resident, %.1f KiB "
               "kernel stack, %.2f MiB virtual; start + join %.1f µs"
               % (*sys.version_info[:3], a.count, m["rss_kib"], m["kstack_kib"], m["virt_mib"],
                  m["create_join_us"]))
    if a.json:
        print(json.dumps({
            "chapter": "threads", "variant": "cpython", "threads": a.count,
            "params": {"count": a.count, "stack_kib": a.stack_kib, "joins": a.joins},
            "wall_s": join_s, "ops": a.joins, "ns_per_op": join_s / a.joins * 1e9, "metrics": m,
            "exact": True, "verdict": verdict,
            "python": "%d.%d.%d" % sys.version_info[:3]}))
    else:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
