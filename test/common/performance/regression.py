"""The regression decision: is the current run slower than its baseline?

Two conditions must both hold before a slowdown is called a regression:

1. the *size* test: the median of the current samples exceeds the baseline median
   by more than the tolerance (ratio > 1 + tolerance), and
2. the *evidence* test: a one-sided Mann-Whitney U test says the current samples
   are stochastically larger, p < ``alpha`` (0.01), with at least ``min_samples``
   (10) samples on each side.

The median and the rank test both ignore how far an outlier lies, so one noisy
round on a shared machine moves neither; the legacy rule (current mean > baseline
mean x 1.2) is kept here only so scripts/evaluate_regression_detector.py can
compare the two on the same measurements.  Improvements are the mirror image:
ratio < 1 / (1 + tolerance) and significant in the other direction.

Comparability is decided before any of this: a baseline taken under another
fingerprint (CPU/GPU model, core count, library versions) gives the verdict
``no comparable baseline``, never a pass or a regression.
"""

from __future__ import annotations

import collections
import enum
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SAMPLES = 10
LEGACY_FACTOR = 1.2


class Status(enum.StrEnum):
    """What a comparison concluded; the value is what reports print."""

    UNCHANGED = "unchanged"
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    NO_COMPARABLE_BASELINE = "no comparable baseline"
    MISSING_BASELINE = "missing baseline"
    TOO_FEW_SAMPLES = "too few samples"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison, with the numbers that led to it."""

    status: Status
    ratio: float | None = None
    p_value: float | None = None
    detail: str = ""

    @property
    def is_regression(self) -> bool:
        return self.status is Status.REGRESSION

    def describe(self) -> str:
        """One line for the terminal: status, median ratio, p-value, detail."""
        parts = [self.status.value]
        if self.ratio is not None:
            parts.append(f"median x{self.ratio:.3f}")
        if self.p_value is not None:
            parts.append(f"p={self.p_value:.2g}")
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)


def mann_whitney_p(current: Sequence[float], baseline: Sequence[float], alternative: str) -> float:
    """One-sided Mann-Whitney U p-value: is `current` stochastically greater ("greater")
    or smaller ("less") than `baseline`?

    The normal approximation with tie and continuity corrections: exactly what
    `scipy.stats.mannwhitneyu` computes when both samples have more than 8 values
    (decide() needs at least 10 a side), checked against scipy in
    test/framework/test_regression.py.  Written out because importing scipy.stats
    takes over a second, which every comparison and every plain `pytest` paid.
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    n1, n2 = len(current), len(baseline)
    ranks = _midranks([*current, *baseline])
    u_current = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = u_current if alternative == "greater" else n1 * n2 - u_current
    n = n1 + n2
    tie_term = sum(t**3 - t for t in collections.Counter([*current, *baseline]).values())
    spread = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if spread == 0:  # every value tied: no evidence either way
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / spread
    return min(1.0, max(0.0, 0.5 * math.erfc(z / math.sqrt(2))))


def _midranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def decide(
    baseline: Sequence[float],
    current: Sequence[float],
    tolerance: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> Verdict:
    """Compare two samples of timings (any unit, the same for both).

    Returns REGRESSION only when the median ratio exceeds ``1 + tolerance`` AND the
    one-sided Mann-Whitney U p-value is below ``alpha``; IMPROVEMENT symmetrically.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if len(baseline) < min_samples or len(current) < min_samples:
        return Verdict(
            Status.TOO_FEW_SAMPLES,
            detail=f"need {min_samples} per side, have {len(baseline)} and {len(current)}",
        )
    baseline_median = statistics.median(baseline)
    if baseline_median <= 0:
        raise ValueError(f"baseline median must be positive, got {baseline_median}")
    ratio = statistics.median(current) / baseline_median
    if ratio > 1 + tolerance:
        p_value = mann_whitney_p(current, baseline, "greater")
        status = Status.REGRESSION if p_value < alpha else Status.UNCHANGED
        return Verdict(status, ratio, p_value)
    if ratio < 1 / (1 + tolerance):
        p_value = mann_whitney_p(current, baseline, "less")
        status = Status.IMPROVEMENT if p_value < alpha else Status.UNCHANGED
        return Verdict(status, ratio, p_value)
    return Verdict(Status.UNCHANGED, ratio)


def legacy_decide(
    baseline: Sequence[float], current: Sequence[float], factor: float = LEGACY_FACTOR
) -> bool:
    """The seed's rule, kept for comparison only: current mean > baseline mean x factor."""
    return statistics.fmean(current) > statistics.fmean(baseline) * factor


def fingerprint_difference(stored: Mapping[str, object], current: Mapping[str, object]) -> str:
    """'' when two fingerprints match, else the differing fields in words."""
    differing = [
        f"{key}: {stored.get(key)!r} -> {current.get(key)!r}"
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]
    return "; ".join(differing)
