"""The subject of the checks and how they run it.

A subject is a tiny model built once per worker (test/common/models/tiny_models.py), its
input recipe and one batch of inputs; its outputs are computed once per device and
shared by the checks.  torch is imported inside the functions: collecting the gated
model tests must not import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

#: The global seed set before a golden forward, for the few models that draw in eval.
GOLDEN_SEED = 0


@dataclasses.dataclass
class Subject:
    """A tiny model, its input recipe and a batch of inputs (CPU).  `spec` is its row:
    an ArchitectureSpec (the battery) or a HeadSpec (the task heads)."""

    spec: Any
    tiny: Any
    recipe: Any
    inputs: dict[str, Any]
    #: Outputs computed once per device and shared by the checks (never modified).
    _outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    _padded: dict[str, tuple[dict[str, Any], list[dict[str, Any]], int, Any]] = dataclasses.field(
        default_factory=dict
    )

    @property
    def model(self) -> Any:
        return self.tiny.model

    def outputs(self, device: str) -> Any:
        """The model's outputs on the inputs on `device`, computed once, with the global
        seed set (for the few models that draw in eval)."""
        if device not in self._outputs:
            import torch

            model = on(self, device)
            torch.manual_seed(GOLDEN_SEED)
            self._outputs[device] = run(model, self.inputs, device)
        return self._outputs[device]

    def reference(self, device: str) -> Any:
        """The primary output of `outputs(device)`."""
        return primary(self.outputs(device), self.recipe)

    def padded(self, device: str) -> tuple[dict[str, Any], list[dict[str, Any]], int, Any]:
        """(padded batch, its items alone, padding of item 1, the batch's primary output
        on `device`), computed once: batch consistency and attention paths share it."""
        if device not in self._padded:
            from test.common.models.model_inputs import padded_text_batch

            batch, singles, padding = padded_text_batch(self.recipe)
            output = primary(run(on(self, device), batch, device), self.recipe)
            self._padded[device] = (batch, singles, padding, output)
        return self._padded[device]

    @property
    def cpu_reference(self) -> Any:
        """The primary output on CPU, float32: what every device is compared with."""
        return self.reference("cpu")


def make_subject(spec: Any, tiny: Any) -> Subject:
    """The subject of a freshly built tiny model, with the inputs its row's recipe makes."""
    from test.common.models import model_inputs

    recipe = model_inputs.recipe_for(tiny.model, spec.inputs)
    return Subject(spec, tiny, recipe, model_inputs.make_inputs(recipe))


def one_thread_per_worker() -> None:
    """One torch thread per xdist worker: xdist already runs one worker per core, and
    tiny models gain nothing from intra-op threads but contention."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch thread inside: a result that depends on how work is split across
    threads is then the same under xdist (one thread per worker) and in a serial run."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random: some models draw from numpy in training mode
    (wav2vec2's SpecAugment masks, BigBird's random attention blocks)."""
    import random

    import numpy
    import torch

    torch.manual_seed(seed)
    numpy.random.seed(seed)
    random.seed(seed)


def run(
    model: Any, inputs: dict[str, Any], device: str, dtype: Any = None, keep: tuple[str, ...] = ()
) -> Any:
    """A forward without gradients and without a cache: the checks compare outputs, not
    caches, and building a cache breaks hybrid (attention + Mamba/linear) models whose
    tiny stack has no attention layer first."""
    import torch

    from test.common.models.model_inputs import forward_parameters, to_device

    options = {"use_cache": False} if "use_cache" in forward_parameters(model) else {}
    with torch.no_grad():
        return model(**to_device(inputs, device, dtype, keep), **options)


def primary(outputs: Any, recipe: Any) -> Any:
    """The output the checks compare: the recipe's `output`, else the first tensor."""
    from test.common.models.model_inputs import primary_output

    tensor = primary_output(outputs, recipe.output)
    assert tensor is not None, f"the model returned no tensor: {type(outputs).__name__}"
    return tensor


def on(subject: Subject, device: str) -> Any:
    return subject.model.to(device)


def assert_close(actual: Any, expected: Any, atol: float, rtol: float, what: str) -> None:
    """max |actual - expected| <= atol + rtol * max |expected|, with the numbers in the
    message."""
    actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    difference = (actual - expected).abs().max().item() if actual.numel() else 0.0
    allowed = atol + rtol * (expected.abs().max().item() if expected.numel() else 0.0)
    assert difference <= allowed, f"{what}: max difference {difference:.3g} > {allowed:.3g}"
