#!/usr/bin/env python3
"""CPython's side of conclab's race chapter: THREADS threads each add 1 to a
shared global ITERS times with no lock, and the final count is printed.

    python3 bench/python/race_counter.py THREADS ITERS
"""
import sys
import threading

count = 0


def add_many(iters):
    global count
    for _ in range(iters):
        count += 1  # a read, an add and a write: the GIL decides when they interleave


def main():
    threads, iters = (int(a) for a in sys.argv[1:3])
    workers = [threading.Thread(target=add_many, args=(iters,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(count)


if __name__ == "__main__":
    main()
