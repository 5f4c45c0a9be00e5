"""Plugin: the end-of-run line of the architecture battery.

    architectures: 605 total, 560 passed, 40 xfailed, 3 failed, 2 skipped
    model classes: 943 total, 850 passed, 80 xfailed, 0 failed, 13 skipped
    golden: 540 architectures pinned by a golden and matching it, 2 moved, 40 xfailed
    attention paths: 430 architectures agree across eager/sdpa/flex_attention, 1 xfailed

An architecture passes when all its battery tests pass; it fails when one fails
(xpass of a strict xfail included), is xfailed when one is an expected failure, and
skipped otherwise.  N is the registry's count, so an architecture that produced no
report at all is shown as "not run" rather than silently left out.  The failures
follow, one line each.  The `golden` and `attention_paths` checks get a line of their
own: how many architectures are pinned by a golden, and how many compare attention
implementations.

Works under pytest-xdist: every battery item carries ("architecture", model_type) in
its user_properties from collection on, and user_properties travel with each
TestReport to the controller, where this plugin counts them.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import pytest

ARCHITECTURE_PROPERTY = "architecture"
MODEL_CLASS_PROPERTY = "model_class"
PARAMETERS_PROPERTY = "parameters"
OUTCOME_ORDER = ("failed", "xfailed", "skipped", "passed")
#: Checks whose outcomes get a line of their own: (test function, how a pass reads).
COUNTED_CHECKS = (
    ("test_golden", "golden: {passed} architectures pinned by a golden and matching it"),
    (
        "test_attention_paths",
        "attention paths: {passed} architectures agree across their attention implementations",
    ),
)


#: The parameters whose values are counted, and how the summary names them: the
#: battery's architectures and the task heads' model classes.
COUNTED = {ARCHITECTURE_PROPERTY: "architectures", MODEL_CLASS_PROPERTY: "model classes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        for key in COUNTED:
            if callspec is not None and key in callspec.params:
                item.user_properties.append((key, callspec.params[key]))


def architecture_of(report: Any, key: str = ARCHITECTURE_PROPERTY) -> str | None:
    """The counted value (`key`: architecture or model_class) a report is about."""
    for name, value in getattr(report, "user_properties", ()):
        if name == key:
            return str(value)
    return None


def phase_outcome(report: Any) -> str | None:
    """failed / xfailed / skipped / passed for one report phase, None when uninformative."""
    if hasattr(report, "wasxfail"):
        return "failed" if report.passed and report.when == "call" else "xfailed"
    if report.failed:
        return "failed"
    if report.skipped:
        return "skipped"
    if report.when == "call":
        return "passed"
    return None


@dataclasses.dataclass
class BatteryTally:
    """Per-architecture outcomes, gathered from test reports."""

    key: str = ARCHITECTURE_PROPERTY
    outcomes: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)
    failures: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    parameters: dict[str, int] = dataclasses.field(default_factory=dict)
    checks: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)

    def add(self, report: Any) -> None:
        model_type = architecture_of(report, self.key)
        outcome = phase_outcome(report) if model_type is not None else None
        if model_type is None or outcome is None:
            return
        for name, value in report.user_properties:
            if name == PARAMETERS_PROPERTY:
                self.parameters[model_type] = int(value)
        self.outcomes.setdefault(model_type, collections.Counter())[outcome] += 1
        check = str(getattr(report, "nodeid", "")).split("::")[-1].split("[")[0]
        self.checks.setdefault(check, collections.Counter())[outcome] += 1
        if outcome == "failed":
            message = _short_message(report)
            self.failures.setdefault(model_type, []).append(f"{report.nodeid}: {message}")

    def verdict(self, model_type: str) -> str:
        counts = self.outcomes[model_type]
        for outcome in ("failed", "xfailed"):
            if counts[outcome]:
                return outcome
        # A check skipped beside passing ones (flex attention not compared on this
        # device) leaves the architecture passing; skipped means nothing ran.
        return "skipped" if counts["skipped"] and not counts["passed"] else "passed"

    def summary(self, total: int) -> str:
        verdicts = collections.Counter(self.verdict(mt) for mt in self.outcomes)
        line = (
            f"{COUNTED[self.key]}: {total} total, {verdicts['passed']} passed, "
            f"{verdicts['xfailed']} xfailed, {verdicts['failed']} failed, "
            f"{verdicts['skipped']} skipped"
        )
        not_run = total - len(self.outcomes)
        return line + (f", {not_run} not run (deselected)" if not_run > 0 else "")

    def check_lines(self) -> list[str]:
        """One line per counted check that ran: passes, then what did not pass."""
        lines = []
        for check, passed_text in COUNTED_CHECKS:
            counts = self.checks.get(check)
            if not counts:
                continue
            others = [f"{counts[o]} {o}" for o in ("failed", "xfailed", "skipped") if counts[o]]
            lines.append(", ".join([passed_text.format(passed=counts["passed"]), *others]))
        return lines

    def largest(self) -> str | None:
        """The passing tiny model with the most parameters (recorded by test_loads)."""
        passing = {mt: n for mt, n in self.parameters.items() if self.verdict(mt) == "passed"}
        if not passing:
            return None
        model_type = max(passing, key=passing.__getitem__)
        return f"largest passing tiny model: {model_type}, {passing[model_type]:,} parameters"


def _short_message(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:200]
    return (
        str(getattr(report, "longrepr", "")).strip().splitlines()[-1][:200]
        if report.longrepr
        else ""
    )


class BatteryReporter:
    """Counts battery reports (on the xdist controller too) and prints the summary."""

    def __init__(self) -> None:
        self.tally = BatteryTally()
        self.heads = BatteryTally(MODEL_CLASS_PROPERTY)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tally.add(report)
        self.heads.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.tally.outcomes or self.heads.outcomes):
            return
        terminalreporter.write_sep("-", "architecture battery and task heads")
        if self.tally.outcomes:
            terminalreporter.write_line(self.tally.summary(registry_size()))
            for line in self.tally.check_lines():
                terminalreporter.write_line(line)
            largest = self.tally.largest()
            if largest:
                terminalreporter.write_line(largest)
        if self.heads.outcomes:
            terminalreporter.write_line(self.heads.summary(heads_size()))
        for tally in (self.tally, self.heads):
            for name in sorted(tally.failures):
                for failure in tally.failures[name]:
                    terminalreporter.write_line(f"  FAILED {name}: {failure}")


def registry_size() -> int:
    from test.common.models.registry import load_registry

    return len(load_registry())


def heads_size() -> int:
    from test.common.models.heads import load_heads

    return len(load_heads())


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(BatteryReporter(), "battery-reporter")
