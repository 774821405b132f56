"""Medians, intervals, goals and agreement: the harness's statistics, no I/O.

A figure is the median of its samples, one per round (a paired ratio, a time) or
one per --json run (a metric). Its interval, at 95%:
  n >= 10      percentile bootstrap of the median (10,000 resamples, fixed seed);
  6 <= n < 10  the order-statistic interval of the median (distribution-free);
  n < 6        none: the figure is shown as `n=K` and never PASS or FAIL.
Two runs' figure B / A: a bootstrap from 10 rounds each, the rank-based interval of
all the ratios b / a from 6 (ratio_estimate).
"""

import math
import random
import re
import statistics
from dataclasses import dataclass

SEED = 20240611  # fixed: a report can be reproduced, and the tests assert exact values
RESAMPLES = 10_000
BOOTSTRAP_FROM = 10  # rounds from which the bootstrap replaces the order statistics
INTERVAL_FROM = 6  # fewer rounds than this: no interval at all
LEVEL = 0.95
SETTLED = 0.10  # an interval within ±10% of its value is settled
AGREE = (0.90, 1.10)  # two runs agree when B / A's interval lies inside this


def median(xs):
    """The median of the numbers in xs (None ignored), or None if there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


@dataclass(frozen=True)
class Estimate:
    """A figure: its value (the median), its interval and how it was taken."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 0
    method: str = ""  # "bootstrap", "order statistics", or "" (no interval)

    @property
    def has_interval(self):
        return self.lo is not None and self.hi is not None

    @property
    def settled(self):
        """The interval lies within ±10% of the value (never without an interval)."""
        if not self.has_interval or self.value is None:
            return False
        v = abs(self.value)
        return self.lo >= self.value - SETTLED * v and self.hi <= self.value + SETTLED * v


def order_statistic_ranks(n, level=LEVEL):
    """1-based ranks (k, n + 1 - k) of the narrowest symmetric order-statistic
    interval of the median whose coverage is at least `level`."""
    k = 1
    while True:
        # P(Binomial(n, 1/2) <= k) must stay below (1 - level) / 2 to move inwards
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        if tail > (1 - level) / 2 or k + 1 > n + 1 - (k + 1):
            return k, n + 1 - k
        k += 1


def bootstrap_medians(xs, rng, resamples=RESAMPLES):
    """The medians of `resamples` resamples of xs (with replacement), unsorted."""
    n = len(xs)
    mid = n // 2
    choices = rng.choices
    if n % 2:
        return [sorted(choices(xs, k=n))[mid] for _ in range(resamples)]
    out = []
    for _ in range(resamples):
        s = sorted(choices(xs, k=n))
        out.append((s[mid - 1] + s[mid]) / 2)
    return out


def percentile_interval(values, level=LEVEL):
    """The equal-tailed percentile interval of a bootstrap distribution."""
    s = sorted(values)
    cut = int(len(s) * (1 - level) / 2)
    return s[cut], s[len(s) - 1 - cut]


def estimate(samples):
    """The median of the samples and its interval (see the module's docstring)."""
    xs = sorted(x for x in samples if x is not None and math.isfinite(x))
    n = len(xs)
    if n == 0:
        return Estimate(None)
    value = statistics.median(xs)
    if n < INTERVAL_FROM:
        return Estimate(value, n=n)
    if n < BOOTSTRAP_FROM:
        k, j = order_statistic_ranks(n)
        return Estimate(value, xs[k - 1], xs[j - 1], n, "order statistics")
    lo, hi = percentile_interval(bootstrap_medians(xs, random.Random(SEED)))
    return Estimate(value, lo, hi, n, "bootstrap")


