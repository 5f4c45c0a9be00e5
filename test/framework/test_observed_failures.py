"""scripts/observed_failures.py: a model run's failures drafted as rows keyed by platform."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from scripts import observed_failures

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="test.improved.test_task_heads" name="test_train_step[GPT2LMHeadModel-cuda]">
  <failure message="AssertionError: the loss is nan&#10;more lines">trace</failure>
</testcase>
<testcase classname="test.improved.test_task_heads" name="test_task_output[GPT2LMHeadModel-cuda]"/>
<testcase classname="t" name="test_task_output[BrokenForCausalLM-cuda]">
  <error message='failed on setup with "TypeError: no \\"size\\""'>trace</error>
</testcase>
<testcase classname="t" name="test_train_step[BrokenForCausalLM-cuda]">
  <error message='failed on setup with "TypeError: no \\"size\\""'>trace</error>
</testcase>
<testcase classname="t" name="test_forward[bert-cuda]">
  <failure message="[XPASS(strict)] observed on cuda: was slow">trace</failure>
</testcase>
<testcase classname="t" name="test_helper"/>
</testsuite></testsuites>
"""


def test_failures_become_rows_keyed_by_the_platform_of_the_run(tmp_path: Path) -> None:
    junit = tmp_path / "run.xml"
    junit.write_text(JUNIT)
    text = observed_failures.rows_toml(observed_failures.observed(junit))
    rows = tomllib.loads(text)
    assert rows["GPT2LMHeadModel"] == {
        "expected_failures": {"cuda": {"train_step": "AssertionError: the loss is nan"}}
    }
    assert rows["BrokenForCausalLM"]["expected_failure"].startswith("building it fails: TypeError")
    assert "# bert: forward passes on cuda: remove its row" in text
    assert "bert" not in rows


def test_the_command_prints_rows_and_rejects_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "run.xml"
    junit.write_text(JUNIT)
    assert observed_failures.main([str(junit)]) == 0
    captured = capsys.readouterr()
    assert "[GPT2LMHeadModel.expected_failures.cuda]" in captured.out
    assert "4 failing items in 3 rows" in captured.err
    broken = tmp_path / "broken.xml"
    broken.write_text("<testsuites>")
    with pytest.raises(SystemExit):
        observed_failures.main([str(broken)])
    assert "is not a JUnit XML file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        observed_failures.main([str(tmp_path / "missing.xml")])
