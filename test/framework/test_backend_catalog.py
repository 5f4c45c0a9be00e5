"""The backends' table, its comparisons, its nox sessions and the end-of-run line."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from test.common.backends import catalog
from test.common.backends.catalog import BACKENDS, BACKENDS_BY_NAME, Backend, Tolerance
from test.common.models.expectations import missing_packages
from test.common.models.registry import load_registry
from test.common.plugins import sharding
from test.common.plugins.backend_report import summary_lines
from test.framework.conftest import REPO_ROOT


def test_select_keeps_the_table_order_and_rejects_unknown_names() -> None:
    assert [b.name for b in catalog.select("int8,export")] == ["export", "int8"]
    assert catalog.select(None) == BACKENDS
    with pytest.raises(ValueError, match="unknown backend tpu; known: export"):
        catalog.select("export,tpu")


def test_dependants_inherit_their_dependency_packages() -> None:
    absent = Backend("absent", "", EXPORT_BUILD, Tolerance(0, 0), packages=(("no_such_x", "x"),))
    child = Backend("child", "", EXPORT_BUILD, Tolerance(0, 0), needs=absent)
    assert child.missing_packages_with_needs() == ["x"]
    assert child.pip_packages_with_needs() == ["x"]
    assert BACKENDS_BY_NAME["onnx"].needs is BACKENDS_BY_NAME["export"]


EXPORT_BUILD = BACKENDS_BY_NAME["export"].build


@pytest.mark.slow  # imports torch (a second of CPU): not in a plain `pytest`
def test_tolerance_and_agreement_compare_like_they_say() -> None:
    torch = pytest.importorskip("torch")
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert Tolerance(1e-4, 1e-4).compare(expected + 1e-4, expected)[0]
    assert not Tolerance(1e-4, 1e-4).compare(expected + 1e-3, expected)[0]
    assert not Tolerance(1e-4, 1e-4).compare(expected.flatten(), expected)[0]
    agreement = catalog.Agreement(min_cosine=0.99, min_top1=0.9)
    agreed, difference, detail = agreement.compare(expected, expected, logits=True)
    assert agreed
    assert difference == pytest.approx(0, abs=1e-6)
    assert "top-1 agreement 1.000" in detail
    swapped = expected.flip(-1)  # every arg-max moves
    assert not agreement.compare(swapped, expected, logits=True)[0]


def test_pr_sample_names_registered_architectures_that_run_forward() -> None:
    registry = load_registry()
    for model_type in catalog.PR_SAMPLE:
        assert model_type in registry, model_type
        assert not registry[model_type].expected_failure_of("forward"), model_type
    assert len({registry[m].modality for m in catalog.PR_SAMPLE}) == 7  # all but "other"


def test_a_backend_timeout_marks_its_items_only() -> None:
    from test.improved.test_backends import _params

    options = {"--backends": "export,compile", "--backend-sample": "pr"}
    config = types.SimpleNamespace(getoption=options.__getitem__)
    timeouts = {
        param.id: [mark.args for mark in param.marks if mark.name == "timeout"]
        for param in _params(config)
    }
    assert timeouts["bert-compile"] == [(BACKENDS_BY_NAME["compile"].timeout,)]
    assert timeouts["bert-export"] == []  # pytest.ini's
    assert BACKENDS_BY_NAME["compile"].timeout > 300


def test_a_backend_on_an_accelerator_is_a_column_of_its_own() -> None:
    from test.common.backends import expectations
    from test.common.plugins.backend_report import crash_record

    export_cuda = BACKENDS_BY_NAME["export-cuda"]
    assert export_cuda.summary == f"{BACKENDS_BY_NAME['export'].summary}, on cuda"
    assert (export_cuda.platform, export_cuda.marker) == ("cuda", "cuda")
    assert export_cuda.build is EXPORT_BUILD
    assert export_cuda.check == Tolerance(1e-4, 1e-4)
    assert BACKENDS_BY_NAME["compile-cuda"].timeout == BACKENDS_BY_NAME["compile"].timeout
    assert expectations.path_of("export-cuda").name == "export-cuda.csv"
    assert expectations.update_command("export-cuda", "bert") == (
        "nox -s backend-export-cuda -- --update-expectations -k bert-export-cuda"
    )
    report = types.SimpleNamespace(
        when="???", failed=True, nodeid="t.py::test_backend[gpt2-export-cuda]"
    )
    assert crash_record(report)["backend"] == "export-cuda"
    assert crash_record(report)["architecture"] == "gpt2"
    records = [
        {"architecture": "bert", "backend": "export-cuda", "status": "pass"},
        {"architecture": "bert", "backend": "export", "status": "pass"},
    ]
    assert summary_lines(records)[0] == "backends: 1 architectures; export 1/1, export-cuda 1/1"


def test_only_a_cpu_backend_of_torch_alone_moves_to_a_torch_platform() -> None:
    with pytest.raises(ValueError, match="only a CPU backend of torch alone"):
        catalog.on_platform(BACKENDS_BY_NAME["onnx"], "cuda")  # built from export's program
    with pytest.raises(ValueError, match="only a CPU backend of torch alone"):
        catalog.on_platform(BACKENDS_BY_NAME["export-cuda"], "rocm")
    with pytest.raises(ValueError, match="'webgpu' is not a torch platform"):
        catalog.on_platform(BACKENDS_BY_NAME["export"], "webgpu")


def test_an_absent_platform_is_named_with_what_its_probe_found() -> None:
    from test.common import hardware

    for platform in ("cuda", "rocm", "mps", "xpu"):
        info = hardware.probe_platform(platform)
        reason = catalog.platform_absent(platform)
        assert reason == (None if info.available else f"no {platform} device: {info.checked}")
    assert BACKENDS_BY_NAME["compile-cuda"].absent_api() == catalog.platform_absent("cuda")


def test_accelerator_backends_are_collected_where_their_platform_is_selected() -> None:
    from test.improved.test_backends import _params

    def ids(**options: str | None) -> set[str]:
        options = {"--backend-sample": "pr", "--device": "cpu", **options}
        config = types.SimpleNamespace(getoption=options.__getitem__)
        return {param.id for param in _params(config) if param.id.startswith("bert-")}

    on_cpu = {f"bert-{backend.name}" for backend in BACKENDS if backend.platform == "cpu"}
    assert ids(**{"--backends": None}) == ids(**{"--backends": "all"}) == on_cpu
    # Named one by one, it is collected (and skipped by its marker where CUDA is absent).
    assert ids(**{"--backends": "export,export-cuda"}) == {"bert-export", "bert-export-cuda"}
    options = {"--backends": "compile-cuda", "--backend-sample": "pr", "--device": "cpu"}
    (param, *_) = _params(types.SimpleNamespace(getoption=options.__getitem__))
    assert "cuda" in {mark.name for mark in param.marks}


def test_backend_items_of_one_architecture_share_a_shard() -> None:
    def item(nodeid: str, **params: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(nodeid=nodeid, callspec=types.SimpleNamespace(params=params))

    onnx = item("t.py::test_backend[bert-onnx]", model_type="bert", backend_name="onnx")
    battery = item("t.py::test_forward[bert]", architecture="bert")
    assert sharding.shard_key(onnx) == sharding.shard_key(battery) == "architecture:bert"


def test_summary_counts_passes_per_backend_in_table_order() -> None:
    records = [
        {"architecture": "bert", "backend": "onnx", "status": "pass", "latency_ratio": 0.5},
        {"architecture": "bert", "backend": "export", "status": "pass", "latency_ratio": 1.0},
        {"architecture": "gpt2", "backend": "export", "status": "fail", "latency_ratio": None},
        {"architecture": "gpt2", "backend": "onnx", "status": "not reached"},
    ]
    assert summary_lines(records) == [
        "backends: 2 architectures; export 1/2, onnx 1/2",
        "latency relative to eager (median): export 1x, onnx 0.5x",
    ]


def test_browser_names_what_it_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test.common.backends import browser

    monkeypatch.setenv("ORT_WEB_DIST", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert browser.missing() == ["chromium (Debian package)", "onnxruntime-web (npm ci)"]
    assert BACKENDS_BY_NAME["browser"].missing_packages_with_needs()[:2] == browser.missing()


BACKENDS_MODULE = """
def test_backend():
    pass
