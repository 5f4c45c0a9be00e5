"""Faults injected into torch and transformers at run time, to test the suite itself.

A green suite must mean a correct model.  Each fault below is a bug of a kind a
release could ship (a wrong activation, attention scale or norm, a mask ignored,
positions or frequencies off, dropout left on, weights lost or untied on loading),
applied to the running process only.  `scripts/inject_faults.py` runs a sample of
the battery once per fault and counts the faults the suite catches; a fault that
leaves the suite green is a gap in the checks.

Loaded as a plugin (`-p test.common.correctness.faults`, in every xdist worker too), it applies
the fault named by the environment variable SUITE_FAULT before any test runs.  It
is never loaded by a normal run.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import pytest

ENVIRONMENT_VARIABLE = "SUITE_FAULT"


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    kind: str
    description: str
    apply: Callable[[pytest.MonkeyPatch], None]


FAULTS: dict[str, Fault] = {}


def fault(name: str, kind: str, description: str) -> Callable[[Callable], Callable]:
    def register(apply: Callable[[pytest.MonkeyPatch], None]) -> Callable:
        FAULTS[name] = Fault(name, kind, description, apply)
        return apply

    return register


@fault("gelu-tanh", "activation", "exact GELU replaced by its tanh approximation")
def _gelu_tanh(patch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    original = F.gelu
    patch.setattr(F, "gelu", lambda x, approximate="none": original(x, approximate="tanh"))


@fault("silu-as-gelu", "activation", "SiLU computes GELU")
def _silu_as_gelu(patch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    original = F.gelu
    patch.setattr(F, "silu", lambda x, inplace=False: original(x))


def _wrap_sdpa(patch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    import torch.nn.functional as F

    original = F.scaled_dot_product_attention

    @functools.wraps(original)
    def faulty(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        names = ("attn_mask", "dropout_p", "is_causal", "scale")
        kwargs.update(zip(names, args, strict=False))
        kwargs["_head_dim"] = query.shape[-1]
        change(kwargs)
        kwargs.pop("_head_dim")
        return original(query, key, value, **kwargs)

    patch.setattr(F, "scaled_dot_product_attention", faulty)


@fault("attention-scale", "scaling", "sdpa's softmax scale 10% too small")
def _attention_scale(patch: pytest.MonkeyPatch) -> None:
    def change(kwargs: dict[str, Any]) -> None:
        scale = kwargs.get("scale") or 1 / math.sqrt(kwargs["_head_dim"])
        kwargs["scale"] = 0.9 * scale

    _wrap_sdpa(patch, change)


@fault("mask-ignored", "mask", "sdpa drops the attention mask it is given")
def _mask_ignored(patch: pytest.MonkeyPatch) -> None:
    _wrap_sdpa(patch, lambda kwargs: kwargs.update(attn_mask=None))


@fault("layernorm-no-bias", "normalisation", "layer norm drops its bias")
def _layernorm_no_bias(patch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    original = F.layer_norm

    def faulty(x: Any, shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
        return original(x, shape, weight, None, eps)

    patch.setattr(F, "layer_norm", faulty)


@fault("layernorm-eps", "normalisation", "layer norm's epsilon 1e-3 instead of the config's")
def _layernorm_eps(patch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    original = F.layer_norm

    def faulty(x: Any, shape: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Any:
        return original(x, shape, weight, bias, 1e-3)

    patch.setattr(F, "layer_norm", faulty)


@fault("rmsnorm-eps", "normalisation", "rsqrt (RMSNorm's) adds an epsilon of 1e-3")
def _rmsnorm_eps(patch: pytest.MonkeyPatch) -> None:
    import torch

    original = torch.rsqrt
    patch.setattr(torch, "rsqrt", lambda x, *a, **k: original(x + 1e-3, *a, **k))
    patch.setattr(torch.Tensor, "rsqrt", lambda self: original(self + 1e-3))


@fault("rope-frequency", "positions", "rotary embeddings see positions scaled by 1.1")
def _rope_frequency(patch: pytest.MonkeyPatch) -> None:
    # Every rotary embedding's forward is wrapped by dynamic_rope_update when its
    # modeling module is imported, which happens after this plugin is configured.
    from transformers import modeling_rope_utils

    original = modeling_rope_utils.dynamic_rope_update

    def faulty_decorator(forward: Callable) -> Callable:
        decorated = original(forward)

        @functools.wraps(decorated)
        def shifted(self: Any, x: Any, position_ids: Any, *args: Any, **kwargs: Any) -> Any:
            return decorated(self, x, position_ids * 1.1, *args, **kwargs)

        return shifted

    patch.setattr(modeling_rope_utils, "dynamic_rope_update", faulty_decorator)


@fault("dropout-in-eval", "mode", "dropout ignores eval mode")
def _dropout_in_eval(patch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    original = F.dropout

    def faulty(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
        return original(x, max(p, 0.1), True, inplace)

    patch.setattr(F, "dropout", faulty)


class _FilteredFile:
    """A safetensors file that hides some of its tensors."""

    def __init__(self, handle: Any, hidden: Callable[[str], bool]) -> None:
        self._handle, self._hidden = handle, hidden

    def keys(self) -> list[str]:
        return [key for key in self._handle.keys() if not self._hidden(key)]  # noqa: SIM118 (a safetensors handle, not a dict)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@fault("loading-drops-norms", "weight loading", "from_pretrained loses the norms' weights")
def _loading_drops_norms(patch: pytest.MonkeyPatch) -> None:
    from transformers import modeling_utils

    original = modeling_utils.safe_open

    def faulty(*args: Any, **kwargs: Any) -> Any:
        hidden = lambda key: "norm" in key.lower() and key.endswith(".weight")  # noqa: E731
        return _FilteredFile(original(*args, **kwargs), hidden)

    patch.setattr(modeling_utils, "safe_open", faulty)


@fault("weights-untied", "weight loading", "from_pretrained does not tie shared weights")
def _weights_untied(patch: pytest.MonkeyPatch) -> None:
    from transformers import modeling_utils

    patch.setattr(modeling_utils.PreTrainedModel, "tie_weights", lambda self, *a, **k: None)


def pytest_configure(config: pytest.Config) -> None:
    name = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if not name:
        return
    if name not in FAULTS:
        raise pytest.UsageError(
            f"{ENVIRONMENT_VARIABLE}={name!r} is no fault of test/common/correctness/faults.py: "
            f"{sorted(FAULTS)}"
        )
    patch = pytest.MonkeyPatch()
    FAULTS[name].apply(patch)
    config.add_cleanup(patch.undo)
