"""One architecture driven through the backends: built once, reused, failures kept apart.

`Work` wraps the tiny model so that it takes its input tensors positionally and
returns only the primary output (what the battery compares): every backend then sees
one flat signature and one output.  `observe(backend)` builds the backend (its
dependency first, once), runs it on the eager inputs, compares with eager and times
both.  A backend whose dependency built nothing is "not reached", not "fail"; one
whose package is missing is "skip" (never recorded in an expectation file).

A backend on another torch platform (`export-cuda`) is observed by the Work of that
platform (`on_platform`): a copy of the model and inputs on its device, with its own
eager output there, built once and shared by that platform's backends.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from test.common.backends.catalog import Agreement, Backend

PASS, FAIL, NOT_REACHED, SKIP = "pass", "fail", "not reached", "skip"
#: Timed runs of eager and of each backend (after the comparison run); the median counts.
TIMED_RUNS = 3
#: Longest reason kept (an error's first line can be a whole graph).
REASON_LENGTH = 240
#: Terminal colours some exporters put in their messages.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclasses.dataclass(frozen=True)
class Observation:
    """What one backend did with one architecture."""

    status: str
    reason: str = ""
    #: max |backend - eager| (1 - cosine for agreement checks); None when nothing ran.
    difference: float | None = None
    #: Median latency of the backend over eager's on the same inputs.
    latency_ratio: float | None = None


class PrimaryOutput(torch.nn.Module):
    """A model taking its input tensors positionally and returning the primary output."""

    def __init__(self, model: Any, names: list[str], constants: Mapping[str, Any], output: str):
        super().__init__()
        self.model = model
        self.names = names
        self.constants = dict(constants)
        self.output = output

    def forward(self, *tensors: Any) -> Any:
        from test.common.models.model_inputs import primary_output

        outputs = self.model(**dict(zip(self.names, tensors, strict=True)), **self.constants)
        return primary_output(outputs, self.output)


class Work:
    """An architecture's model, inputs and eager output, and what each backend built."""

    def __init__(
        self,
        model: Any,
        inputs: Mapping[str, Any],
        output_name: str = "",
        platform: str = "cpu",
    ) -> None:
        from test.common.models.model_inputs import forward_parameters

        self.model = model
        self.inputs = dict(inputs)
        self.output_name = output_name
        #: The torch platform the model and inputs are on (hardware.py).
        self.platform = platform
        self.names = [name for name, value in inputs.items() if isinstance(value, torch.Tensor)]
        # Non-tensor inputs are constants of the traced graph; the battery compares
        # outputs, not caches (as its `run`).
        self.constants = {k: v for k, v in inputs.items() if not isinstance(v, torch.Tensor)}
        if "use_cache" in forward_parameters(model):
            self.constants["use_cache"] = False
        self.args = tuple(inputs[name] for name in self.names)
        self.module = self.wrap(model)
        self.eager = _call(self.module, self.args)
        self.logits = self._primary_is_logits()
        self._directory = tempfile.TemporaryDirectory(prefix="backend-")
        self.directory = Path(self._directory.name)
        self.built: dict[str, Any] = {}
        self.observations: dict[str, Observation] = {}
        self.placed: dict[str, Work] = {}

    def on_platform(self, platform: str) -> Work:
        """This architecture on `platform`'s device: a copy of the model with the inputs
        moved there, and its eager output computed there (built once)."""
        if platform not in self.placed:
            from test.common.hardware import torch_device_of

            device = torch.device(torch_device_of(platform))
            model = copy.deepcopy(self.model).to(device)
            inputs = {
                name: value.to(device) if isinstance(value, torch.Tensor) else value
                for name, value in self.inputs.items()
            }
            self.placed[platform] = Work(model, inputs, self.output_name, platform)
        return self.placed[platform]

    def wrap(self, model: Any) -> PrimaryOutput:
        return PrimaryOutput(model, self.names, self.constants, self.output_name).eval()

    def _primary_is_logits(self) -> bool:
        """Whether the primary output is the model's `logits` (top-1 agreement applies)."""
        with torch.no_grad():
            outputs = self.model(**dict(zip(self.names, self.args, strict=True)), **self.constants)
        logits = outputs.get("logits") if isinstance(outputs, Mapping) else None
        # Some models return a tuple of logits (mgp-str: one per decoding head).
        return isinstance(logits, torch.Tensor) and torch.equal(logits, self.eager)

    def observe(self, backend: Backend) -> Observation:
        """The backend's observation, computed once (its dependency first)."""
        if backend.name not in self.observations:
            self.observations[backend.name] = self._observe(backend)
        return self.observations[backend.name]

    def _observe(self, backend: Backend) -> Observation:
        missing = backend.missing_packages_with_needs()
        if missing:
            return Observation(SKIP, f"needs the {', '.join(missing)} package, not installed")
        absent = backend.absent_api()
        if absent:
            return Observation(SKIP, absent)
        if backend.platform != self.platform:
            return self.on_platform(backend.platform).observe(backend)
        if backend.needs is not None:
            self.observe(backend.needs)
            if backend.needs.name not in self.built:
                return Observation(NOT_REACHED, f"{backend.needs.name} built nothing")
        try:
            built = backend.build(self)
        except Exception as error:  # the backend refused the model: its recorded failure
            return Observation(FAIL, _reason("build", error))
        self.built[backend.name] = built
        try:
            output = _seeded(built.run, self.args)
        except Exception as error:  # built, but cannot run on these inputs
            return Observation(FAIL, _reason("run", error))
        if isinstance(backend.check, Agreement):
            agreed, difference, detail = backend.check.compare(output, self.eager, self.logits)
        else:
            agreed, difference, detail = backend.check.compare(output, self.eager)
        ratio = None
        if backend.timed:
            eager = _median_time(self.module, self.args, self.platform)
            ratio = _median_time(built.run, self.args, self.platform) / eager
        return Observation(PASS if agreed else FAIL, "" if agreed else detail, difference, ratio)

    def close(self) -> None:
        for placed in self.placed.values():
            placed.close()
        self.placed.clear()
        self.built.clear()
        self._directory.cleanup()


