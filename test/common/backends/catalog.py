"""The backends, one entry each, and how each one's output is compared with eager.

Adding a backend is one `Backend` entry here, a build function in runners.py, and its
packages in constraints.txt; the test ids (`test_backend[bert-onnx]`), the nox session
`backend-<name>`, the expectation file test/common/data/backends/<name>.csv and the
end-of-run line follow from the entry.  Running a backend on an accelerator too is one
`on_platform(EXPORT, "cuda")` entry: `export-cuda`, compared with eager on that device,
with expectations of its own.  Tolerances are justified in docs/BACKENDS.md from the
measured differences.

Nothing here imports torch: noxfile.py and the collection of gated tests read it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
from collections.abc import Callable
from typing import Any

from test.common import hardware
from test.common.backends import browser, qnn, runners


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Close to eager: max |a - b| <= atol + rtol * max |b| (as the battery's assert_close)."""

    atol: float
    rtol: float

    def compare(self, actual: Any, expected: Any) -> tuple[bool, float, str]:
        """(within tolerance, max |a - b|, what was compared) for float tensors."""
        actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
        if actual.shape != expected.shape:
            return False, float("inf"), f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        difference = (actual - expected).abs().max().item() if actual.numel() else 0.0
        scale = expected.abs().max().item() if expected.numel() else 0.0
        allowed = self.atol + self.rtol * scale
        # NaN compares false: a NaN output fails.
        return (
            difference <= allowed,
            difference,
            f"max difference {difference:.3g} (allowed {allowed:.3g})",
        )


@dataclasses.dataclass(frozen=True)
class Agreement:
    """Agrees with eager rather than equals it (quantized backends): the cosine similarity
    of the flattened outputs, and the share of equal arg-max along the last axis where
    the output is logits.  The recorded difference is 1 - cosine."""

    min_cosine: float
    min_top1: float

    def compare(self, actual: Any, expected: Any, logits: bool = False) -> tuple[bool, float, str]:
        import torch

        actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
        if actual.shape != expected.shape:
            return False, float("inf"), f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        cosine = torch.nn.functional.cosine_similarity(
            actual.flatten(), expected.flatten(), dim=0, eps=1e-12
        ).item()
        detail = f"cosine {cosine:.5f} (at least {self.min_cosine})"
        agreed = cosine >= self.min_cosine
        if logits and expected.ndim >= 1 and expected.shape[-1] > 1:
            # Counted, then divided in Python: 9 of 10 is 0.9 exactly (a float32 mean
            # gave 0.8999999761, below a 0.9 threshold it meets).
            equal = actual.argmax(-1) == expected.argmax(-1)
            top1 = int(equal.sum().item()) / equal.numel()
            detail += f", top-1 agreement {top1:.3f} (at least {self.min_top1})"
            agreed = agreed and top1 >= self.min_top1
        return agreed, 1.0 - cosine, detail


@dataclasses.dataclass(frozen=True)
class Backend:
    """A way to run a model other than eager PyTorch, compared with eager."""

    name: str
    #: What it runs, in a few words (docs, reports).
    summary: str
    #: Builds the backend's artifact from the architecture's Work (runners.py).
    build: Callable[[Any], Any]
    check: Tolerance | Agreement
    #: The backend whose artifact this one is built from: its failure makes this one
    #: "not reached" rather than failed.
    needs: Backend | None = None
    #: (module to import, pip package) for each package it needs beyond torch.
    packages: tuple[tuple[str, str], ...] = ()
    #: The pytest marker of the platform it stands for (pytest.ini), if any.
    marker: str | None = None
    #: What it needs outside Python (a browser, an npm package): the names of those absent.
    probe: Callable[[], list[str]] | None = None
    #: What the platform lacks at run time (an API the browser does not expose): the
    #: reason, or None.  Asked after `probe` finds nothing missing; an absent API is a
    #: skip naming it, never recorded.
    unavailable: Callable[[], str | None] | None = None
    #: A command that installs what it needs outside pip (nox runs it first).
    setup: tuple[str, ...] = ()
    #: Whether its latency against eager means anything (not when each run starts a
    #: browser).
    timed: bool = True
    #: pytest-timeout's limit for one item, in seconds, where pytest.ini's 300 s is too
    #: short for a backend that finishes (None: pytest.ini's).
    timeout: float | None = None
    #: The torch platform (hardware.TORCH_DEVICE_OF_PLATFORM) the model, its inputs and
    #: the eager output it is compared with live on: the backend is built from a copy
    #: of the model on that device (see `on_platform`).
    platform: str = "cpu"

    def missing_packages(self) -> list[str]:
        """The names of the needed packages that are not installed."""
        absent = [pip for module, pip in self.packages if importlib.util.find_spec(module) is None]
        return absent + (self.probe() if self.probe else [])

    def absent_api(self) -> str | None:
        """Why the platform cannot run this backend (`unavailable`), or None."""
        return self.unavailable() if self.unavailable else None

    def pip_packages_with_needs(self) -> list[str]:
        """The pip names of this backend's packages and of those it is built from."""
        own = [pip for _, pip in self.packages]
        return own + (self.needs.pip_packages_with_needs() if self.needs else [])

    def missing_packages_with_needs(self) -> list[str]:
        """Missing packages of this backend and of the backends it is built from."""
        missing = self.missing_packages()
        if self.needs is not None:
            missing += self.needs.missing_packages_with_needs()
        return list(dict.fromkeys(missing))


