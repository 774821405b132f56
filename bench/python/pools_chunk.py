#!/usr/bin/env python3
"""CPython's side of conclab's chunking variant: ITEMS items, item i the sum of
j*j for j in [i*TERMS, (i+1)*TERMS), mapped over a ThreadPoolExecutor or a
ProcessPoolExecutor of WORKERS with chunksize CHUNK (ThreadPoolExecutor.map ignores
it), or over multiprocessing.Pool.map (--executor mp; --chunk 0: its default,
ceil(items / (4 x workers))). map returns the results in input order, and each is
checked against the closed form. The clock runs around the map alone.

    python3 bench/python/pools_chunk.py --executor thread|process|mp --workers 2 --items 10000 --terms 1000 --chunk 100 [--json]
"""
import argparse
import concurrent.futures as cf
import json
import multiprocessing
import sys
import time

TERMS = 1000


def item(i):
    return sum(j * j for j in range(i * TERMS, (i + 1) * TERMS))


def closed(n):  # sum of j*j for j < n
    return (n - 1) * n * (2 * n - 1) // 6 if n > 0 else 0


def set_terms(terms):  # a worker process's initializer: the same TERMS as the parent
    global TERMS
    TERMS = terms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executor", choices=("thread", "process", "mp"), required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--terms", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.workers < 1 or a.items < 1 or a.terms < 1 or a.chunk < 0:
        ap.error("--workers, --items and --terms must be at least 1, --chunk at least 0")
    set_terms(a.terms)
    chunk = a.chunk or None
    if a.executor == "mp":
        with multiprocessing.Pool(a.workers, initializer=set_terms, initargs=(a.terms,)) as pool:
            pool.map(item, range(a.workers), chunksize=1)  # the workers are up
            t0 = time.perf_counter()
            out = pool.map(item, range(a.items), chunksize=chunk)
            wall = time.perf_counter() - t0
        used = chunk or -(-a.items // (4 * a.workers))
    else:
        kind = cf.ThreadPoolExecutor if a.executor == "thread" else cf.ProcessPoolExecutor
        extra = {} if a.executor == "thread" else {"initializer": set_terms, "initargs": (a.terms,)}
        with kind(max_workers=a.workers, **extra) as ex:
            list(ex.map(item, range(a.workers)))  # the workers are up
            t0 = time.perf_counter()
            out = list(ex.map(item, range(a.items), chunksize=chunk or 1))
            wall = time.perf_counter() - t0
        used = chunk or 1
    wrong = sum(v != closed((i + 1) * a.terms) - closed(i * a.terms) for i, v in enumerate(out))
    exact = wrong == 0 and len(out) == a.items
    verdict = "CPython %d.%d.%d %s, chunk %d: %.2f us per item%s" % (
        *sys.version_info[:3], a.executor, used, wall / a.items * 1e6, "" if exact else ", WRONG")
    if a.json:
        print(json.dumps({
            "chapter": "pools", "variant": "cpython-chunk-" + a.executor, "threads": a.workers,
            "python": "%d.%d.%d" % sys.version_info[:3],
            "params": {"workers": a.workers, "items": a.items, "terms": a.terms, "chunk": used},
            "wall_s": wall, "ops": a.items, "ns_per_op": wall / a.items * 1e9,
            "metrics": {"item_ns": wall / a.items * 1e9}, "exact": exact, "verdict": verdict}))
    else:
        print(verdict)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
