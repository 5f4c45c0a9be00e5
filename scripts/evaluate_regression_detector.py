"""Evaluate the regression rule against the legacy one, on this machine, side by side.

Unchanged tiny models are measured against themselves (A/A: every flag is a false
positive) and against copies slowed down by +10%, +30% and +100% (extra matrix
products run inside forward, by a forward hook, calibrated against the measured
base time).  Every rule is applied to the SAME measurements:

- legacy: current mean > baseline mean x 1.2, on the individual call times
  (what the seed's PerformanceTestUtils did);
- median + Mann-Whitney U on the raw best-of-k times;
- median + Mann-Whitney U on the calibrated times (best-of-k time / reference
  workload time of the same round): the suite's rule, test/common/performance/regression.py.

Two pairings of baseline and current samples are evaluated:

- interleaved: both sides measured in the same trial, round-robin (ABAB), so slow
  drift of machine load hits both equally;
- stored: the baseline comes from a trial about half the evaluation earlier or
  later (a minute or more apart), like a baseline file recorded at another time.

Usage: python scripts/evaluate_regression_detector.py [--trials 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test.common.performance import measurement
from test.common.performance.regression import decide, legacy_decide

ARCHITECTURES = ("bert", "gpt2", "llama")
SLOWDOWNS = {"+10%": 0.10, "+30%": 0.30, "+100%": 1.00}
#: Conditions in the order of the table: A/A first, then the injected slowdowns.
CONDITIONS = ("A/A", *SLOWDOWNS)
PAIRINGS = ("interleaved", "stored")


@dataclass
class Series:
    """One variant's measurements in one trial, round by round."""

    calls_ns: list[list[int]] = field(default_factory=list)
    reference_ns: list[int] = field(default_factory=list)

    @property
    def best_ns(self) -> list[int]:
        return [min(calls) for calls in self.calls_ns]

    @property
    def all_calls_ns(self) -> list[int]:
        return [call for calls in self.calls_ns for call in calls]

    @property
    def relative(self) -> tuple[float, ...]:
        return measurement.relative_samples(self.best_ns, self.reference_ns)


@dataclass
class Trial:
    """The baseline series and one current series per condition, measured together."""

    architecture: str
    baseline: Series
    current: dict[str, Series]


def _legacy(baseline: Series, current: Series, tolerance: float) -> bool:
    return legacy_decide(baseline.all_calls_ns, current.all_calls_ns, 1 + tolerance)


def _median_mwu_raw(baseline: Series, current: Series, tolerance: float) -> bool:
    return decide(baseline.best_ns, current.best_ns, tolerance).is_regression


def _median_mwu_calibrated(baseline: Series, current: Series, tolerance: float) -> bool:
    return decide(baseline.relative, current.relative, tolerance).is_regression


RULES: dict[str, Callable[[Series, Series, float], bool]] = {
    "legacy: mean > 1.2 x mean (call times)": _legacy,
    "median + MWU p<0.01, raw best-of-k times": _median_mwu_raw,
    "median + MWU p<0.01, calibrated (the suite's rule)": _median_mwu_calibrated,
}


