"""The fault-injection plugin (test/common/correctness/faults.py) and its script, without torch."""

from __future__ import annotations

import pytest

from test.common.correctness import faults

pytestmark = pytest.mark.slow  # pytester sandboxes


def test_every_fault_names_a_kind_and_what_it_breaks() -> None:
    kinds = {fault.kind for fault in faults.FAULTS.values()}
    assert {"activation", "scaling", "mask", "normalisation", "positions"} <= kinds
    assert {"weight loading"} <= kinds
    for name, fault in faults.FAULTS.items():
        assert fault.name == name
        assert fault.description


def test_an_unknown_fault_is_a_usage_error(
    suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(faults.ENVIRONMENT_VARIABLE, "no-such-fault")
    suite_pytester.makepyfile("def test_nothing():\n    assert True\n")
    result = suite_pytester.runpytest("-p", "test.common.correctness.faults")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SUITE_FAULT='no-such-fault' is no fault of *"])


def test_without_a_fault_the_plugin_changes_nothing(
    suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(faults.ENVIRONMENT_VARIABLE, raising=False)
    suite_pytester.makepyfile("def test_nothing():\n    assert True\n")
    suite_pytester.runpytest("-p", "test.common.correctness.faults").assert_outcomes(passed=1)
