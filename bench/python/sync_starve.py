#!/usr/bin/env python3
"""CPython's side of conclab's rwlock-starve: a reader-preferring lock built the
way the guides build one (a reader counts itself in under a Condition; a writer
holds the Condition's lock until the count is zero), READERS readers taking it
hand over hand (each enters before the previous one leaves), and one writer.
Prints whether the writer got in within LIMIT seconds, and how many reads the
readers completed meanwhile.

    python3 bench/python/sync_starve.py [--readers 2] [--limit 2.0] [--json]
"""
import argparse
import json
import sys
import threading
import time


class ReaderPreferring:
    def __init__(self):
        self.cond = threading.Condition(threading.RLock())
        self.inside = 0

    def read_enter(self):
        with self.cond:
            self.inside += 1

    def read_leave(self):
        with self.cond:
            self.inside -= 1
            if self.inside == 0:
                self.cond.notify_all()

    def write_enter(self):
        self.cond.acquire()
        while self.inside > 0:
            self.cond.wait()

    def write_leave(self):
        self.cond.release()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--limit", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.readers < 2 or a.limit <= 0:
        ap.error("--readers must be at least 2 and --limit above 0")

    lock = ReaderPreferring()
    turns = [threading.Semaphore(0) for _ in range(a.readers)]
    entered = threading.Condition()
    count = [0]
    stop = threading.Event()
    reads = [0]
    turns[0].release()

    def reader(me):
        nxt = (me + 1) % a.readers
        while True:
            turns[me].acquire()
            if stop.is_set():
                turns[nxt].release()
                return
            lock.read_enter()
            with entered:
                count[0] += 1
                mine = count[0]
                entered.notify_all()
            turns[nxt].release()  # the next reader comes in before this one leaves
            with entered:
                entered.wait_for(lambda: count[0] > mine or stop.is_set(), timeout=0.1)
            lock.read_leave()
            reads[0] += 1

    got_in = threading.Event()

    def writer():
        lock.write_enter()
        got_in.set()
        lock.write_leave()

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(a.readers)]
    for t in threads:
        t.start()
    with entered:
        entered.wait_for(lambda: count[0] >= 2)
    t0 = time.perf_counter()
    w = threading.Thread(target=writer, daemon=True)
    w.start()
    ok = got_in.wait(a.limit)
    waited = time.perf_counter() - t0
    done_reads = reads[0]
    stop.set()
    m = {"writer_got_in": int(ok), "writer_wait_s": waited, "reads": done_reads}
    verdict = ("CPython %d.%d.%d: the writer %s after %.2f s; the readers completed %d reads"
               % (*sys.version_info[:3], "got in" if ok else "had not got in", waited, done_reads))
    if a.json:
        print(json.dumps({"chapter": "sync", "variant": "cpython-starve", "ops": done_reads,
                          "wall_s": waited, "metrics": m, "verdict": verdict}))
    else:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