def stored_partner(trials: Sequence[Trial], index: int) -> int:
    """The trial of the same architecture about half the run away from `index`."""
    same = [i for i, trial in enumerate(trials) if trial.architecture == trials[index].architecture]
    position = same.index(index)
    return same[(position + len(same) // 2) % len(same)]


def flag_rates(trials: Sequence[Trial], tolerance: float) -> dict[tuple[str, str, str], float]:
    """(pairing, rule, condition) -> fraction of comparisons flagged as a regression."""
    rates = {}
    for pairing in PAIRINGS:
        for rule_name, rule in RULES.items():
            for condition in CONDITIONS:
                flags = []
                for index, trial in enumerate(trials):
                    source = (
                        trial if pairing == "interleaved" else trials[stored_partner(trials, index)]
                    )
                    flags.append(rule(source.baseline, trial.current[condition], tolerance))
                rates[(pairing, rule_name, condition)] = sum(flags) / len(flags)
    return rates


def effective_slowdowns(trials: Sequence[Trial]) -> dict[str, float]:
    """Median over trials of the measured median ratio, per condition (interleaved)."""
    return {
        condition: statistics.median(
            statistics.median(trial.current[condition].best_ns)
            / statistics.median(trial.baseline.best_ns)
            for trial in trials
        )
        for condition in CONDITIONS
    }


def format_table(rates: dict[tuple[str, str, str], float], effective: dict[str, float]) -> str:
    """A Markdown table: false-positive rate (A/A) and detection rate per slowdown."""
    header = ["pairing", "rule", "false positives (A/A)"]
    header += [f"detected {name} (measured x{effective[name]:.2f})" for name in SLOWDOWNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for pairing in PAIRINGS:
        for rule_name in RULES:
            cells = [pairing, rule_name]
            cells += [f"{100 * rates[(pairing, rule_name, c)]:.1f}%" for c in CONDITIONS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ measurement


def _extra_work(state: dict[str, int]) -> Callable[..., None]:
    """A forward hook doing `state['repeats']` small matrix products (the slowdown)."""
    import torch

    matrix = torch.randn(64, 64, generator=torch.Generator().manual_seed(0))

    def hook(*_: Any) -> None:
        product = matrix
        for _ in range(state["repeats"]):
            product = matrix @ matrix
        del product

    return hook


@dataclass
class Subject:
    """A tiny model with its slowdown knob and the repeats each condition needs."""

    architecture: str
    forward: Callable[[], Any]
    state: dict[str, int]
    repeats_of: dict[str, int]
    calibration_rounds: int = 60

    def ratio_with(self, repeats: int) -> float:
        """Measured slowdown with `repeats` extra products: the median, over rounds,
        of slowed / base best-of-k times taken back to back (robust to load drift)."""
        ratios = []
        for _ in range(self.calibration_rounds):
            self.state["repeats"] = 0
            base_ns = min(_timed_calls(self.forward, measurement.DEFAULT_BEST_OF))
            self.state["repeats"] = repeats
            ratios.append(min(_timed_calls(self.forward, measurement.DEFAULT_BEST_OF)) / base_ns)
        self.state["repeats"] = 0
        return statistics.median(ratios)


def _calibrated_repeats(subject: Subject, fraction: float, steps: int = 3) -> int:
    """Repeats that slow the forward by `fraction`: secant steps on the measured ratio."""
    repeats = 20
    for _ in range(steps):
        added = max(subject.ratio_with(repeats) - 1, 1e-3)
        repeats = max(1, round(repeats * fraction / added))
    return repeats


def _subject(architecture: str, calibration_rounds: int) -> Subject:
    import torch

    from test.common.models.tiny_models import build_tiny_model

    model = build_tiny_model(architecture).model
    inputs = {"input_ids": torch.randint(0, model.config.vocab_size, (1, 8))}
    state = {"repeats": 0}
    model.register_forward_hook(_extra_work(state))
    forward = measurement.forward_callable(model, inputs)
    subject = Subject(architecture, forward, state, {}, calibration_rounds)
    subject.repeats_of = {"A/A": 0} | {
        name: _calibrated_repeats(subject, fraction) for name, fraction in SLOWDOWNS.items()
    }
    return subject


def _timed_calls(function: Callable[[], Any], count: int) -> list[int]:
    calls = []
    for _ in range(count):
        start = time.perf_counter_ns()
        function()
        calls.append(time.perf_counter_ns() - start)
    return calls


def measure_trial(
    subject: Subject,
    reference: Callable[[], Any],
    samples: int,
    best_of: int,
    order: random.Random,
) -> Trial:
    """`samples` rounds; in each, every variant in a shuffled order, each followed by
    the reference (so no variant always follows the heavy +100% one)."""
    variants = ["baseline", *CONDITIONS]
    series = {name: Series() for name in variants}
    for _ in range(samples):
        order.shuffle(variants)
        for name in variants:
            subject.state["repeats"] = subject.repeats_of.get(name, 0)
            series[name].calls_ns.append(_timed_calls(subject.forward, best_of))
            series[name].reference_ns.append(min(_timed_calls(reference, best_of)))
    subject.state["repeats"] = 0
    baseline = series.pop("baseline")
    return Trial(subject.architecture, baseline, series)


def run(
    trials: int,
    samples: int,
    best_of: int,
    log: Callable[[str], None],
    calibration_rounds: int = 60,
) -> list[Trial]:
    import torch

    torch.set_num_threads(1)  # as the benchmarks measure (measurement.torch_threads)
    reference = measurement.reference_workload("cpu")
    subjects = [_subject(architecture, calibration_rounds) for architecture in ARCHITECTURES]
    for subject in subjects:
        measured = {
            name: round(subject.ratio_with(repeats), 3)
            for name, repeats in subject.repeats_of.items()
            if repeats
        }
        log(f"{subject.architecture}: extra matmuls {subject.repeats_of}, measured {measured}")
    results, order = [], random.Random(0)
    for index in range(trials):
        subject = subjects[index % len(subjects)]
        results.append(measure_trial(subject, reference, samples, best_of, order))
        if (index + 1) % 50 == 0:
            log(f"{index + 1}/{trials} trials")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="comparisons per condition")
    parser.add_argument(
        "--samples",
        type=int,
        default=measurement.DEFAULT_ROUNDS,
        help="samples per side, as many as a benchmark takes (default: %(default)s)",
    )
    parser.add_argument("--best-of", type=int, default=measurement.DEFAULT_BEST_OF)
    parser.add_argument("--tolerance", type=float, default=0.20)
    parser.add_argument(
        "--calibration-rounds", type=int, default=60, help="rounds per slowdown calibration step"
    )
    parser.add_argument("--json", type=Path, help="also write the rates here")
    parser.add_argument("--dump", type=Path, help="also write every measurement here (JSON)")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started, load_before = time.monotonic(), os.getloadavg()
    trials = run(args.trials, args.samples, args.best_of, log, args.calibration_rounds)
    rates = flag_rates(trials, args.tolerance)
    effective = effective_slowdowns(trials)
    elapsed, load_after = time.monotonic() - started, os.getloadavg()
    print(format_table(rates, effective))
    print(
        f"\n{args.trials} comparisons per condition, {args.samples} samples per side, "
        f"best of {args.best_of}, tolerance {args.tolerance}; {elapsed:.0f} s; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"{os.cpu_count()} cores"
    )
    if args.dump:
        args.dump.write_text(json.dumps([dataclasses.asdict(trial) for trial in trials]))
    if args.json:
        document = {"|".join(key): value for key, value in rates.items()}
        args.json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