def _call(module: Any, args: tuple[Any, ...]) -> Any:
    with torch.no_grad():
        return _seeded(module, *args)


def _seeded(run: Any, *arguments: Any) -> Any:
    """A run with the battery's golden seed set first: a model that draws in eval (ViLT
    samples image patches) then draws the same numbers in eager and in a backend that
    runs the same ATen operations, instead of failing every comparison."""
    from test.common.checks.running import GOLDEN_SEED

    torch.manual_seed(GOLDEN_SEED)
    return run(*arguments)


def _median_time(run: Any, args: tuple[Any, ...], platform: str = "cpu") -> float:
    """Median wall time of `run` on `args`; on an accelerator each run ends when its
    device has finished (kernels are queued asynchronously)."""
    from test.common.hardware import torch_device_of

    device_type = torch_device_of(platform)
    synchronize = getattr(torch, device_type).synchronize if device_type != "cpu" else None
    times = []
    for _ in range(TIMED_RUNS):
        started = time.perf_counter()
        if isinstance(run, torch.nn.Module):
            _call(run, args)
        else:
            run(args)
        if synchronize is not None:
            synchronize()
        times.append(time.perf_counter() - started)
    return max(statistics.median(times), 1e-9)


def _reason(stage: str, error: BaseException) -> str:
    """`stage: Error: first line`, and the root cause's when the error wraps another
    (the ONNX exporter's own message only says which step failed)."""
    reason = f"{stage}: {_first_line(error)}"
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    if root is not error:
        reason += f"; cause: {_first_line(root)}"
    return reason[:REASON_LENGTH]


def _first_line(error: BaseException) -> str:
    text = ANSI_ESCAPE.sub("", str(error)).strip()
    return f"{type(error).__name__}: {(text.splitlines() or [''])[0]}"
