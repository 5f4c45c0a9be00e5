"""Every real backend on a tiny torch module: built, run, compared with eager, timed.

No transformers model: a two-layer module with `torch.nn.Linear` (what int8 quantizes)
that returns a mapping with `logits`, as a ModelOutput does.  A backend whose package
is missing is skipped, naming it.
"""

from __future__ import annotations

from typing import Any

import pytest

from test.common.backends.catalog import BACKENDS, BACKENDS_BY_NAME

pytestmark = pytest.mark.slow


def tiny_classifier() -> Any:
    """A two-layer classifier (torch imported here: collecting this module in a bare
    `pytest`, where it is gated as slow, must not import torch)."""
    torch = pytest.importorskip("torch")

    class TinyClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.hidden = torch.nn.Linear(16, 32)
            self.head = torch.nn.Linear(32, 8)
            with torch.no_grad():
                # Clear winners, so that top-1 agreement measures int8, not near-ties of
                # random logits (which flip under any rounding).
                self.head.bias[3] += 4.0

        def forward(self, features: Any, scale: float = 1.0, use_cache: bool = True) -> dict:
            return {"logits": self.head(torch.relu(self.hidden(features))) * scale}

    return TinyClassifier().eval()


@pytest.fixture(scope="module")
def work() -> Any:
    torch = pytest.importorskip("torch")
    from test.common.backends.work import Work

    inputs = {"features": torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(1))}
    built = Work(tiny_classifier(), {**inputs, "scale": 2.0})
    yield built
    built.close()


@pytest.mark.parametrize("backend", [b.name for b in BACKENDS])
def test_each_backend_agrees_with_eager_on_a_tiny_module(work: Any, backend: str) -> None:
    missing = BACKENDS_BY_NAME[backend].missing_packages_with_needs()
    if missing:
        pytest.skip(f"{backend} needs the {', '.join(missing)} package, not installed")
    observation = work.observe(BACKENDS_BY_NAME[backend])
    if observation.status == "skip":  # an API this browser lacks, probed at run time
        pytest.skip(f"{backend}: {observation.reason}")
    assert observation.status == "pass", observation.reason
    assert observation.difference is not None
    if BACKENDS_BY_NAME[backend].timed:
        assert observation.latency_ratio > 0
    else:  # a browser launch per run: no latency worth recording
        assert observation.latency_ratio is None


def test_the_wrapper_takes_tensors_positionally_and_keeps_the_rest_constant(work: Any) -> None:
    assert work.names == ["features"]
    assert work.constants == {"scale": 2.0, "use_cache": False}
    assert work.logits  # the primary output is the mapping's `logits`
    assert work.eager.shape == (2, 4, 8)


def test_a_backend_that_refuses_the_model_fails_with_the_root_cause(work: Any) -> None:
    torch = pytest.importorskip("torch")
    from test.common.backends.catalog import Backend, Tolerance
    from test.common.backends.work import Work

    def refuses(_: Any) -> Any:
        try:
            raise KeyError("inner")
        except KeyError as error:
            raise RuntimeError("\x1b[96mstep 2/3\x1b[0m failed\nmore") from error

    work = Work(tiny_classifier(), {"features": torch.ones(1, 2, 16)})
    refused = Backend("refuses", "", refuses, Tolerance(0, 0))
    observation = work.observe(refused)
    assert observation.status == "fail"
    assert observation.reason == "build: RuntimeError: step 2/3 failed; cause: KeyError: 'inner'"
    dependant = Backend("dependant", "", refuses, Tolerance(0, 0), needs=refused)
    assert work.observe(dependant).status == "not reached"
    work.close()


def test_a_backend_the_platform_cannot_run_is_a_skip_naming_what_it_lacks(work: Any) -> None:
    from test.common.backends.catalog import Backend, Tolerance

    def never_built(_: Any) -> Any:
        raise AssertionError("a backend the platform lacks must not be built")

    lacking = Backend(
        "lacking", "", never_built, Tolerance(0, 0), unavailable=lambda: "no navigator.ml"
    )
    observation = work.observe(lacking)
    assert (observation.status, observation.reason) == ("skip", "no navigator.ml")
    assert "lacking" not in work.built


