"""The backends' expectations end to end, in a pytester sandbox configured like the suite.

The sandbox runs two tiny torch modules through three backends built like the real
ones (test/common/backends/): the real `export`; `shifted`, built from export's
program (its output moved by SANDBOX_SHIFT, to stage a change); and `absent`, which
needs a package that is not installed.  `branchy` branches on a tensor's value, which
torch.export refuses: its `shifted` is then "not reached".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test.common.backends import expectations

SANDBOX = """
import os

import pytest
import torch

from test.common.backends.catalog import EXPORT, Backend, Tolerance
from test.common.backends.runners import Built
from test.common.backends.work import Work
from test.common.plugins.backend_report import check_observation


class Tanh(torch.nn.Module):
    def forward(self, x):
        return {"last_hidden_state": torch.tanh(x)}


class Branchy(torch.nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export refuses it
            return {"last_hidden_state": x}
        return {"last_hidden_state": -x}


def build_shifted(work):
    program = work.built["export"].artifact.module()
    shift = float(os.environ.get("SANDBOX_SHIFT", "0"))
    return Built(None, lambda args: program(*args) + shift)


SHIFTED = Backend("shifted", "export, moved", build_shifted, Tolerance(1e-4, 1e-4), needs=EXPORT)
ABSENT = Backend(
    "absent", "needs a package", build_shifted, Tolerance(1e-4, 1e-4),
    packages=(("no_such_module_here", "no-such-package"),),
)
BACKENDS = {backend.name: backend for backend in (EXPORT, SHIFTED, ABSENT)}
MODELS = {"branchy": Branchy, "tanh": Tanh}
WORK = {}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("model_type", list(MODELS))
def test_backend(model_type, backend, request):
    if model_type not in WORK:
        WORK[model_type] = Work(MODELS[model_type]().eval(), {"x": torch.ones(2, 3)})
    observation = WORK[model_type].observe(BACKENDS[backend])
    check_observation(request.node, model_type, backend, observation)
"""


@pytest.fixture
def sandbox(suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # The sandbox exports real torch modules (`nox -s framework` has no torch: skipped).
    pytest.importorskip("torch", reason="the sandbox's backends export torch modules")
    monkeypatch.delenv("SANDBOX_SHIFT", raising=False)
    suite_pytester.makepyfile(test_sandbox_backends=SANDBOX)
    return suite_pytester


def run(sandbox: pytest.Pytester, *args: str) -> pytest.RunResult:
    return sandbox.runpytest(f"--backend-expectations={sandbox.path / 'expected'}", *args)


def rows(sandbox: pytest.Pytester, backend: str) -> dict[str, expectations.Expectation]:
    return expectations.load(backend, sandbox.path / "expected")


@pytest.mark.slow  # a pytester sandbox that runs torch.export
def test_update_records_statuses_and_a_rerun_matches(sandbox: pytest.Pytester) -> None:
    recorded = run(sandbox, "--update-expectations")
    recorded.assert_outcomes(passed=2, xfailed=2, skipped=2)
    recorded.stdout.fnmatch_lines(
        [
            "backends: 2 architectures; export 1/2, shifted 1/2",
            "latency relative to eager (median): export *x, shifted *x",
            "export.csv: 2 changed or added",
            "  + branchy: fail",
            "  + tanh: pass",
        ]
    )
    export, shifted = rows(sandbox, "export"), rows(sandbox, "shifted")
    assert export["tanh"].status == "pass"
    assert export["branchy"].status == "fail"
    assert export["branchy"].reason.startswith("build: ")
    # A failed export leaves its dependant "not reached", not failed.
    assert shifted["branchy"] == expectations.Expectation("not reached", "export built nothing")
    # A missing package is a skip naming it, and never enters a file.
    assert not expectations.path_of("absent", sandbox.path / "expected").exists()
    checked = run(sandbox, "-rsx")
    checked.assert_outcomes(passed=2, xfailed=2, skipped=2)
    checked.stdout.fnmatch_lines(["*needs the no-such-package package, not installed*"])
    checked.stdout.fnmatch_lines(["*not reached (expected): export built nothing*"])


@pytest.mark.slow  # a pytester sandbox that runs torch.export
def test_a_new_failure_fails_with_the_update_command(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(sandbox, "--update-expectations").assert_outcomes(passed=2, xfailed=2, skipped=2)
    monkeypatch.setenv("SANDBOX_SHIFT", "0.5")
    result = run(sandbox)
    result.assert_outcomes(passed=1, failed=1, xfailed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*new failure: shifted on tanh: fail: max difference 0.5 (allowed 0.000176)*",
            "*nox -s backend-shifted -- --update-expectations -k tanh-shifted*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.slow  # a pytester sandbox that runs torch.export
def test_an_unexpected_pass_fails_and_the_update_prints_what_changed(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_SHIFT", "0.5")
    run(sandbox, "--update-expectations").assert_outcomes(passed=1, xfailed=3, skipped=2)
    assert rows(sandbox, "shifted")["tanh"].status == "fail"
    monkeypatch.delenv("SANDBOX_SHIFT")
    result = run(sandbox)
    result.assert_outcomes(passed=1, failed=1, xfailed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*unexpected pass: shifted on tanh: passes, but is expected to be fail*",
            "*nox -s backend-shifted -- --update-expectations -k tanh-shifted*",
        ]
    )
    updated = run(sandbox, "--update-expectations")
    updated.stdout.fnmatch_lines(["shifted.csv: 1 changed or added", "  ~ tanh: fail -> pass"])
    run(sandbox).assert_outcomes(passed=2, xfailed=2, skipped=2)


@pytest.mark.slow  # a pytester sandbox that runs torch.export
def test_a_corrupt_file_is_reported_and_kept(sandbox: pytest.Pytester) -> None:
    corrupt = sandbox.path / "expected" / "export.csv"
    corrupt.parent.mkdir()
    corrupt.write_text("architecture,status\nbert,pass\n", encoding="utf-8")
    result = run(sandbox, "--update-expectations")
    result.stdout.fnmatch_lines(["ERROR (file kept as it is): *export.csv: header*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert corrupt.read_text(encoding="utf-8") == "architecture,status\nbert,pass\n"


@pytest.mark.slow  # a pytester sandbox that runs torch.export
def test_an_unknown_backend_is_a_usage_error(sandbox: pytest.Pytester) -> None:
    result = run(sandbox, "--backends=export,tpu")
    result.stderr.fnmatch_lines(["*--backends: unknown backend tpu; known: export, compile*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_files_are_sorted_and_read_back(tmp_path: Path) -> None:
    observed = [
        ("vit", expectations.Expectation("pass", "", "1e-06")),
        ("bert", expectations.Expectation("fail", "build: Error: a, b", "")),
    ]
    assert expectations.update("onnx", observed, tmp_path) == [
        "  + bert: fail",
        "  + vit: pass",
    ]
    text = expectations.path_of("onnx", tmp_path).read_text(encoding="utf-8")
    assert text.splitlines()[1:] == ['bert,fail,,"build: Error: a, b"', "vit,pass,1e-06,"]
    assert expectations.load("onnx", tmp_path) == dict(observed)
    assert expectations.update("onnx", observed, tmp_path) == []  # nothing to write


def test_the_committed_files_parse_and_are_as_an_update_writes_them() -> None:
    """A hand edit that breaks a file (an unquoted comma in a reason) or its order, or a
    row for an unknown backend or architecture, fails here rather than in a sweep."""
    from test.common.backends.catalog import BACKENDS_BY_NAME
    from test.common.models.registry import load_registry

    registry = load_registry()
    paths = sorted(expectations.DATA_DIR.glob("*.csv"))
    assert paths
    for path in paths:
        assert path.stem in BACKENDS_BY_NAME, path.name
        rows = expectations.load(path.stem)
        assert expectations.render(rows) == path.read_text(encoding="utf-8"), path.name
        assert set(rows) <= set(registry), f"{path.name}: {sorted(set(rows) - set(registry))}"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("architecture,status,difference,reason\nbert,passed,,\n", "status 'passed'"),
        ("architecture,status,difference,reason\nbert,pass,,\nbert,pass,,\n", "twice"),
        ("architecture,status,difference,reason\nbert,pass\n", "2 fields"),
    ],
)
def test_malformed_rows_are_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        expectations.parse(text)


@pytest.mark.parametrize(
    ("expected", "status", "outcome"),
    [
        (None, "pass", "pass"),
        (None, "fail", "new failure"),
        ("pass", "not reached", "new failure"),
        ("fail", "fail", "xfail"),
        ("not reached", "not reached", "xfail"),
        ("fail", "pass", "unexpected pass"),
        ("fail", "not reached", "changed"),
    ],
)
def test_judge(expected: str | None, status: str, outcome: str) -> None:
    row = expectations.Expectation(expected) if expected else None
    assert expectations.judge(row, status, "why")[0] == outcome


def test_describe_gives_statuses_and_difference_quantiles(tmp_path: Path) -> None:
    rows = {
        f"arch{index}": expectations.Expectation("pass", "", f"{index}e-06")
        for index in range(1, 11)
    }
    rows["broken"] = expectations.Expectation("fail", "build: x")
    rows["far"] = expectations.Expectation("fail", "max difference 0.5", "0.5")
    expectations.write("onnx", rows, tmp_path)
    assert expectations.difference_quantiles(rows) == (10, [5e-06, 9e-06, 1e-05, 1e-05])
    assert expectations.describe(tmp_path) == [
        "onnx: 12 architectures (10 pass, 2 fail, 0 not reached); "
        "difference over 10 passes: q0.5 5e-06, q0.9 9e-06, q0.99 1e-05, q1 1e-05; "
        "failed comparisons: far 0.5"
    ]
    assert expectations.difference_quantiles({}) == (0, [])


CRASHING_SANDBOX = """
import os

import pytest
import torch

from test.common.backends.catalog import Backend, Tolerance
from test.common.backends.work import Work
from test.common.plugins.backend_report import check_observation, recorded_crash


def build_crashing(work):
    os._exit(3)  # as OpenVINO's SIGFPE: the process dies in the middle of the test


CRASHING = Backend("crashing", "dies", build_crashing, Tolerance(1e-4, 1e-4))


class Tanh(torch.nn.Module):
    def forward(self, x):
        return {"last_hidden_state": torch.tanh(x)}


@pytest.mark.parametrize(("model_type", "backend"), [("tanh", "crashing")], ids=["tanh-crashing"])
def test_backend(model_type, backend, request):
    recorded_crash(request.node, model_type, backend)
    work = Work(Tanh().eval(), {"x": torch.ones(2, 3)})
    check_observation(request.node, model_type, backend, work.observe(CRASHING))
"""


@pytest.mark.slow  # xdist workers die and are replaced
def test_a_crash_is_recorded_from_xdist_and_then_not_run(
    suite_pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("torch", reason="the sandbox's backend wraps a torch module")
    suite_pytester.makepyfile(test_sandbox_crash=CRASHING_SANDBOX)
    xdist = ("-n", "1", "-p", "xdist")
    unrecorded = run(suite_pytester, *xdist)
    unrecorded.assert_outcomes(failed=1)
    unrecorded.stdout.fnmatch_lines(
        [
            "backends: 1 architectures; crashing 0/1",
            "crash: crashing on tanh killed its worker; to record it (with -n 1 or more): "
            "nox -s backend-crashing -- --update-expectations -k tanh-crashing",
        ]
    )
    recorded = run(suite_pytester, *xdist, "--update-expectations")
    recorded.stdout.fnmatch_lines(["crashing.csv: 1 changed or added", "  + tanh: crash"])
    assert rows(suite_pytester, "crashing")["tanh"].status == "crash"
    # Recorded, it is not run again: without xdist it would have ended this run.
    checked = run(suite_pytester, "-rx")
    checked.assert_outcomes(xfailed=1)
    checked.stdout.fnmatch_lines(
        ["*crashing 0/1*", "*crash (expected, not run): the process died running it*"]
    )
    assert checked.ret == pytest.ExitCode.OK


def test_only_a_crashed_backend_item_gives_a_crash_record() -> None:
    from test.common.plugins.backend_report import crash_record

    def report(nodeid: str, when: str = "???", outcome: str = "failed") -> pytest.TestReport:
        return pytest.TestReport(nodeid, ("f", None, "f"), {}, outcome, "worker crashed", when)

    crashed = crash_record(report("t.py::test_backend[dab-detr-browser-webgpu]"))
    assert crashed is not None
    assert (crashed["architecture"], crashed["backend"], crashed["status"]) == (
        "dab-detr",
        "browser-webgpu",
        "crash",
    )
    assert crash_record(report("t.py::test_backend[tanh-crashing]"))["backend"] == "crashing"
    assert crash_record(report("t.py::test_backend[bert-onnx]", when="call")) is None
    assert crash_record(report("t.py::test_backend[bert-onnx]", outcome="passed")) is None
    assert crash_record(report("t.py::test_forward[bert-cpu]")) is None
