"""The report in a real browser: headless Chromium (test/common/results/browser.py).

Skipped, naming Chromium, where it is not installed; in CI (CI=true) its absence is
an error: .ci/run installs Debian's `chromium`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test.common.chromium import find_chromium
from test.common.results.browser import chromium
from test.common.results.report import OUTCOME_CODES, write_report
from test.framework.results_data import CHECKS, recorded

pytest.importorskip("duckdb", reason="duckdb is needed for the results database")
pytest.importorskip("plotly", reason="plotly draws the report's charts")

MATRIX = "document.getElementById('matrix').data[0]"
BACKENDS_MATRIX = "document.getElementById('backends-matrix').data[0]"


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        message = "Chromium is not installed (`apt-get install -y chromium`)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install it (.ci/run)")
        pytest.skip(message)
    return binary


def _type_filter(browser, text: str) -> None:
    browser.evaluate(
        "(() => { const box = document.getElementById('matrix-filter');"
        f" box.value = {text!r}; box.dispatchEvent(new Event('input')); }})()"
    )


@pytest.mark.slow  # starts Chromium: seconds
def test_the_report_renders_in_chromium_with_its_matrix_and_filter(
    chromium_binary: str, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    write_report(recorded(tmp_path / "history.duckdb"), page)
    with chromium(chromium_binary) as browser:
        browser.open_page(page.as_uri())
        rows = browser.evaluate(f"{MATRIX}.y")
        columns = browser.evaluate(f"{MATRIX}.x")
        cells = browser.evaluate(f"{MATRIX}.z")
        # Grouped by modality (text-encoder before vision), then by name.
        assert rows == ["bert", "gpt2", "vit"]
        assert columns == sorted(f"cpu · {check}" for check in CHECKS)
        outcome = {
            (row, column): value
            for row, values in zip(rows, cells, strict=True)
            for column, value in zip(columns, values, strict=True)
        }
        assert outcome[("bert", "cpu · golden")] == OUTCOME_CODES["failed"]
        assert outcome[("vit", "cpu · forward")] == OUTCOME_CODES["xfailed"]
        assert outcome[("gpt2", "cpu · loads")] == OUTCOME_CODES["passed"]
        hover = browser.evaluate(f"{MATRIX}.customdata[0][{columns.index('cpu · golden')}]")
        assert "max difference 0.3" in hover
        browser.screenshot(tmp_path / "report.png")

        _type_filter(browser, "gp")
        assert browser.evaluate(f"{MATRIX}.y") == ["gpt2"]
        count = browser.evaluate("document.getElementById('matrix-count').textContent")
        assert count == "1 of 3 architectures shown"
        _type_filter(browser, "")
        browser.evaluate(
            "(() => { const pick = document.getElementById('matrix-modality');"
            " pick.value = 'vision'; pick.dispatchEvent(new Event('change')); })()"
        )
        assert browser.evaluate(f"{MATRIX}.y") == ["vit"]

        assert browser.evaluate(f"{BACKENDS_MATRIX}.x") == ["export", "onnx"]
        assert browser.evaluate(f"{BACKENDS_MATRIX}.y") == ["bert", "gpt2"]
        assert browser.evaluate(f"{BACKENDS_MATRIX}.z") == [[0, 1], [1, 2]]
        assert browser.evaluate(f"{BACKENDS_MATRIX}.text") == [["x1.2", "x0.5"], ["", ""]]

        trend = browser.evaluate("document.getElementById('trend').data.map((t) => t.y)")
        assert trend == [[3.0, 3.0, 9.0], [9.0]]  # gpt2 first: it regressed, marked once
        browser.screenshot(tmp_path / "report-filtered.png")
        assert browser.console_errors() == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
