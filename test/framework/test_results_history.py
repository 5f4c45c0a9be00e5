"""History across recorded runs (test/common/results/history.py) and its command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from test.common.results import db
from test.common.results.__main__ import main
from test.common.results.history import history
from test.framework.results_data import all_passing, record_run

# Integration tests: every test records runs into a DuckDB file (~35 ms of CPU a
# connection); plain `pytest` counts them in one line, every nox session runs them
# (--run-slow).
pytestmark = pytest.mark.slow

pytest.importorskip("duckdb", reason="duckdb is needed for the results database")

ARCHITECTURES = ("bert", "gpt2", "vit")
STEADY = {"bert": 2.0, "gpt2": 3.0, "vit": 4.0}


def _history(path: Path) -> object:
    with db.connect(path) as connection:
        return history(connection)


def test_two_identical_runs_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "history.duckdb"
    for index in (1, 2):
        record_run(path, index, all_passing(ARCHITECTURES), STEADY)
    found = _history(path)
    assert found.nothing_changed
    assert found.compared_outcomes == 9
    assert found.compared_latencies == 3
    assert main(["--db", str(path), "history"]) == 0
    assert (
        "nothing changed: 9 outcomes compared, latency of 3 architectures"
        in capsys.readouterr().out
    )


def test_a_slowed_architecture_is_flagged_and_a_faster_one_too(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    record_run(path, 1, all_passing(ARCHITECTURES), STEADY)
    record_run(path, 2, all_passing(ARCHITECTURES), {**STEADY, "gpt2": 9.0, "vit": 1.0})
    grouped = _history(path).by_category()
    assert [(c.architecture, c.check) for c in grouped["slower"]] == [("gpt2", "forward")]
    assert "regression, median x3.000" in grouped["slower"][0].detail
    assert [c.architecture for c in grouped["faster"]] == ["vit"]


def test_newly_failing_and_newly_passing_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    before = {**all_passing(ARCHITECTURES), ("vit", "golden"): "failed"}
    after = {**all_passing(ARCHITECTURES), ("bert", "forward"): "failed"}
    record_run(path, 1, before)
    record_run(path, 2, after)
    found = _history(path)
    grouped = found.by_category()
    (failing,) = grouped["newly failing"]
    assert (failing.architecture, failing.check) == ("bert", "forward")
    assert "(passed -> failed): forward of bert: max difference" in failing.detail
    assert [(c.architecture, c.check) for c in grouped["newly passing"]] == [("vit", "golden")]
    text = "\n".join(found.lines())
    assert "newly failing (1):" in text
    assert "newly passing (1):" in text


def test_an_outcome_that_keeps_changing_is_flapping(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    for index, outcome in enumerate(("passed", "failed", "passed", "failed")):
        record_run(path, index, {("bert", "forward"): outcome})
    (change,) = _history(path).changes
    assert change.category == "flapping"
    assert "3 changes in the last 4 runs" in change.detail


def test_runs_of_another_fingerprint_or_incomplete_are_not_compared(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    record_run(path, 1, {("bert", "forward"): "failed"}, {"bert": 1.0}, fingerprint_id="other")
    record_run(path, 2, {("bert", "forward"): "failed"}, complete=False)
    record_run(path, 3, {("bert", "forward"): "passed"}, {"bert": 9.0})
    found = _history(path)
    assert found.previous is None
    assert "no earlier comparable run" in found.lines()[0]


def test_a_chosen_run_is_compared_with_the_one_before_it(tmp_path: Path) -> None:
    path = tmp_path / "history.duckdb"
    record_run(path, 1, {("bert", "forward"): "passed"})
    record_run(path, 2, {("bert", "forward"): "failed"})
    record_run(path, 3, {("bert", "forward"): "failed"})
    with db.connect(path) as connection:
        found = history(connection, "run0002")
        assert [c.category for c in found.changes] == ["newly failing"]
        with pytest.raises(db.ResultsDatabaseError, match="no complete run with an id"):
            history(connection, "nope")


def test_the_command_line_names_a_bad_database(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "history.duckdb"
    path.write_text("not a database at all")
    assert main(["--db", str(path), "history"]) == 1
    assert "not a DuckDB database" in capsys.readouterr().err
    assert path.read_text() == "not a database at all"
    empty = tmp_path / "empty.duckdb"
    record_run(empty, 1, {}, complete=False)
    assert main(["--db", str(empty), "history"]) == 1
    assert "no complete run recorded yet" in capsys.readouterr().err
