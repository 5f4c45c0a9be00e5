"""The recorder plugin (test/common/results/recorder.py), run in a pytest sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from test.common.results import db
from test.common.results.history import history
from test.framework.conftest import REPO_ROOT

pytest.importorskip("duckdb", reason="duckdb is needed for the results database")

#: Tests shaped like the battery's (architecture, device) and the heads' (model_class).
#: An architecture named in SLOW_ARCH sleeps five times longer in its forward.
SANDBOX_TESTS = """
import os
import time

import pytest
import torch

from test.common.results.recorder import measure_forward

ARCHITECTURES = ["alpha", "beta"]


@pytest.fixture(scope="module")
def model():
    return torch.nn.Linear(16, 16)


@pytest.mark.text
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward(architecture, device, model, request):
    delay = 0.010 if os.environ.get("SLOW_ARCH") == architecture else 0.002
    inputs = torch.ones(2, 16)

    def forward():
        time.sleep(delay)
        return model(inputs)

    measure_forward(request.node, model, forward, device)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_golden(architecture, device):
    assert architecture != "beta", "golden of beta: max difference 0.5 > 0.0001"


@pytest.mark.xfail(reason="needs timm", strict=True)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_optional(architecture, device):
    raise ImportError("No module named 'timm'")


@pytest.mark.parametrize("model_class", ["BertForMaskedLM"])
def test_train_step(model_class, device):
    pytest.skip("no optimizer in this sandbox")
"""
#: The sandbox's architectures are no registry rows: the expectations plugin, which
#: looks every architecture of a model run up, stays out of model runs here.
NO_EXPECTATIONS = ("-p", "no:test.common.plugins.expectations")
CRASHING_TEST = """
import os

def test_one():
    assert True

def test_crashes():
    os._exit(3)
