"""The regression decision (test/common/performance/regression.py): size AND evidence, never
one alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test.common.performance.regression import (
    Status,
    Verdict,
    decide,
    fingerprint_difference,
    legacy_decide,
    mann_whitney_p,
)

TOLERANCE = 0.2
timings = st.lists(
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=10, max_size=40
)
tolerances = st.floats(min_value=0.0, max_value=1.0)


@settings(deadline=None)
@given(samples=timings, tolerance=tolerances)
def test_identical_runs_are_never_a_regression(samples: list[float], tolerance: float) -> None:
    assert decide(samples, list(samples), tolerance).status is Status.UNCHANGED


@settings(deadline=None)
@given(baseline=timings, current=timings, tolerance=tolerances)
def test_a_regression_needs_size_and_evidence_and_mirrors_an_improvement(
    baseline: list[float], current: list[float], tolerance: float
) -> None:
    verdict = decide(baseline, current, tolerance)
    if verdict.is_regression:
        assert verdict.ratio is not None
        assert verdict.ratio > 1 + tolerance
        assert verdict.p_value is not None
        assert verdict.p_value < 0.01
    swapped = decide(current, baseline, tolerance)
    assert verdict.is_regression == (swapped.status is Status.IMPROVEMENT)


@settings(deadline=None)
@given(baseline=timings, factor=st.floats(min_value=1.3, max_value=10.0))
def test_a_clear_separated_slowdown_is_flagged(baseline: list[float], factor: float) -> None:
    top = max(baseline)
    current = [top * factor + index for index in range(len(baseline))]
    # Every current sample is above every baseline sample and the medians differ by
    # > 1.3x: the rank test's p is at most 1/C(20, 10) for 10 per side.
    verdict = decide(baseline, current, TOLERANCE)
    assert verdict.is_regression, verdict.describe()


def test_a_large_but_insignificant_difference_is_not_a_regression() -> None:
    # Medians 1.5x apart, but the samples interleave: the rank test does not agree.
    baseline = [1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0, 9.0, 1.0]
    current = [1.5, 1.5, 1.5, 1.5, 1.5, 9.0, 9.0, 9.0, 9.0, 1.0, 1.5]
    verdict = decide(baseline, current, TOLERANCE)
    assert verdict.ratio == pytest.approx(1.5)
    assert verdict.status is Status.UNCHANGED
    assert verdict.p_value is not None
    assert verdict.p_value >= 0.01


def test_outliers_move_the_legacy_mean_but_not_the_decision() -> None:
    baseline = [1.0] * 20
    current = [1.0] * 19 + [100.0]  # one preempted round
    assert legacy_decide(baseline, current)
    assert decide(baseline, current, TOLERANCE).status is Status.UNCHANGED


@pytest.mark.parametrize("sizes", [(9, 10), (10, 9), (0, 30)])
def test_fewer_than_ten_samples_a_side_decide_nothing(sizes: tuple[int, int]) -> None:
    baseline, current = [1.0] * sizes[0], [5.0] * sizes[1]
    verdict = decide(baseline, current, TOLERANCE)
    assert verdict.status is Status.TOO_FEW_SAMPLES
    assert "need 10 per side" in verdict.describe()


def test_invalid_inputs_are_errors() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        decide([1.0] * 10, [1.0] * 10, -0.1)
    with pytest.raises(ValueError, match="positive"):
        decide([0.0] * 10, [1.0] * 10, 0.2)


def test_describe_lists_the_numbers() -> None:
    text = Verdict(Status.REGRESSION, 1.5, 0.001, "hint").describe()
    assert text == "regression, median x1.500, p=0.001, hint"
    assert Verdict(Status.MISSING_BASELINE).describe() == "missing baseline"


def test_fingerprint_difference_names_each_field() -> None:
    stored = {"cpu": "A", "torch": "2.13.0", "cores": 2}
    assert fingerprint_difference(stored, dict(stored)) == ""
    text = fingerprint_difference(stored, {"cpu": "B", "torch": "2.13.0", "threads": 1})
    assert text == "cores: 2 -> None; cpu: 'A' -> 'B'; threads: None -> 1"


# Ties are common in timings rounded to a clock tick: draw from few distinct values too.
samples_with_ties = st.lists(st.integers(min_value=1, max_value=6), min_size=9, max_size=30)


@pytest.mark.slow  # imports scipy.stats: over a second
@settings(deadline=None)
@given(
    current=st.one_of(timings, samples_with_ties),
    baseline=st.one_of(timings, samples_with_ties),
    alternative=st.sampled_from(["greater", "less"]),
)
def test_mann_whitney_p_is_scipys_for_more_than_eight_a_side(
    current: list[float], baseline: list[float], alternative: str
) -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy is the reference implementation")
    expected = stats.mannwhitneyu(current, baseline, alternative=alternative).pvalue
    assert mann_whitney_p(current, baseline, alternative) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("current", "baseline", "greater", "less"),
    [
        # scipy 1.17.1 gives these p-values.
        ([2.0] * 10, [1.0] * 10, 7.969e-06, 0.99999465),  # separated: one way only
        ([1.0] * 10, [1.0] * 10, 1.0, 1.0),  # all tied: no evidence either way
    ],
)
def test_mann_whitney_p_known_values(
    current: list[float], baseline: list[float], greater: float, less: float
) -> None:
    assert mann_whitney_p(current, baseline, "greater") == pytest.approx(greater, rel=1e-2)
    assert mann_whitney_p(current, baseline, "less") == pytest.approx(less, rel=1e-2)


def test_mann_whitney_rejects_two_sided() -> None:
    with pytest.raises(ValueError, match="'greater' or 'less'"):
        mann_whitney_p([1.0] * 10, [2.0] * 10, "two-sided")
