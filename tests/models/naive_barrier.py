#!/usr/bin/env python3
"""Every interleaving of barrier's naive-reuse (demos/barrier/naive.c), explored.

The barrier is The Little Book of Semaphores' one-turnstile reusable barrier:

    lock; count += 1; if count == n: post(turnstile); unlock    # arrive
    wait(turnstile); post(turnstile)                             # pass
    lock; count -= 1; if count == 0: wait(turnstile); unlock     # leave

Each thread runs K phases, then exits. A state is each thread's place in that
code and its phases done, the count, the semaphores' values and the mutex's
holder; a step is one line by one thread, whenever the scheduler could run it
(a wait only when the value is above 0, a lock only when it is free).
Checked here, for the claims naive.c and the tutorial make:

1. Left to the scheduler, some runs of 2 threads and 4 phases finish and some
   hang: a thread running ahead does not by itself hang the program.
2. Every hang, left to the scheduler, has a thread that has finished.
3. With naive.c's forced order (the four holds in its at()), every run of 3
   phases ends in the same hang, for 2, 3 and 4 threads, whatever the
   scheduler does at every other point: T1 finished, the others waiting at the
   turnstile of barrier 2, which is closed.
4. Without the hold that keeps the others back until T1 has finished, runs of
   3 phases can finish: that hold is needed.
5. The book's fix, a second turnstile for leaving, never hangs and never lets a
   thread pass a barrier before every thread has finished the phase before it.
"""
import sys
from collections import deque

# Each line: (name, effect). An effect takes (count, sems, n) and returns the new
# (count, sems), or None when the line must wait (a semaphore at 0).
def post(k):
    return lambda c, s, n: (c, s[:k] + (s[k] + 1,) + s[k + 1:])


def wait(k, when=lambda c, n: True):
    def step(c, s, n):
        if not when(c, n):
            return c, s
        return None if s[k] == 0 else (c, s[:k] + (s[k] - 1,) + s[k + 1:])
    return step


def add(d):
    return lambda c, s, n: (c + d, s)


def post_if(k, when):
    return lambda c, s, n: post(k)(c, s, n) if when(c, n) else (c, s)


FULL = lambda c, n: c == n  # noqa: E731
EMPTY = lambda c, n: c == 0  # noqa: E731

# naive.c: one turnstile (semaphore 0, starting at 0)
NAIVE = (((), (0,)), [("lock", None), ("arrive", add(1)), ("open", post_if(0, FULL)),
                      ("unlock", None), ("pass", wait(0)), ("let", post(0)), ("lock", None),
                      ("leave", add(-1)), ("close", wait(0, EMPTY)), ("unlock", None)])
# the book's fix: the turnstile in (0, starts closed) and one out (1, starts open)
FIXED = (((), (0, 1)), [("lock", None), ("arrive", add(1)), ("close out", wait(1, FULL)),
                        ("open", post_if(0, FULL)), ("unlock", None), ("pass", wait(0)),
                        ("let", post(0)), ("lock", None), ("leave", add(-1)),
                        ("close", wait(0, EMPTY)), ("open out", post_if(1, EMPTY)),
                        ("unlock", None), ("pass out", wait(1)), ("let out", post(1))])
PASS = 4  # naive: the index of "pass", where a held thread stops before the turnstile


def left(th):
    return th[1]


def arrived(th):
    return th[1] + (1 if th[0] >= PASS else 0)


def held_back(i, ths, k, holds):
    """naive.c's forced order: whether thread i must wait before its next line."""
    pc, done = ths[i]
    if not holds:
        return False
    if i == 0:  # T1, after leaving barrier 2: until every other thread has left barrier 1
        return pc == 0 and done == 2 and any(left(t) < 1 for t in ths[1:])
    t1 = ths[0]
    if pc == 0 and done == 0:
        return arrived(t1) < 1  # T1 arrives at barrier 1 first
    if pc == PASS and done == 0:
        return left(t1) < 2  # held after arriving at barrier 1 until T1 has left barrier 2
    if pc == 0 and done == 1 and "keep-back" in holds:
        return left(t1) < k  # held after barrier 1 until T1 has finished
    return False


def explore(n, k, barrier=NAIVE, holds=()):
    """Every reachable end: (states seen, finished ends, hangs, laps seen)."""
    (_, sems), code = barrier
    start = (tuple((0, 0) for _ in range(n)), 0, sems, -1)
    seen, todo, ends, laps = {start}, deque([start]), [], 0
    while todo:
        state = todo.popleft()
        ths, count, sem, mutex = state
        nexts = []
        for i, (pc, done) in enumerate(ths):
            if done == k or held_back(i, ths, k, holds):
                continue
            name, effect = code[pc]
            c, s, m = count, sem, mutex
            if name == "lock":
                if m != -1:
                    continue
                m = i
            elif name == "unlock":
                m = -1
            else:
                got = effect(c, s, n)
                if got is None:
                    continue
                c, s = got
            if name == "pass" and any(d < done for j, (_, d) in enumerate(ths) if j != i):
                laps += 1  # through barrier done+1 while another has not finished phase done
            pc, done = (pc + 1, done) if pc + 1 < len(code) else (0, done + 1)
            nexts.append((ths[:i] + ((pc, done),) + ths[i + 1:], c, s, m))
        if not nexts:
            ends.append(state)
        for st in nexts:
            if st not in seen:
                seen.add(st)
                todo.append(st)
    finished = [e for e in ends if all(d == k for _, d in e[0])]
    hangs = [e for e in ends if e not in finished]
    return len(seen), finished, hangs, laps


failures = []


def expect(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


states, finished, hangs, laps = explore(2, 4)
expect(finished and hangs and laps, f"free, 2 threads x 4 phases ({states} states): "
       f"{len(finished)} finishing ends, {len(hangs)} hangs, {laps} steps through a turnstile "
       f"a lap ahead")
for n, k in ((2, 3), (2, 4), (3, 3)):
    states, finished, hangs, _ = explore(n, k)
    expect(all(any(d == k for _, d in s[0]) for s in hangs),
           f"free, {n} threads x {k} phases ({states} states): every one of "
           f"{len(hangs)} hangs has a finished thread")
for n in (2, 3, 4):
    states, finished, hangs, _ = explore(n, 3, holds=("keep-back",))
    same = all(s[0] == ((0, 3),) + ((PASS, 1),) * (n - 1) and s[2] == (0,) for s in hangs)
    expect(not finished and hangs and same,
           f"forced, {n} threads x 3 phases ({states} states): no run finishes; every end is "
           f"T1 finished, the others at barrier 2's closed turnstile")
states, finished, hangs, _ = explore(2, 3, holds=("no keep-back",))
expect(finished, f"forced without the last hold, 2 threads x 3 phases ({states} states): "
       f"{len(finished)} runs finish")
for n, k in ((2, 4), (3, 3)):
    states, finished, hangs, laps = explore(n, k, FIXED)
    expect(finished and not hangs and not laps,
           f"two turnstiles, {n} threads x {k} phases ({states} states): every run finishes, "
           f"no thread ever a lap ahead")
sys.exit(1 if failures else 0)
