#!/usr/bin/env python3
"""CPython's side of conclab's gil chapter: the cpu-threads experiment on real
threads (and processes), for the table that puts CPython, the simulated GIL and
plain C side by side.

The same CPU work three ways, each phase timed on its own: one thread doing
every thread's share, then THREADS threads, then THREADS processes. A slice is
the sum of i*i for i < SLICE_TERMS, wrapped to 64 bits as the C kernel does;
--iters is each worker's slices over the three phases, as in the demo.

    python3 bench/python/gil_cpu.py --threads 2 --iters 150 --slice-terms 20000 [--json]
"""
import argparse
import json
import multiprocessing
import resource
import sys
import threading
import time

MASK = (1 << 64) - 1


def slices(count, terms):
    total = 0
    for _ in range(count):
        total = (total + sum(i * i for i in range(terms))) & MASK
    return total


def closed_form(terms):
    m = terms - 1
    return (m * (m + 1) * (2 * m + 1) // 6) & MASK


def timed(run):
    """Wall time and this process's CPU time (all its threads) of run()."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - w0, time.process_time() - c0


def on_threads(workers, count, terms):
    sums = [0] * workers

    def work(k):
        sums[k] = slices(count, terms)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sums


def on_processes(workers, count, terms):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        return pool.starmap(slices, [(count, terms)] * workers)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=150)
    ap.add_argument("--slice-terms", type=int, default=20000)
    ap.add_argument("--switch-interval-ms", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads < 1 or a.iters < 3 or a.slice_terms < 1 or a.switch_interval_ms <= 0:
        ap.error("--threads >= 1, --iters >= 3, --slice-terms >= 1, --switch-interval-ms > 0")
    sys.setswitchinterval(a.switch_interval_ms / 1000)
    share = a.iters // 3
    want = share * closed_form(a.slice_terms) & MASK

    one, one_s, _ = timed(lambda: slices(share * a.threads, a.slice_terms))
    thr, thr_s, thr_cpu = timed(lambda: on_threads(a.threads, share, a.slice_terms))
    cpu0 = children_cpu()
    prc, prc_s, _ = timed(lambda: on_processes(a.threads, share, a.slice_terms))
    prc_cpu = children_cpu() - cpu0

    exact = (one == share * a.threads * closed_form(a.slice_terms) & MASK
             and all(s == want for s in thr) and all(s == want for s in prc))
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()  # 3.13+ may run without it
    metrics = {
        "one_s": one_s, "threads_s": thr_s, "processes_s": prc_s,
        "speedup_threads": one_s / thr_s, "speedup_processes": one_s / prc_s,
        "parallelism_threads": thr_cpu / thr_s, "parallelism_processes": prc_cpu / prc_s,
        "gil_enabled": int(gil),
    }
    version = "%d.%d.%d" % sys.version_info[:3]
    verdict = ("CPython %s, %d threads vs one: threads %.2fx as fast (parallelism %.2f), "
               "processes %.2fx" % (version, a.threads, metrics["speedup_threads"],
                                    metrics["parallelism_threads"], metrics["speedup_processes"]))
    if a.json:
        print(json.dumps({
            "chapter": "gil", "variant": "cpython", "threads": a.threads, "python": version,
            "params": {"iters": share * 3, "slice_terms": a.slice_terms,
                       "switch_interval_ms": a.switch_interval_ms},
            "wall_s": one_s + thr_s + prc_s, "ops": share * 3 * a.threads,
            "metrics": metrics, "exact": exact, "verdict": verdict}))
    else:
        print(verdict)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
