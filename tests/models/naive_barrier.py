#!/usr/bin/env python3
"""Every interleaving of barrier's naive-reuse (demos/barrier/naive.c), explored.

The barrier is The Little Book of Semaphores' one-turnstile reusable barrier:

    lock; count += 1; if count == n: post(turnstile); unlock    # arrive
    wait(turnstile); post(turnstile)                             # pass
    lock; count -= 1; if count == 0: wait(turnstile); unlock     # leave

Each thread runs K phases, then exits. A state is each thread's place in that
code and its phases done, the count, the turnstile's value and the mutex's
holder; a step is one line by one thread, whenever the scheduler could run it
(a wait only when the value is above 0, a lock only when it is free).
Checked here, for the claims naive.c makes:

1. Left to the scheduler, some runs of 2 threads and 4 phases finish and some
   hang: a thread running ahead does not by itself hang the program.
2. Every hang, left to the scheduler, has a thread that has finished.
3. With naive.c's forced order (the four holds in its at()), every run of 3
   phases ends in the same hang, for 2, 3 and 4 threads, whatever the
   scheduler does at every other point: T1 finished, the others waiting at the
   turnstile of barrier 2, which is closed.
4. Without the hold that keeps the others back until T1 has finished, runs of
   3 phases can finish: that hold is needed.
"""
import sys
from collections import deque

CODE = ["lock", "arrive", "unlock", "wait", "post", "lock", "leave", "close", "unlock"]
WAIT, LEAVE_LOCK = 3, 5


def left(th):
    return th[1]


def arrived(th):
    return th[1] + (1 if th[0] >= WAIT else 0)


def held_back(i, ths, k, holds):
    """naive.c's forced order: whether thread i must wait before its next line."""
    if not holds or i == 0:
        if holds and i == 0:
            pc, done = ths[0]
            # T1, after leaving barrier 2: until every other thread has left barrier 1
            return pc == 0 and done == 2 and any(left(t) < 1 for t in ths[1:])
        return False
    pc, done = ths[i]
    t1 = ths[0]
    if pc == 0 and done == 0:
        return arrived(t1) < 1  # T1 arrives at barrier 1 first
    if pc == WAIT and done == 0:
        return left(t1) < 2  # held after arriving at barrier 1 until T1 has left barrier 2
    if pc == 0 and done == 1 and "keep-back" in holds:
        return left(t1) < k  # held after barrier 1 until T1 has finished
    return False


def explore(n, k, holds=()):
    start = (tuple((0, 0) for _ in range(n)), 0, 0, -1)
    seen, todo, ends = {start}, deque([start]), []
    while todo:
        state = todo.popleft()
        ths, count, tok, mutex = state
        nexts = []
        for i, (pc, done) in enumerate(ths):
            if done == k or held_back(i, ths, k, holds):
                continue
            c, t, m, op = count, tok, mutex, CODE[pc]
            if op == "lock":
                if m != -1:
                    continue
                m = i
            elif op == "unlock":
                m = -1
            elif op == "arrive":
                c += 1
                t += c == n
            elif op == "leave":
                c -= 1
            elif op == "wait" or (op == "close" and c == 0):
                if t == 0:
                    continue
                t -= 1
            elif op == "post":
                t += 1
            pc, done = (pc + 1, done) if pc + 1 < len(CODE) else (0, done + 1)
            nexts.append((ths[:i] + ((pc, done),) + ths[i + 1:], c, t, m))
        if not nexts:
            ends.append(state)
        for s in nexts:
            if s not in seen:
                seen.add(s)
                todo.append(s)
    finished = [s for s in ends if all(d == k for _, d in s[0])]
    hangs = [s for s in ends if s not in finished]
    return len(seen), finished, hangs


failures = []


def expect(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


states, finished, hangs = explore(2, 4)
expect(finished and hangs, f"free, 2 threads x 4 phases ({states} states): "
       f"{len(finished)} finishing ends, {len(hangs)} hangs")
for n, k in ((2, 3), (2, 4), (3, 3)):
    states, finished, hangs = explore(n, k)
    expect(all(any(d == k for _, d in s[0]) for s in hangs),
           f"free, {n} threads x {k} phases ({states} states): every one of "
           f"{len(hangs)} hangs has a finished thread")
for n in (2, 3, 4):
    states, finished, hangs = explore(n, 3, ("keep-back",))
    same = all(s[0] == ((0, 3),) + ((WAIT, 1),) * (n - 1) and s[2] == 0 for s in hangs)
    expect(not finished and hangs and same,
           f"forced, {n} threads x 3 phases ({states} states): no run finishes; every end is "
           f"T1 finished, the others at barrier 2's closed turnstile")
states, finished, hangs = explore(2, 3, ("no keep-back",))
expect(finished, f"forced without the last hold, 2 threads x 3 phases ({states} states): "
       f"{len(finished)} runs finish")
sys.exit(1 if failures else 0)
