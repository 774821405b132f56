#!/usr/bin/env python3
"""CPython's side of conclab's procs chapter, with the standard library only:

- start: the median time to start a multiprocessing.Process that does nothing
  and join it, for each start method (fork, spawn, forkserver), from a parent
  that first touches --rss-mib MiB (a bytearray, every page written);
- queue, pipe: round trips per second of a 64-byte message to a child that
  echoes it, through two multiprocessing.Queue (pickled, a feeder thread each)
  and through a multiprocessing.Pipe (send_bytes, recv_bytes);
- copy, shm: MB/s of an array of --mib MiB of int32 doubled by a child and
  back, sent through Queues, against multiprocessing.shared_memory, which the
  child doubles in place.

Each figure is the median of its own repetitions, in one run; the output is one
JSON line, shaped as a demo's --json line.

    python3 -S bench/python/procs.py [--rss-mib 0] [--iters 10] [--round-trips 2000] [--mib 4] [--json]
"""
import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from multiprocessing import shared_memory

METHODS = ("fork", "spawn", "forkserver")


def nothing():
    pass


def start_us(method, iters):
    ctx = mp.get_context(method)
    first = ctx.Process(target=nothing)  # forkserver: starts its server; not counted
    first.start()
    first.join()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
        times.append(time.perf_counter() - t0)
        if p.exitcode != 0:
            raise SystemExit(f"procs.py: a {method} child exited {p.exitcode}")
    return statistics.median(times) * 1e6


def echo_queue(inbox, outbox, n):
    for _ in range(n):
        outbox.put(inbox.get())


def echo_pipe(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def round_trips_per_s(kind, n):
    ctx = mp.get_context("fork")  # 3.11's default on Linux, as the guides run it
    msg, warm = bytes(64), 100
    if kind == "queue":
        a, b = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=echo_queue, args=(a, b, n + warm))
        send, recv = a.put, b.get
    else:
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=echo_pipe, args=(theirs, n + warm))
        send, recv = mine.send_bytes, mine.recv_bytes
    p.start()
    for _ in range(warm):
        send(msg)
        recv()
    t0 = time.perf_counter()
    for _ in range(n):
        send(msg)
        if recv() != msg:
            raise SystemExit("procs.py: a message came back wrong")
    took = time.perf_counter() - t0
    p.join()
    return n / took


def doubled(b):
    """Each int32 of b doubled. Every value is below 2**30, so shifting the whole
    little-endian array left by one bit doubles each element without a carry
    into the next: the standard library's nearest to numpy's a *= 2."""
    return (int.from_bytes(b, "little") << 1).to_bytes(len(b), "little")


def doubler(inbox, outbox, shm_name, size):
    shm = shared_memory.SharedMemory(name=shm_name)
    while (cmd := inbox.get()) is not None:
        if cmd == "shm":
            shm.buf[:size] = doubled(shm.buf[:size])
            outbox.put("done")
        else:
            outbox.put(doubled(cmd))
    shm.close()


def copy_and_shm_mb_s(mib, reps):
    size = mib << 20
    data = b"".join(i.to_bytes(4, "little") for i in range(size // 4))
    want = doubled(data)
    shm = shared_memory.SharedMemory(create=True, size=size)
    ctx = mp.get_context("fork")
    a, b = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=doubler, args=(a, b, shm.name, size))
    p.start()
    copy_s, shm_s = [], []
    try:
        for i in range(reps):
            for way in ("copy", "shm") if i % 2 == 0 else ("shm", "copy"):
                if way == "shm":
                    shm.buf[:size] = data  # fresh input, not timed
                t0 = time.perf_counter()
                if way == "copy":
                    a.put(data)
                    back = b.get()
                else:
                    a.put("shm")
                    b.get()
                    back = bytes(shm.buf[:size])
                (copy_s if way == "copy" else shm_s).append(time.perf_counter() - t0)
                if back != want:
                    raise SystemExit(f"procs.py: {way}: the array came back wrong")
        a.put(None)
        p.join()
    finally:
        shm.close()
        shm.unlink()
    return size / 1e6 / statistics.median(copy_s), size / 1e6 / statistics.median(shm_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rss-mib", type=int, default=0, help="memory the parent touches first")
    ap.add_argument("--iters", type=int, default=10, help="starts per method")
    ap.add_argument("--round-trips", type=int, default=2000, help="per queue and per pipe")
    ap.add_argument("--mib", type=int, default=4, help="the array of copy and shm")
    ap.add_argument("--reps", type=int, default=4, help="copy and shm rounds")
    ap.add_argument("--json", action="store_true", help="(the only output: one JSON line)")
    args = ap.parse_args()
    if min(args.rss_mib, args.iters - 1, args.round_trips - 1, args.mib - 1, args.reps - 1) < 0:
        ap.error("sizes must be positive (--rss-mib may be 0)")
    ballast = bytearray(args.rss_mib << 20)
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))
    t0 = time.perf_counter()
    m = {f"start_{k}_us": start_us(k, args.iters) for k in METHODS}
    m["queue_per_s"] = round_trips_per_s("queue", args.round_trips)
    m["pipe_per_s"] = round_trips_per_s("pipe", args.round_trips)
    m["copy_mb_s"], m["shm_mb_s"] = copy_and_shm_mb_s(args.mib, args.reps)
    wall = time.perf_counter() - t0
    ops = 3 * args.iters + 2 * args.round_trips + 2 * args.reps
    line = {
        "chapter": "procs",
        "variant": "cpython",
        "python": sys.version.split()[0],
        "params": {"rss_mib": args.rss_mib, "iters": args.iters, "mib": args.mib},
        "wall_s": wall,
        "ops": ops,
        "ns_per_op": wall * 1e9 / ops,
        "metrics": m,
        "exact": True,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