EXPORT = Backend(
    name="export",
    summary="torch.export.export, then the exported program's module",
    build=runners.build_export,
    # transformers' own torch.export tests compare with atol = rtol = 1e-4.
    check=Tolerance(atol=1e-4, rtol=1e-4),
)
ONNX = Backend(
    name="onnx",
    summary="torch.onnx.export(dynamo=True) of the exported program, ONNX Runtime CPU",
    build=runners.build_onnx,
    check=Tolerance(atol=1e-3, rtol=1e-3),
    needs=EXPORT,
    packages=(("onnxscript", "onnxscript"), ("onnxruntime", "onnxruntime")),
    marker="onnx",
)


def _browser(provider: str, summary: str) -> Backend:
    """The browser backend with one of onnxruntime-web's execution providers: `browser`
    (wasm), `browser-webgpu`, `browser-webnn`; each a platform column of its own."""
    # wasm needs nothing the browser might lack; webgpu and webnn are asked of it.
    asked = None if provider == "wasm" else functools.partial(browser.unavailable, provider)
    return Backend(
        name="browser" if provider == "wasm" else f"browser-{provider}",
        summary=f"the ONNX file of onnx in onnxruntime-web ({summary}), headless Chromium",
        build=functools.partial(runners.build_browser, provider=provider),
        check=Tolerance(atol=1e-3, rtol=1e-3),
        needs=ONNX,
        probe=functools.partial(browser.missing, provider),
        unavailable=asked,
        setup=("npm", "ci", "--no-audit", "--no-fund"),  # package.json pins onnxruntime-web
        # Each run loads a fresh page, onnxruntime-web and the session: no latency worth
        # comparing with eager's.
        timed=False,
    )


COMPILE = Backend(
    name="compile",
    summary="torch.compile with its default backend (inductor)",
    build=runners.build_compile,
    check=Tolerance(atol=1e-4, rtol=1e-4),
    # inductor compiled grounding-dino in 489 s of wall time (196 s of CPU) on the
    # 2-core host under load, and then passed; the default 300 s failed it.
    timeout=900,
)


def platform_absent(platform: str) -> str | None:
    """Why this machine cannot run on `platform` (what its probe checked), or None."""
    info = hardware.probe_platform(platform)
    return None if info.available else f"no {platform} device: {info.checked}"


def on_platform(backend: Backend, platform: str) -> Backend:
    """`backend` run on another torch platform's device: `<name>-<platform>`, built from
    a copy of the model on that device and compared with eager there (so that it judges
    the backend, not the device's own numerics, which the battery checks), with its own
    expectation file; a skip naming the probe where the platform is absent."""
    hardware.torch_device_of(platform)  # a torch platform, or a ValueError
    if backend.needs is not None or backend.packages or backend.platform != "cpu":
        raise ValueError(f"{backend.name}: only a CPU backend of torch alone moves to a device")
    return dataclasses.replace(
        backend,
        name=f"{backend.name}-{platform}",
        summary=f"{backend.summary}, on {platform}",
        marker=platform,
        unavailable=functools.partial(platform_absent, platform),
        platform=platform,
    )


BACKENDS: tuple[Backend, ...] = (
    EXPORT,
    COMPILE,
    ONNX,
    Backend(
        name="openvino",
        summary="openvino.convert_model of the exported program, compiled for CPU in f32",
        build=runners.build_openvino,
        check=Tolerance(atol=1e-3, rtol=1e-3),
        needs=EXPORT,
        packages=(("openvino", "openvino"),),
        marker="openvino",
    ),
    Backend(
        name="int8",
        summary="torchao dynamic int8 quantization of the linear layers, run eagerly",
        build=runners.build_int8,
        check=Agreement(min_cosine=0.99, min_top1=0.9),
        packages=(("torchao", "torchao"),),
    ),
    _browser("wasm", "wasm"),
    _browser("webgpu", "webgpu, on SwiftShader's CPU Vulkan adapter"),
    _browser("webnn", "webnn, its CPU device"),
    Backend(
        name="qnn",
        summary="the ONNX file of onnx, QDQ-quantized, on ONNX Runtime's QNN EP (HTP simulator)",
        build=runners.build_qnn,
        # Quantized (uint16 activations, uint8 weights): agreement, as int8.
        check=Agreement(min_cosine=0.99, min_top1=0.9),
        needs=ONNX,
        packages=(("onnxruntime_qnn", "onnxruntime-qnn"),),
        marker="qualcomm",
        probe=qnn.missing,
        # The HTP simulator's latency on the host says nothing of the NPU's.
        timed=False,
    ),
    # The torch-level backends on an NVIDIA GPU (a CUDA build of torch).  ROCm, XPU or
    # MPS would be one more line each.
    on_platform(EXPORT, "cuda"),
    on_platform(COMPILE, "cuda"),
)
BACKENDS_BY_NAME = {backend.name: backend for backend in BACKENDS}

#: The pull-request sample: one architecture per modality and per attention family
#: (eager only, eager + sdpa, eager + sdpa + flex, no attention), run by the workflow's
#: pull-request job with `--backend-sample pr`.
PR_SAMPLE = (
    "bert",  # text encoder; eager + sdpa
    "gpt2",  # text decoder; eager + sdpa + flex
    "t5",  # encoder-decoder; eager only
    "vit",  # vision
    "whisper",  # audio
    "clip",  # multimodal
    "patchtst",  # time series
    "mamba",  # no attention (state space)
)
SAMPLES = {"pr": PR_SAMPLE}


def select(names: str | None) -> tuple[Backend, ...]:
    """The backends named in a comma-separated list (all when None or "all"); unknown is
    an error."""
    if not names or names.strip() == "all":
        return BACKENDS
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BACKENDS_BY_NAME]
    if unknown:
        raise ValueError(
            f"unknown backend {', '.join(unknown)}; known: {', '.join(BACKENDS_BY_NAME)}"
        )
    return tuple(backend for backend in BACKENDS if backend.name in wanted)
