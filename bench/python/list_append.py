#!/usr/bin/env python3
"""CPython's side of conclab's vector-append: THREADS threads each append ITERS
items to one shared list with no lock; prints the list's length and how many
distinct items it holds (THREADS x ITERS both, if nothing was lost).

    python3 bench/python/list_append.py THREADS ITERS
"""
import sys
import threading

items = []


def append_many(thread, iters):
    for i in range(iters):
        items.append((thread, i))  # one call into C: the GIL is held for all of it


def main():
    threads, iters = (int(a) for a in sys.argv[1:3])
    workers = [threading.Thread(target=append_many, args=(t, iters)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(len(items), len(set(items)))


if __name__ == "__main__":
    main()