def test_int8_refuses_a_model_without_linear_layers() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchao", reason="int8 needs the torchao package")
    from test.common.backends.work import Work

    class NoLinear(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.tanh(x)

    work = Work(NoLinear().eval(), {"x": torch.ones(2, 3)})
    observation = work.observe(BACKENDS_BY_NAME["int8"])
    assert observation == type(observation)(
        "fail", "build: ValueError: no torch.nn.Linear layer to quantize"
    )
    work.close()


def test_openvino_reports_name_the_unconverted_operations() -> None:
    from test.common.backends.runners import _openvino_unconverted

    report = "Check 'false' failed at x.cpp:151:\nModel wasn't fully converted.\n"
    assert _openvino_unconverted(report) is None
    report += "Summary:\n-- Conversion is failed for: aten.unfold.default\n"
    assert _openvino_unconverted(report) == "aten.unfold.default"
    missing_rule = "Summary:\n-- No conversion rule found for operations: aten.histc.default\n"
    assert _openvino_unconverted(missing_rule) == "aten.histc.default"


def test_a_model_that_draws_in_eval_is_compared_on_the_same_draws() -> None:
    """ViLT samples image patches in eval: eager and each backend run with the same seed
    set first, so `export` (the same ATen operations) draws the same numbers and agrees,
    where unseeded runs differed by 3.7 (`compile`) and fell to cosine 0.63 (`int8`)."""
    torch = pytest.importorskip("torch")
    from test.common.backends.work import Work

    class DrawsInEval(torch.nn.Module):
        def forward(self, features: Any) -> dict:
            noise = torch.rand(features.shape)
            return {"last_hidden_state": features * 2 + noise}

    work = Work(DrawsInEval().eval(), {"features": torch.ones(2, 3)})
    try:
        observation = work.observe(BACKENDS_BY_NAME["export"])
    finally:
        work.close()
    assert observation.status == "pass", observation.reason
    assert observation.difference == 0


def test_a_copy_on_a_platform_has_its_own_model_eager_output_and_builds() -> None:
    """What `export-cuda` is observed on, built here on the CPU (the platform is data):
    a copy of the model and inputs, its own eager output, its own built artifacts."""
    torch = pytest.importorskip("torch")
    from test.common.backends.work import Work

    work = Work(tiny_classifier(), {"features": torch.randn(2, 4, 16), "scale": 2.0})
    placed = work.on_platform("cpu")
    assert placed is work.on_platform("cpu")  # built once, shared by its backends
    assert placed.model is not work.model
    assert placed.platform == "cpu"
    assert placed.constants == work.constants == {"scale": 2.0, "use_cache": False}
    assert torch.equal(placed.eager, work.eager)
    assert placed.logits
    observation = placed.observe(BACKENDS_BY_NAME["export"])
    assert observation.status == "pass", observation.reason
    assert "export" in placed.built
    assert "export" not in work.built
    directory = placed.directory
    work.close()  # closes the copies too
    assert not directory.exists()
    assert not work.placed


def test_a_backend_on_an_accelerator_runs_on_a_copy_there_or_is_a_skip(work: Any) -> None:
    from test.common.backends.catalog import platform_absent

    observation = work.observe(BACKENDS_BY_NAME["export-cuda"])
    absent = platform_absent("cuda")
    if absent:
        assert (observation.status, observation.reason) == ("skip", absent)
        assert "cuda" not in work.placed
        return
    assert observation.status == "pass", observation.reason
    placed = work.placed["cuda"]
    assert placed.eager.device.type == "cuda"  # compared with eager on the GPU
    assert "export-cuda" in placed.built
    assert "export-cuda" not in work.built
    assert observation.latency_ratio > 0
