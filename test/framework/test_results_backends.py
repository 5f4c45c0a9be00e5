"""Backend results in the results history: recorded, compared between runs, reported.

The sandbox's test hands observations to the real `check_observation`
(test/common/plugins/backend_report.py) as test_backends.py does, so the recorder
reads what a real sweep sends; the observations are plain data, so no torch is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test.common.backends import expectations
from test.common.results import db
from test.common.results.__main__ import main
from test.common.results.history import history
from test.framework.results_data import all_passing, record_run

# Integration tests: DuckDB files and pytester sandboxes; plain `pytest` counts them in
# one line, every nox session runs them (--run-slow).
pytestmark = pytest.mark.slow

pytest.importorskip("duckdb", reason="duckdb is needed for the results database")

SANDBOX = """
import dataclasses
import os

import pytest

from test.common.plugins.backend_report import check_observation


@dataclasses.dataclass
class Observed:
    # The fields of test/common/backends/work.py's Observation, which needs torch.
    status: str
    reason: str = ""
    difference: float | None = None
    latency_ratio: float | None = None


OBSERVED = {
    ("alpha", "export"): Observed("pass", "", 1.5e-6, 1.25),
    ("alpha", "onnx"): Observed("pass", "", 2.5e-5, 0.5),
    ("beta", "export"): Observed("fail", "build: data-dependent branch"),
    ("beta", "onnx"): Observed("not reached", "export built nothing"),
}


@pytest.mark.parametrize("backend", ["export", "onnx"])
@pytest.mark.parametrize("model_type", ["alpha", "beta"])
def test_backend(model_type, backend, request):
    observed = OBSERVED[(model_type, backend)]
    if os.environ.get("BROKEN") == f"{model_type}-{backend}":
        observed = Observed("fail", "max difference 0.3 (allowed 0.001)", 0.3, 0.5)
    check_observation(request.node, model_type, backend, observed)
