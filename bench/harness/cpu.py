"""Who else had the CPU: the hypervisor (steal) and other programs, between two
samples of /proc/stat and of this process's own CPU time (itself and its finished
children, from getrusage)."""

import os
import resource
from dataclasses import dataclass

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    steal: int  # ticks a hypervisor ran other guests while this one had work
    total: int  # all ticks: user, nice, system, idle, iowait, irq, softirq, steal
    busy: int  # user, nice, system, irq, softirq
    own: float  # CPU seconds of this process and its reaped children


def sample():
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += r.ru_utime + r.ru_stime
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return Sample(0, 0, 0, own)
    return Sample(v[7], sum(v), v[0] + v[1] + v[2] + v[5] + v[6], own)


def share(a, b):
    """(steal %, other programs %) of all the CPU time between samples a and b."""
    d = b.total - a.total
    if d <= 0:
        return 0.0, 0.0
    other = (b.busy - a.busy) - (b.own - a.own) * HZ
    return round(100 * (b.steal - a.steal) / d, 1), round(100 * max(other, 0) / d, 1)