"""


@pytest.fixture
def sandbox(suite_pytester: pytest.Pytester) -> pytest.Pytester:
    # Here, not at the top: collecting this module in a bare `pytest` must not import torch.
    pytest.importorskip("torch", reason="the measured forward is a torch module")
    suite_pytester.makepyfile(test_sandbox=SANDBOX_TESTS)
    return suite_pytester


def _rows(path: Path, sql: str) -> list[dict]:
    with db.connect(path) as connection:
        return db.rows(connection, sql)


def _pick(row: dict, *columns: str) -> tuple:
    return tuple(row[column] for column in columns)


def _outcomes(path: Path) -> dict[str, dict]:
    return {row["node_id"].split("::")[1]: row for row in _rows(path, "SELECT * FROM outcomes")}


def test_every_outcome_is_recorded_with_its_check_and_reason(
    sandbox: pytest.Pytester, tmp_path: Path
) -> None:
    path = tmp_path / "results.duckdb"
    result = sandbox.runpytest(f"--results-db={path}")
    result.assert_outcomes(passed=3, failed=1, xfailed=2, skipped=1)
    result.stdout.fnmatch_lines(["results: run * recorded in *results.duckdb (7 outcomes, 2 *"])
    outcomes = _outcomes(path)
    golden = outcomes["test_golden[beta-cpu]"]
    assert _pick(golden, "check_name", "architecture", "platform", "outcome") == (
        ("golden", "beta", "cpu", "failed")
    )
    assert golden["reason"].startswith("AssertionError: golden of beta: max difference 0.5")
    assert golden["model_class"] == "Linear"  # from beta's measured forward
    assert outcomes["test_optional[alpha-cpu]"]["outcome"] == "xfailed"
    assert outcomes["test_optional[alpha-cpu]"]["reason"] == "needs timm"
    train = outcomes["test_train_step[BertForMaskedLM-cpu]"]
    assert _pick(train, "outcome", "model_class", "check_name") == (
        ("skipped", "BertForMaskedLM", "train_step")
    )
    assert train["reason"] == "no optimizer in this sandbox"
    assert outcomes["test_forward[alpha-cpu]"]["modality"] == "text"
    (run,) = _rows(path, "SELECT * FROM runs")
    assert run["complete"]
    assert run["exit_status"] == 1
    assert "--results-db" in run["command_line"]
    measured = _rows(path, "SELECT * FROM measurements ORDER BY architecture")
    assert [m["architecture"] for m in measured] == ["alpha", "beta"]
    assert all(3 <= len(m["latency_samples_ms"]) <= 10 for m in measured)
    assert all(m["parameters"] == 16 * 16 + 16 for m in measured)
    assert all(m["latency_median_ms"] >= 2.0 for m in measured)


@pytest.mark.slow  # two xdist workers start
def test_under_xdist_the_controller_writes_everything_once(
    sandbox: pytest.Pytester, tmp_path: Path
) -> None:
    path = tmp_path / "results.duckdb"
    result = sandbox.runpytest(f"--results-db={path}", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=3, failed=1, xfailed=2, skipped=1)
    assert len(_outcomes(path)) == 7
    assert len(_rows(path, "SELECT * FROM measurements")) == 2
    assert len(_rows(path, "SELECT * FROM runs")) == 1


@pytest.mark.slow  # two sandbox runs, one with a deliberately slowed forward
def test_a_deliberately_slowed_architecture_is_flagged(
    sandbox: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.duckdb"
    for slowed in ("", "beta"):
        monkeypatch.setenv("SLOW_ARCH", slowed)
        sandbox.runpytest(f"--results-db={path}").assert_outcomes(
            passed=3, failed=1, xfailed=2, skipped=1
        )
    with db.connect(path) as connection:
        changes = history(connection).changes
    assert [(c.category, c.architecture) for c in changes] == [("slower", "beta")]
    assert "regression" in changes[0].detail


@pytest.mark.slow  # the crash must end a real pytest process
def test_a_crashed_run_leaves_a_readable_database_and_an_incomplete_run(
    suite_pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite_pytester.makepyfile(test_crash=CRASHING_TEST)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the subprocess imports test.common
    path = tmp_path / "results.duckdb"
    result = suite_pytester.runpytest_subprocess(f"--results-db={path}", "-p", "no:cacheprovider")
    assert result.ret == 3
    (run,) = _rows(path, "SELECT complete, finished_at, exit_status FROM runs")
    assert run == {"complete": False, "finished_at": None, "exit_status": None}


def test_a_bad_database_file_stops_the_run_and_is_kept(
    sandbox: pytest.Pytester, tmp_path: Path
) -> None:
    path = tmp_path / "results.duckdb"
    path.write_bytes(b"\x00" * 100)
    result = sandbox.runpytest(f"--results-db={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*results database: *results.duckdb: not a DuckDB database*"])
    assert "INTERNALERROR" not in result.stderr.str()
    assert path.read_bytes() == b"\x00" * 100


def test_nothing_is_recorded_unless_asked_or_a_model_run(sandbox: pytest.Pytester) -> None:
    default = sandbox.path / db.DEFAULT_PATH
    outcomes = {"passed": 3, "failed": 1, "xfailed": 2, "skipped": 1}
    sandbox.runpytest().assert_outcomes(**outcomes)
    assert not default.exists()
    model_run = ("--run-model-tests", *NO_EXPECTATIONS)
    sandbox.runpytest(*model_run, "--no-results-db").assert_outcomes(**outcomes)
    assert not default.exists()
    sandbox.runpytest(*model_run).assert_outcomes(**outcomes)
    assert default.is_file()
    assert len(_rows(default, "SELECT * FROM runs")) == 1


def test_a_model_run_without_duckdb_says_it_was_not_recorded(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test.common.results import recorder

    monkeypatch.setattr(recorder, "_duckdb_installed", lambda: False)
    result = sandbox.runpytest("--run-model-tests", *NO_EXPECTATIONS)
    result.assert_outcomes(passed=3, failed=1, xfailed=2, skipped=1)
    result.stdout.fnmatch_lines(["results: not recorded: duckdb is not installed*"])
    assert not (sandbox.path / db.DEFAULT_PATH).exists()


@pytest.mark.slow  # an xdist worker dies and is replaced
def test_a_crashed_xdist_worker_is_recorded_as_a_failure(
    suite_pytester: pytest.Pytester, tmp_path: Path
) -> None:
    suite_pytester.makepyfile(test_crash=CRASHING_TEST)
    path = tmp_path / "results.duckdb"
    suite_pytester.runpytest(f"--results-db={path}", "-n", "2", "-p", "xdist")
    outcomes = _outcomes(path)
    assert outcomes["test_one"]["outcome"] == "passed"
    assert outcomes["test_crashes"]["outcome"] == "failed"
    (run,) = _rows(path, "SELECT complete FROM runs")
    assert run["complete"]
