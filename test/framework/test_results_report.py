"""The HTML report (test/common/results/report.py, page.py) and `report --output`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from test.common.results.__main__ import main
from test.common.results.report import failure_kind, write_report
from test.framework.conftest import REPO_ROOT
from test.framework.results_data import recorded

# Integration tests: renders the report page with plotly from DuckDB files; plain
# `pytest` counts them in one line, every nox session runs them (--run-slow).
pytestmark = pytest.mark.slow

pytest.importorskip("duckdb", reason="duckdb is needed for the results database")
pytest.importorskip("plotly", reason="plotly draws the report's charts")


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        (
            {"check_name": "forward", "outcome": "xfailed", "reason": "No module named 'timm'"},
            "missing dependency",
        ),
        (
            {"check_name": "loads", "outcome": "failed", "reason": "config has no attribute x"},
            "build",
        ),
        ({"check_name": "forward", "outcome": "error", "reason": "fixture raised"}, "build"),
        (
            {
                "check_name": "forward",
                "outcome": "failed",
                "reason": "the output contains NaN or inf",
            },
            "numeric",
        ),
        (
            {"check_name": "golden", "outcome": "failed", "reason": "max difference 0.3 > 0.0001"},
            "tolerance",
        ),
        (
            {
                "check_name": "forward",
                "outcome": "failed",
                "reason": "RuntimeError: shape mismatch",
            },
            "forward",
        ),
    ],
)
def test_failures_are_grouped_by_kind(row: dict, kind: str) -> None:
    assert failure_kind(row) == kind


def test_the_report_is_one_self_contained_page(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database = recorded(tmp_path / "history.duckdb")
    output = tmp_path / "out" / "report.html"
    assert main(["--db", str(database), "report", "--output", str(output)]) == 0
    assert re.match(r"wrote .*report.html \(\d+\.\d MB\) in \d+\.\d s", capsys.readouterr().out)
    page = output.read_text(encoding="utf-8")
    # Nothing fetched when the page is opened: no external script, style or image.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "Plotly.newPlot" in page
    assert (
        page.index("Compatibility matrix") < page.index("Pass rates") < page.index("What changed")
    )
    assert (
        page.index("What changed")
        < page.index("Latency and memory")
        < page.index("Failures by kind")
    )
    assert "slower: gpt2/forward [cpu]" in page
    assert "newly failing: bert/golden [cpu]" in page
    assert "Regressions: gpt2 [cpu]" in page
    assert "<h3>tolerance (1)</h3>" in page
    assert "<h3>missing dependency (1)</h3>" in page
    assert "Tests with real weights: 0; tiny random: 9" in page


def test_a_report_of_a_bad_database_is_an_error_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database = tmp_path / "history.duckdb"
    database.write_bytes(b"garbage" * 10)
    output = tmp_path / "report.html"
    assert main(["--db", str(database), "report", "--output", str(output)]) == 1
    assert "not a DuckDB database" in capsys.readouterr().err
    assert not output.exists()


def test_write_report_returns_the_size(tmp_path: Path) -> None:
    database = recorded(tmp_path / "history.duckdb")
    output = tmp_path / "report.html"
    assert write_report(database, output) == len(output.read_bytes())


def test_the_report_needs_no_pytest() -> None:
    """`nox -s report` installs duckdb and plotly only."""
    code = "import sys, test.common.results.report; print('pytest' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
