"""Weights keyed by name: a tiny model's values do not depend on initialisation code.

transformers' `_init_weights` draws every parameter from the global RNG in the
order the modules are visited, so adding an unrelated module, or visiting them in
another order, changes every value after it, and every golden output with them.
Here each value is a function of the tensor's name, its shape and a fixed seed:

1. The model is built twice, under two different global seeds.  An element equal
   in both builds is one the initialisation *computes* (a norm's 1, a bias's 0, a
   padding row's zeros, Mamba's `A_log = log(1..N)`, a sinusoidal table); any
   other element was *drawn* from the RNG.
2. Drawn elements are re-drawn from a generator keyed by (seed, name, shape):
   uniform with mean 0 and standard deviation `1 / sqrt(fan_in)` (LeCun scaling,
   fan_in = shape[1] x the kernel size, or the length of a vector), so that signals
   keep unit scale through the tiny stack and attention is far from uniform (the
   0.02 of most `_init_weights` makes a softmax nearly flat, which hides a wrong
   attention scale).  A tensor whose drawn elements all have one sign (Mamba's
   `dt_bias`, a positive-only scale) keeps that sign.
3. A parameter whose initial value is one constant everywhere (norm weights 1,
   biases 0, a layer scale, `logit_scale`) gets that constant with a keyed
   perturbation, so that a norm or a bias that is skipped changes the output:
   `c * (1 + 0.1 u)` for c != 0 (the sign is kept: norm weights stay near 1,
   positive stays positive), `0.1 u` for c == 0, u of unit variance.
4. Everything else is kept as the model computes it: computed elements of a drawn
   tensor (the padding row stays zero), non-constant computed tensors, persistent
   buffers that are not drawn (BatchNorm statistics, masks, position ids), integer
   and boolean tensors.  Non-persistent buffers (rotary frequencies) are not saved
   and are recomputed by `from_pretrained` as for any checkpoint.

The generator is NumPy's PCG64 read as raw 64-bit words (`random_raw`), whose
stream is fixed by the algorithm, so a torch or NumPy upgrade changes no value.
Tied parameters are assigned once, under their first name.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

SEED = 0
#: Relative size of the perturbation of a constant parameter.
CONSTANT_PERTURBATION = 0.1
_UNIFORM_HALF_WIDTH = math.sqrt(3.0)  # uniform on [-sqrt 3, sqrt 3] has unit variance


def keyed_uniform(name: str, shape: tuple[int, ...], seed: int = SEED) -> Any:
    """Values of unit variance and mean 0 for tensor `name` of `shape` (float64 numpy)."""
    import numpy as np

    digest = hashlib.sha256(f"{seed}:{name}:{list(shape)}".encode()).digest()
    generator = np.random.PCG64(int.from_bytes(digest[:16], "little"))
    count = math.prod(shape)
    words = generator.random_raw(count) if count else np.zeros(0, dtype=np.uint64)
    unit = (words >> np.uint64(11)).astype(np.float64) * 2.0**-53  # [0, 1), 53 bits
    return ((2.0 * unit - 1.0) * _UNIFORM_HALF_WIDTH).reshape(shape)


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output: shape[1] x kernel size for a matrix or kernel, numel for a vector."""
    if len(shape) >= 2:
        return max(1, shape[1] * math.prod(shape[2:]))
    return max(1, math.prod(shape))


def _drawn_values(name: str, drawn: Any, computed_mask: Any, seed: int) -> Any:
    """Keyed values for the drawn elements of `drawn`, keeping a common sign."""
    import torch

    shape = tuple(drawn.shape)
    values = torch.from_numpy(keyed_uniform(name, shape, seed)) / math.sqrt(fan_in(shape))
    random_part = drawn[~computed_mask]
    if random_part.numel() >= 2 and bool((random_part > 0).all()):
        values = values.abs()
    elif random_part.numel() >= 2 and bool((random_part < 0).all()):
        values = -values.abs()
    return values


def _constant_values(name: str, constant: float, shape: tuple[int, ...], seed: int) -> Any:
    import torch

    noise = torch.from_numpy(keyed_uniform(name, shape, seed)) * CONSTANT_PERTURBATION
    if constant == 0.0:
        return noise
    return constant * (1.0 + noise)


def keyed_value(
    name: str, first: Any, second: Any, *, is_parameter: bool, seed: int = SEED
) -> Any | None:
    """The keyed value of tensor `name`, given its values under two init seeds;
    None where the tensor is kept as it is."""
    import torch

    if not first.is_floating_point() or first.numel() == 0:
        return None
    computed = first == second
    shape = tuple(first.shape)
    if bool(computed.all()):
        flat = first.reshape(-1)
        if is_parameter and bool((flat == flat[0]).all()) and math.isfinite(flat[0].item()):
            return _constant_values(name, float(flat[0]), shape, seed).to(first.dtype)
        return None  # a computed table, or a buffer: as the model computes it
    values = _drawn_values(name, first, computed, seed).to(first.dtype)
    return torch.where(computed, first, values)


def _named_tensors(model: Any) -> list[tuple[str, Any, bool]]:
    """(name, tensor, is_parameter) for every saved tensor, tied ones once (first name)."""
    persistent = set(model.state_dict(keep_vars=True))
    seen: set[int] = set()
    named = []
    for name, tensor in model.named_parameters(remove_duplicate=False):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            named.append((name, tensor, True))
    for name, tensor in model.named_buffers(remove_duplicate=False):
        if name in persistent and id(tensor) not in seen:
            seen.add(id(tensor))
            named.append((name, tensor, False))
    return named


def assign_keyed_weights(model: Any, twin: Any, seed: int = SEED) -> int:
    """Give `model` its keyed values; `twin` is the same model built under another
    init seed.  Returns how many tensors were assigned."""
    import torch

    twins = {name: tensor for name, tensor, _ in _named_tensors(twin)}
    assigned = 0
    with torch.no_grad():
        for name, tensor, is_parameter in _named_tensors(model):
            other = twins.get(name)
            if other is None or other.shape != tensor.shape:
                continue
            value = keyed_value(
                name, tensor.detach(), other.detach(), is_parameter=is_parameter, seed=seed
            )
            if value is not None:
                tensor.copy_(value)
                assigned += 1
    return assigned
