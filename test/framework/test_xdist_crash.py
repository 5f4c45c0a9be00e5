"""A crashing xdist worker fails the run and names the test it was running."""

from __future__ import annotations

import pytest

CRASHING = """
import os

def test_fine():
    assert True

def test_worker_dies():
    os._exit(3)
"""


@pytest.mark.slow
def test_crashed_worker_fails_the_run_and_names_the_test(
    suite_pytester: pytest.Pytester,
) -> None:
    suite_pytester.makepyfile(test_crashing=CRASHING)
    result = suite_pytester.runpytest("-n", "2", "-p", "xdist")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*worker*crashed while running*test_worker_dies*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1
    assert outcomes.get("passed") == 1