"""


def test_the_backends_module_runs_only_when_backends_are_asked_for(
    suite_pytester: pytest.Pytester,
) -> None:
    suite_pytester.makepyfile(test_backends=BACKENDS_MODULE, test_other="def test_x(): pass")
    # A model run (`nox -s models-cpu` collects every module) leaves the sweep out...
    suite_pytester.runpytest().assert_outcomes(passed=1)
    # ...the backends sessions name them, and a module named on the command line runs.
    suite_pytester.runpytest("--backends=all").assert_outcomes(passed=2)
    suite_pytester.runpytest("--backend-sample=pr").assert_outcomes(passed=2)
    suite_pytester.runpytest("test_backends.py").assert_outcomes(passed=1)


def run_the_backends_module(pytester: pytest.Pytester, *options: str) -> pytest.RunResult:
    """test/improved/test_backends.py itself, run on the CPU with `options`."""
    module = (REPO_ROOT / "test" / "improved" / "test_backends.py").read_text(encoding="utf-8")
    pytester.makepyfile(test_backends=module)
    return pytester.runpytest(
        "--run-model-tests", "--device=cpu", "--no-results-db", "-rs", *options
    )


def test_an_architecture_whose_package_is_missing_is_a_skip_naming_it(
    suite_pytester: pytest.Pytester,
) -> None:
    """dinat's row requires natten: each backend's item skips naming it, before any model
    is built (so nothing enters an expectation file), as the battery's items do."""
    if not missing_packages(["natten"]):
        pytest.skip("natten is installed here: dinat runs")
    result = run_the_backends_module(suite_pytester, "--backends=export,onnx", "-k", "dinat-")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*dinat needs natten, which is not installed*"])


def test_a_backend_on_an_absent_accelerator_is_a_skip_naming_it(
    suite_pytester: pytest.Pytester,
) -> None:
    from test.common import hardware

    info = hardware.probe_platform("cuda")
    if info.available:
        pytest.skip("CUDA is present here: export-cuda runs")
    result = run_the_backends_module(
        suite_pytester, "--backends=export-cuda,compile-cuda", "--backend-sample=pr", "-k", "bert-"
    )
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f"*requires cuda: {info.checked}*"])


@pytest.mark.slow  # imports torch (a second of CPU): not in a plain `pytest`
def test_top1_agreement_counts_positions_exactly() -> None:
    """Nine of ten arg-max positions equal is an agreement of 0.9, which meets 0.9 (a
    float32 mean made it 0.8999999761 and failed lasr_ctc's int8 run)."""
    torch = pytest.importorskip("torch")
    expected = torch.tensor([[5.0, 1.0, 1.0]] * 10)
    expected[0] = torch.tensor([5.0, 4.99, 1.0])  # a near tie the quantized run flips
    actual = expected.clone()
    actual[0] = torch.tensor([4.99, 5.0, 1.0])
    agreed, _, detail = catalog.Agreement(min_cosine=0.99, min_top1=0.9).compare(
        actual, expected, logits=True
    )
    assert "top-1 agreement 0.900" in detail
    assert agreed