"""


@pytest.fixture
def sandbox(suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("BROKEN", raising=False)
    suite_pytester.makepyfile(test_sandbox_backends=SANDBOX)
    expected = suite_pytester.path / "expected"
    expected.mkdir()
    for backend, status, reason in (
        ("export", "fail", "build: data-dependent branch"),
        ("onnx", "not reached", "export built nothing"),
    ):
        rows = {"beta": expectations.Expectation(status, reason)}
        assert expectations.write(backend, rows, expected)
    return suite_pytester


def _run(sandbox: pytest.Pytester, path: Path, *args: str) -> pytest.RunResult:
    return sandbox.runpytest(
        f"--results-db={path}", f"--backend-expectations={sandbox.path / 'expected'}", *args
    )


def _backend_rows(path: Path) -> dict[tuple[str, str], dict]:
    with db.connect(path) as connection:
        found = db.rows(connection, "SELECT * FROM backend_results")
    return {(row["architecture"], row["backend"]): row for row in found}


def test_backend_observations_are_recorded(sandbox: pytest.Pytester, tmp_path: Path) -> None:
    path = tmp_path / "results.duckdb"
    result = _run(sandbox, path)
    result.assert_outcomes(passed=2, xfailed=2)
    result.stdout.fnmatch_lines(["results: run * (4 outcomes, 0 measurements, 4 backend results)*"])
    rows = _backend_rows(path)
    assert {key: row["status"] for key, row in rows.items()} == {
        ("alpha", "export"): "pass",
        ("alpha", "onnx"): "pass",
        ("beta", "export"): "fail",
        ("beta", "onnx"): "not reached",
    }
    onnx = rows[("alpha", "onnx")]
    assert (onnx["difference"], onnx["latency_ratio"], onnx["platform"]) == (2.5e-5, 0.5, "cpu")
    assert onnx["node_id"].endswith("test_backend[alpha-onnx]")
    assert rows[("beta", "onnx")]["reason"] == "export built nothing"
    assert rows[("beta", "onnx")]["difference"] is None
    assert rows[("beta", "onnx")]["latency_ratio"] is None


def test_under_xdist_the_controller_writes_the_backend_results_once(
    sandbox: pytest.Pytester, tmp_path: Path
) -> None:
    path = tmp_path / "results.duckdb"
    _run(sandbox, path, "-n", "2", "-p", "xdist").assert_outcomes(passed=2, xfailed=2)
    assert len(_backend_rows(path)) == 4


def test_history_shows_a_newly_failing_backend(
    sandbox: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.duckdb"
    _run(sandbox, path).assert_outcomes(passed=2, xfailed=2)
    monkeypatch.setenv("BROKEN", "alpha-onnx")
    _run(sandbox, path).assert_outcomes(passed=1, failed=1, xfailed=2)
    with db.connect(path) as connection:
        found = history(connection)
    described = [change.describe() for change in found.changes]
    assert described == [
        "newly failing: alpha/backend [cpu] (passed -> failed): Failed: new failure: "
        "onnx on alpha: fail: max difference 0.3 (allowed 0.001)",
        "backend newly failing: alpha/onnx [cpu] (pass -> fail): "
        "max difference 0.3 (allowed 0.001)",
    ]
    assert found.compared_backends == 4


def _backend_history(tmp_path: Path, *runs: dict) -> list[str]:
    path = tmp_path / "history.duckdb"
    for index, backends in enumerate(runs, start=1):
        record_run(path, index, all_passing(["bert"]), backends=backends)
    with db.connect(path) as connection:
        return history(connection).lines()


def test_status_changes_and_moved_latency_ratios(tmp_path: Path) -> None:
    before = {
        ("bert", "export"): ("pass", 1.2),
        ("bert", "onnx"): ("pass", 0.5),
        ("gpt2", "onnx"): ("fail", 0.4),
        ("gpt2", "openvino"): ("not reached", None),
        ("vit", "compile"): ("pass", 0.4),
    }
    after = {
        **before,
        ("bert", "export"): ("pass", 3.0),  # x2.5: slower
        ("bert", "onnx"): ("not reached", None),
        ("gpt2", "onnx"): ("pass", 0.4),
        ("gpt2", "openvino"): ("fail", 0.3),  # not passing before either: no change
        ("vit", "compile"): ("pass", 0.7),  # x1.75: within the noise floor
    }
    lines = _backend_history(tmp_path, before, before, before, after)
    assert lines[2:] == [
        "backend newly failing (1):",
        "  backend newly failing: bert/onnx [cpu] (pass -> not reached): export built nothing",
        "backend newly passing (1):",
        "  backend newly passing: gpt2/onnx [cpu] (fail -> pass)",
        "backend slower (1):",
        "  backend slower: bert/export [cpu] latency x3 of eager, was x1.2 (median of 3 "
        "earlier runs): moved x2.50, beyond the noise floor x2",
    ]


def test_a_backend_is_compared_with_its_own_latest_observation(tmp_path: Path) -> None:
    # Runs without it between (a model run, or another shard of the sweep) do not hide
    # a change; the baseline ratio is the median of its earlier ratios.
    lines = _backend_history(
        tmp_path,
        {("bert", "onnx"): ("pass", 0.4)},
        {("bert", "onnx"): ("pass", 0.9)},
        {("bert", "onnx"): ("pass", 0.5)},
        {("gpt2", "onnx"): ("pass", 0.5)},
        {("bert", "onnx"): ("fail", 0.2)},
    )
    assert lines[2:] == [
        "backend newly failing (1):",
        "  backend newly failing: bert/onnx [cpu] (pass -> fail): "
        "max difference 0.3 (allowed 0.001)",
        "backend faster (1):",
        "  backend faster: bert/onnx [cpu] latency x0.2 of eager, was x0.5 (median of 3 "
        "earlier runs): moved x0.40, beyond the noise floor x2",
    ]


def test_a_ratio_with_fewer_than_three_earlier_runs_is_not_judged(tmp_path: Path) -> None:
    # Measured: one earlier ratio is too noisy a baseline (7 of 22 moved x2 or more).
    ratios = [{("bert", "onnx"): ("pass", ratio)} for ratio in (0.4, 0.5, 2.0)]
    assert _backend_history(tmp_path, *ratios)[-1].startswith("nothing changed")


def test_unchanged_backends_are_counted_as_compared(tmp_path: Path) -> None:
    same = {("bert", "onnx"): ("pass", 0.5), ("bert", "export"): ("fail", None)}
    lines = _backend_history(tmp_path, same, same)
    assert lines[-1] == (
        "nothing changed: 3 outcomes compared, latency of 0 architectures compared, "
        "2 backend results compared, no regression"
    )


@pytest.mark.parametrize("with_backends", [True, False], ids=["backends", "none"])
def test_the_report_has_a_backends_matrix_only_with_backend_results(
    tmp_path: Path, with_backends: bool
) -> None:
    pytest.importorskip("plotly", reason="plotly draws the report's charts")
    path = tmp_path / "history.duckdb"
    backends = {
        ("bert", "export"): ("pass", 1.2),
        ("bert", "onnx"): ("fail", 0.5),
        ("gpt2", "onnx"): ("not reached", None),
    }
    record_run(path, 1, all_passing(["bert", "gpt2"]), backends=backends if with_backends else {})
    output = tmp_path / "report.html"
    assert main(["--db", str(path), "report", "--output", str(output)]) == 0
    page = output.read_text(encoding="utf-8")
    assert ('<h2 id="backends">Backends</h2>' in page) is with_backends
    assert ('id="backends-matrix"' in page) is with_backends
    if with_backends:
        assert (
            page.index("Compatibility matrix") < page.index("Backends<") < page.index('id="rates"')
        )
        assert '"x":["export","onnx"]' in page  # columns in the catalog's order
        assert '"y":["bert","gpt2"]' in page
        assert '"z":[[0,1],[null,2]]' in page  # pass, fail; not run, not reached
        assert '"text":[["x1.2","x0.5"],["",""]]' in page
        assert "max difference 0.3 (allowed 0.001)" in page
        assert "2 architectures." in page


def test_the_backends_matrix_names_the_platform_when_several_were_recorded(
    tmp_path: Path,
) -> None:
    from test.common.results.report import backend_matrix

    path = tmp_path / "history.duckdb"
    passing = all_passing(["bert"])
    record_run(path, 1, passing, backends={("bert", "onnx"): ("pass", 37.4)})
    record_run(path, 2, passing, platform="cuda", backends={("bert", "export"): ("pass", 0.45)})
    with db.connect(path) as connection:
        matrix = backend_matrix(connection)
    assert matrix["columns"] == ["cuda · export", "cpu · onnx"]
    assert matrix["text"] == [["x0.45", "x37"]]
    assert "recorded 2026-01-01 14:00 UTC" in matrix["hover"][0][0]


def test_a_version_1_database_is_reported_without_backends_and_left_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("plotly", reason="plotly draws the report's charts")
    import duckdb

    path = tmp_path / "history.duckdb"
    for index in (1, 2):
        record_run(path, index, all_passing(["bert"]))
    connection = duckdb.connect(str(path))  # back to version 1: without backend_results
    connection.execute("DROP TABLE backend_results; UPDATE schema_info SET version = 1")
    connection.close()
    before = path.read_bytes()
    assert main(["--db", str(path), "history"]) == 0
    assert "nothing changed: 3 outcomes compared" in capsys.readouterr().out
    assert main(["--db", str(path), "report", "--output", str(tmp_path / "report.html")]) == 0
    assert 'id="backends-matrix"' not in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert path.read_bytes() == before
