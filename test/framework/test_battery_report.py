"""The end-of-run `architectures:` line (test/common/plugins/battery_report.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from test.common.models.registry import load_registry
from test.common.plugins import battery_report

FAKE_BATTERY = """
import pytest

ARCHITECTURES = [
    "bert",
    "gpt2",
    pytest.param("vit", marks=pytest.mark.xfail(reason="known", strict=True)),
    "t5",
    "clip",
]

@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_loads(architecture):
    if architecture == "clip":
        pytest.skip("no clip today")
    assert architecture != "vit"

@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward(architecture):
    if architecture == "clip":
        pytest.skip("no clip today")
    assert architecture not in ("gpt2", "vit"), "gpt2 output is wrong"
"""


def expected_line(passed: int, xfailed: int, failed: int, skipped: int) -> str:
    total = len(load_registry())
    not_run = total - (passed + xfailed + failed + skipped)
    return (
        f"architectures: {total} total, {passed} passed, {xfailed} xfailed, "
        f"{failed} failed, {skipped} skipped, {not_run} not run (deselected)"
    )


@pytest.mark.parametrize(
    "workers",
    [[], pytest.param(["-n", "2", "-p", "xdist"], marks=pytest.mark.slow)],
    ids=["serial", "xdist"],
)
def test_line_counts_architectures(suite_pytester: pytest.Pytester, workers: list[str]) -> None:
    suite_pytester.makepyfile(test_fake_battery=FAKE_BATTERY)
    result = suite_pytester.runpytest(*workers)
    result.assert_outcomes(passed=5, failed=1, xfailed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            expected_line(passed=2, xfailed=1, failed=1, skipped=1),
            "  FAILED gpt2: *test_forward*gpt2*: AssertionError: gpt2 output is wrong",
        ]
    )


def test_no_line_without_battery_tests(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = suite_pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*architectures:*")


def report(outcome: str, when: str = "call", **extra: object) -> SimpleNamespace:
    return SimpleNamespace(
        user_properties=[("architecture", "bert")],
        when=when,
        passed=outcome == "passed",
        failed=outcome == "failed",
        skipped=outcome == "skipped",
        nodeid="test_x.py::test_forward[bert-cpu]",
        longrepr="line one\nAssertionError: boom",
        **extra,
    )


@pytest.mark.parametrize(
    ("reports", "verdict"),
    [
        ([report("passed", "setup"), report("passed")], "passed"),
        ([report("passed"), report("failed", "teardown")], "failed"),
        ([report("skipped", wasxfail="known"), report("passed")], "xfailed"),
        ([report("passed", wasxfail="known")], "failed"),  # strict xpass
        # A check skipped beside passing ones (flex attention on the CPU) still passes.
        ([report("skipped", "setup"), report("passed")], "passed"),
        ([report("skipped", "setup")], "skipped"),
    ],
)
def test_verdict_per_architecture(reports: list[SimpleNamespace], verdict: str) -> None:
    tally = battery_report.BatteryTally()
    for item in reports:
        tally.add(item)
    assert tally.verdict("bert") == verdict


def test_failure_message_falls_back_to_longrepr_text() -> None:
    tally = battery_report.BatteryTally()
    tally.add(report("failed"))
    assert tally.failures["bert"] == ["test_x.py::test_forward[bert-cpu]: AssertionError: boom"]


def test_largest_model_comes_from_recorded_parameters() -> None:
    tally = battery_report.BatteryTally()
    assert tally.largest() is None
    for model_type, count in (("bert", 38_752), ("bart", 112_640)):
        tally.add(
            SimpleNamespace(
                user_properties=[("architecture", model_type), ("parameters", count)],
                when="call",
                passed=True,
                failed=False,
                skipped=False,
            )
        )
    assert tally.largest() == "largest passing tiny model: bart, 112,640 parameters"


def test_reports_without_architecture_are_ignored() -> None:
    tally = battery_report.BatteryTally()
    tally.add(SimpleNamespace(user_properties=[], when="call", passed=True, failed=False))
    assert not tally.outcomes


def test_golden_and_attention_checks_get_a_line_each() -> None:
    tally = battery_report.BatteryTally()
    for check, architecture, outcome in (
        ("test_golden", "bert", "passed"),
        ("test_golden", "gpt2", "passed"),
        ("test_golden", "vit", "failed"),
        ("test_attention_paths", "bert", "passed"),
        ("test_forward", "bert", "passed"),
    ):
        item = report(outcome)
        item.user_properties = [("architecture", architecture)]
        item.nodeid = f"t.py::{check}[{architecture}-cpu]"
        tally.add(item)
    assert tally.check_lines() == [
        "golden: 2 architectures pinned by a golden and matching it, 1 failed",
        "attention paths: 1 architectures agree across their attention implementations",
    ]


FAKE_HEADS = """
import pytest

CLASSES = ["BertForMaskedLM", "GPT2LMHeadModel", "ViTForImageClassification"]

@pytest.mark.parametrize("model_class", CLASSES)
def test_train_step(model_class):
    assert model_class != "GPT2LMHeadModel", "the loss did not fall"
"""


def test_line_counts_model_classes(suite_pytester: pytest.Pytester) -> None:
    from test.common.models.heads import load_heads

    suite_pytester.makepyfile(test_fake_heads=FAKE_HEADS)
    result = suite_pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    total = len(load_heads())
    result.stdout.fnmatch_lines(
        [
            f"model classes: {total} total, 2 passed, 0 xfailed, 1 failed, 0 skipped, "
            f"{total - 3} not run (deselected)",
            "  FAILED GPT2LMHeadModel: *the loss did not fall",
        ]
    )
