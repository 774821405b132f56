#!/usr/bin/env python3
"""CPython's side of conclab's async switch-cost: two asyncio tasks play
ping-pong, each completing the future the other awaits, SWITCHES hand-offs in
all; nanoseconds per hand-off, timed inside the process once both tasks exist.

    python3 bench/python/async_switch.py --switches 200000 [--json]
"""
import argparse
import asyncio
import json
import sys
import time


async def run(switches):
    loop = asyncio.get_running_loop()
    ball = [loop.create_future(), loop.create_future()]
    turns = switches // 2
    done = [0]

    async def player(me, serves):
        for _ in range(turns):
            if serves:
                ball[1 - me].set_result(None)  # the ball to the other
            await ball[me]  # and wait for it to come back
            ball[me] = loop.create_future()
            if not serves:
                ball[1 - me].set_result(None)
            done[0] += 1

    players = [asyncio.create_task(player(k, k == 0)) for k in range(2)]
    t0 = time.perf_counter()
    await asyncio.gather(*players)
    return time.perf_counter() - t0, done[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", type=int, default=200000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 2 <= a.switches <= 100000000:
        ap.error("--switches: 2 to 100000000")
    switches = a.switches - a.switches % 2
    wall, done = asyncio.run(run(switches))
    ns = wall * 1e9 / switches
    exact = done == switches
    verdict = "CPython %d.%d.%d: a switch between two asyncio tasks: %.0f ns" % (*sys.version_info[:3], ns)
    if a.json:
        print(json.dumps({
            "chapter": "async", "variant": "cpython-switch-cost", "threads": 1,
            "params": {"switches": switches}, "wall_s": wall, "ops": switches,
            "metrics": {"tasks_ns": ns}, "exact": exact, "verdict": verdict,
            "python": sys.version.split()[0]}))
    else:
        print(verdict)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