def rank_sum_counts(n, m):
    """counts[u]: how many of the C(n+m, n) orderings of two samples of sizes n and
    m have Mann-Whitney U = u (the pairs where b's value is below a's)."""
    # f[i][j]: the counts for samples of sizes i and j, by U
    f = [[[1] for _ in range(m + 1)] for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            # the largest of all is an a (U grows by j) or a b (U unchanged)
            x, y = f[i - 1][j], f[i][j - 1]
            c = [0] * (i * j + 1)
            for u, v in enumerate(x):
                c[u + j] += v
            for u, v in enumerate(y):
                c[u] += v
            f[i][j] = c
    return f[n][m]


def shift_interval(a, b, level=LEVEL):
    """The distribution-free interval of B / A from two small samples: the order
    statistics of all the ratios b_j / a_i, at the ranks the Mann-Whitney
    distribution gives (the Hodges-Lehmann interval, on a log scale). None if a
    value is not positive or the samples are too small for the level."""
    if min(a + b) <= 0:
        return None
    d = sorted(math.log(y) - math.log(x) for x in a for y in b)
    counts = rank_sum_counts(len(a), len(b))
    total, tail, k = sum(counts), 0, 0
    while tail + counts[k] <= (1 - level) / 2 * total:
        tail += counts[k]
        k += 1
    if k == 0:
        return None
    return math.exp(d[k - 1]), math.exp(d[len(d) - k])


def ratio_estimate(a_samples, b_samples):
    """B / A of two runs' figures: the ratio of their medians, with a 95% interval
    over both runs' rounds. Both n >= 10: a bootstrap resampling each run's rounds
    on its own; both n >= 6: the rank-based interval of shift_interval."""
    xa = sorted(x for x in a_samples if x is not None and math.isfinite(x))
    xb = sorted(x for x in b_samples if x is not None and math.isfinite(x))
    if not xa or not xb or statistics.median(xa) == 0:
        return Estimate(None)
    value = statistics.median(xb) / statistics.median(xa)
    n = min(len(xa), len(xb))
    if n >= BOOTSTRAP_FROM and min(xa) > 0:
        rng = random.Random(SEED)
        ma, mb = bootstrap_medians(xa, rng), bootstrap_medians(xb, rng)
        lo, hi = percentile_interval([y / x for x, y in zip(ma, mb)])
        return Estimate(value, lo, hi, n, "bootstrap")
    if n >= INTERVAL_FROM and (iv := shift_interval(xa, xb)):
        return Estimate(value, iv[0], iv[1], n, "rank")
    return Estimate(value, n=n)


def agrees(est):
    """Two runs agree on a figure when B / A's interval lies within 0.90-1.10."""
    return est.has_interval and AGREE[0] <= est.lo and est.hi <= AGREE[1]


# ------------------------------------------------------------------ goals
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BOUND = re.compile(rf"^(>=|>|<=|<)\s*({_NUM})(?:\s+\S.*)?$")
_RANGE = re.compile(rf"^({_NUM})\s+to\s+({_NUM})(?:\s+\S.*)?$")
_AROUND = re.compile(rf"^({_NUM})\s*±\s*({_NUM})(?:\s+\S.*)?$")


@dataclass(frozen=True)
class Goal:
    """The set of values that meet a goal: an interval, each end open or closed."""

    text: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, v):
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def meets(self, lo, hi):
        """Some value in [lo, hi] meets the goal."""
        above = hi > self.lo if self.lo_open else hi >= self.lo
        below = lo < self.hi if self.hi_open else lo <= self.hi
        return above and below


def parse_goal(text):
    """'>= 3', '> 1.2', '<= 0.5 s', '0.8 to 1.25', '0.25 ± 0.05' (a unit may follow).
    Raises ValueError for anything else."""
    t = text.strip()
    if m := _BOUND.match(t):
        op, x = m.group(1), float(m.group(2))
        if op[0] == ">":
            return Goal(text, lo=x, lo_open=op == ">")
        return Goal(text, hi=x, hi_open=op == "<")
    if m := _RANGE.match(t):
        return Goal(text, lo=float(m.group(1)), hi=float(m.group(2)))
    if m := _AROUND.match(t):
        c, d = float(m.group(1)), float(m.group(2))
        return Goal(text, lo=c - d, hi=c + d)
    raise ValueError(f"goal '{text}' is not '>= X', '> X', '<= X', '< X', 'A to B' or 'C ± D'")


def check(est, goal):
    """PASS: the whole interval meets the goal; FAIL: none of it does; UNSETTLED:
    it straddles the goal. Without a goal: info; without a value: n/a; with fewer
    than 6 samples: n=K, never PASS or FAIL."""
    if goal is None:
        return "info"
    if est.value is None:
        return "n/a"
    if not est.has_interval:
        return f"n={est.n}"
    if goal.holds(est.lo) and goal.holds(est.hi):
        return "PASS"
    if not goal.meets(est.lo, est.hi):
        return "FAIL"
    return "UNSETTLED"


# --------------------------------------------------------------- formatting
def fmt(x):
    """Three significant digits (whole numbers from 1000 up); '–' for None."""
    if x is None:
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    e = math.floor(math.log10(abs(x)))
    if e >= 3:
        return str(round(x))
    r = round(x, 2 - e)
    return str(int(r)) if r == int(r) else repr(r)


def fmt_estimate(est, unit=""):
    """'1.87× (1.80–1.93)', '1.87× (n=4)', or '–'."""
    if est.value is None:
        return "–"
    s = fmt(est.value) + unit
    if est.has_interval:
        return f"{s} ({fmt(est.lo)}–{fmt(est.hi)})"
    return f"{s} (n={est.n})"
