"""scripts/evaluate_regression_detector.py: the analysis on synthetic trials (fast),
and one tiny real evaluation run (slow: it loads torch and three tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import evaluate_regression_detector as evaluation
from scripts.evaluate_regression_detector import CONDITIONS, RULES, Series, Trial


def series(scale: float, reference: float = 100.0, spike: bool = False) -> Series:
    calls = [[round((1000 + 5 * index) * scale)] * 3 for index in range(12)]
    if spike:
        calls[0] = [1_000_000] * 3  # one preempted round: moves a mean, not a median
    return Series(calls_ns=calls, reference_ns=[round(reference)] * 12)


def trial(architecture: str, busy: float = 1.0, spike: bool = False) -> Trial:
    """A synthetic trial: the machine `busy` times slower, slowdowns as labelled."""
    current = {
        "A/A": series(busy, 100 * busy, spike),
        "+10%": series(1.1 * busy, 100 * busy),
        "+30%": series(1.3 * busy, 100 * busy),
        "+100%": series(2.0 * busy, 100 * busy),
    }
    return Trial(architecture, series(busy, 100 * busy), current)


def test_stored_partner_pairs_the_same_architecture_half_a_run_away() -> None:
    trials = [trial(name) for name in ("bert", "gpt2") * 4]
    assert [evaluation.stored_partner(trials, i) for i in range(8)] == [4, 5, 6, 7, 0, 1, 2, 3]


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_rates_separate_the_rules_on_the_same_measurements() -> None:
    # A busier machine during half of the trials: the stored pairing compares
    # a quiet baseline with a busy current run (and back).
    trials = [trial("bert", busy=1.0 if i < 4 else 1.5, spike=i == 0) for i in range(8)]
    rates = evaluation.flag_rates(trials, tolerance=0.2)
    legacy, raw, calibrated = RULES
    assert rates[("interleaved", calibrated, "A/A")] == 0.0
    assert rates[("interleaved", calibrated, "+30%")] == 1.0
    assert rates[("interleaved", calibrated, "+10%")] == 0.0
    assert rates[("interleaved", legacy, "A/A")] == 1 / 8  # the spike
    assert rates[("stored", raw, "A/A")] == 0.5  # load drift read as a regression
    assert rates[("stored", calibrated, "A/A")] == 0.0
    assert rates[("stored", calibrated, "+100%")] == 1.0


def test_table_has_one_row_per_pairing_and_rule() -> None:
    trials = [trial("bert") for _ in range(4)]
    effective = evaluation.effective_slowdowns(trials)
    assert effective["A/A"] == pytest.approx(1.0)
    assert effective["+30%"] == pytest.approx(1.3, rel=0.01)
    table = evaluation.format_table(evaluation.flag_rates(trials, 0.2), effective)
    lines = table.splitlines()
    assert len(lines) == 2 + 2 * len(RULES)
    assert "detected +30% (measured x1.30)" in lines[0]
    assert lines[2].startswith("| interleaved | legacy")
    assert len(CONDITIONS) == 4


def test_series_views() -> None:
    data = Series(calls_ns=[[3, 1, 2], [5, 4, 6]], reference_ns=[1, 2])
    assert data.best_ns == [1, 4]
    assert data.all_calls_ns == [3, 1, 2, 5, 4, 6]
    assert data.relative == (1.0, 2.0)


@pytest.mark.slow
def test_a_tiny_real_evaluation_runs_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    rates_path, dump_path = tmp_path / "rates.json", tmp_path / "dump.json"
    arguments = ["--trials", "3", "--samples", "10", "--best-of", "1", "--calibration-rounds", "3"]
    assert evaluation.main([*arguments, "--json", str(rates_path), "--dump", str(dump_path)]) == 0
    output = capsys.readouterr().out
    assert "| pairing | rule | false positives (A/A) |" in output
    assert "3 comparisons per condition, 10 samples per side" in output
    rates = json.loads(rates_path.read_text())
    assert len(rates) == 2 * len(RULES) * len(CONDITIONS)
    assert all(0.0 <= value <= 1.0 for value in rates.values())
    assert len(json.loads(dump_path.read_text())) == 3
