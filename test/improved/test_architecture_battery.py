"""The tiny-model battery: nine checks for every AutoModel architecture.

The architectures come from the registry (test/common/models/registry.py), itself derived
from the installed transformers; what is specific to one architecture is a row of
test/common/models/architectures.toml, never code here.  Ids read `test_forward[bert-cpu]`.

Two checks pin what a model computes, not only its consistency with itself:
`golden` compares the output with the stored golden (test/common/correctness/goldens.py,
docs/GOLDENS.md), and `attention_paths` compares every attention implementation the
model declares (eager, sdpa, flex_attention) on the padded batch; an architecture
that declares only one has no `attention_paths` item.

Each architecture's tiny model is built once per worker (a module-scoped fixture
parametrized by model_type, so pytest runs an architecture's tests together) and
released when the worker moves on; under xdist `--dist loadgroup` keeps an
architecture's tests on one worker.  torch and transformers are imported inside
fixtures and tests only: collecting this module with model tests gated imports neither.
"""

from __future__ import annotations

import collections
import copy
import gc
from typing import Any

import pytest

from test.common.checks.running import (
    GOLDEN_SEED,
    Subject,
    assert_close,
    make_subject,
    on,
    one_thread_per_worker,
    primary,
    run,
)
from test.common.models.registry import MODALITIES, MODALITY_MARKS, load_registry

pytestmark = [pytest.mark.model_test, pytest.mark.model]

#: A padded batch against each item alone, float32: max |a - b| <= ATOL + RTOL * max |b|.
BATCH_ATOL = 1e-4
BATCH_RTOL = 1e-4
#: bfloat16 against float32, as ||a - b|| / ||b||, per modality: bfloat16 keeps 8 bits
#: of mantissa (~0.4%), and two tiny layers of attention or convolution compound it.
#: With keyed unit-scale weights (test/common/models/weights.py) attention logits are of
#: order 1 to 3 and the softmax amplifies the rounding: text and vision models reach
#: 0.069 (diffusion_gemma), so every modality allows 0.08, as audio did before.
BF16_TOLERANCE = dict.fromkeys(MODALITIES, 0.08)
#: Another device against the CPU, float32 (TF32 matmuls on CUDA round to ~1e-3).
DEVICE_TOLERANCE = 5e-3
#: One attention implementation against eager on the padded batch, float32, as
#: max |a - b| <= ATOL + RTOL * max |b|: transformers' own eager/sdpa equivalence tests
#: allow 1e-6 + 1e-4 relative in float32; docs/GOLDENS.md has the measured spread.
ATTENTION_ATOL = 1e-5
ATTENTION_RTOL = 1e-4


def _architecture_params(test_name: str, config: pytest.Config) -> list[Any]:
    params = []
    for spec in load_registry().values():
        if test_name == "attention_paths" and len(attention_paths(spec.model_type, config)) < 2:
            continue  # one implementation: nothing to compare, so no test item
        marks = [pytest.mark.xdist_group(spec.model_type)]
        if spec.modality in MODALITY_MARKS:
            marks.append(getattr(pytest.mark, MODALITY_MARKS[spec.modality]))
        params.append(pytest.param(spec.model_type, id=spec.model_type, marks=marks))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "architecture" in metafunc.fixturenames:
        test_name = metafunc.function.__name__.removeprefix("test_")
        params = _architecture_params(test_name, metafunc.config)
        metafunc.parametrize("architecture", params, scope="module")


def attention_paths(model_type: str, config: pytest.Config) -> tuple[str, ...]:
    """The attention implementations `model_type`'s AutoModel declares, eager first.

    Read from transformers' source without importing it; the answer is kept in
    pytest's cache per transformers version (a bare `pytest` collects this module)."""
    from test.common.models import transformers_catalog as catalog

    if not _ATTENTION_PATHS:  # once per process: collection asks for every architecture
        _ATTENTION_PATHS.update(
            catalog.attention_paths_by_model_type(getattr(config, "cache", None))
        )
    return _ATTENTION_PATHS[model_type]


_ATTENTION_PATHS: dict[str, tuple[str, ...]] = {}


#: How often this worker built each architecture's subject: once, or the
#: fixture's scope is broken (tiny_models.BUILD_COUNTS also counts other users).
SUBJECT_BUILDS: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
def subject(architecture: str):
    from test.common.models import tiny_models

    one_thread_per_worker()
    spec = load_registry()[architecture]
    tiny = tiny_models.build_tiny_model(architecture)
    SUBJECT_BUILDS[architecture] += 1
    yield make_subject(spec, tiny)
    # Release the model before the worker builds the next architecture.
    del tiny
    gc.collect()


@pytest.fixture(autouse=True)
def _record_tiny_weights(record_property: Any) -> None:
    record_property("model_weights", "tiny")


def test_loads(
    architecture: str,
    subject: Subject,
    device: str,
    record_property: Any,
    request: pytest.FixtureRequest,
) -> None:
    import torch

    from test.common.models.transformers_catalog import ATTENTION_FLAGS

    record_property("parameters", subject.tiny.parameters)
    # The source scan that decides which architectures get attention_paths items
    # must agree with the class itself.
    supported = [
        path for path, flag in ATTENTION_FLAGS if getattr(type(subject.model), flag, False)
    ]
    declared = ("eager", *supported)
    assert attention_paths(architecture, request.config) == declared, (
        f"the source scan says {attention_paths(architecture, request.config)}, "
        f"{type(subject.model).__name__} declares {declared}"
    )
    model = on(subject, device)
    assert SUBJECT_BUILDS[architecture] == 1, "the tiny model was built more than once"
    assert subject.tiny.parameters <= subject.spec.max_parameters, (
        f"{subject.tiny.parameters:,} parameters, above the cap of "
        f"{subject.spec.max_parameters:,}: shrink it with a config_overrides row"
    )
    for name, parameter in model.named_parameters():
        assert torch.isfinite(parameter).all(), f"parameter {name} is not finite"
    assert not model.training, "from_pretrained models must be in eval mode"


def test_round_trip(architecture: str, subject: Subject, device: str) -> None:
    import torch
    from transformers import AutoModel

    reloaded = AutoModel.from_pretrained(subject.tiny.path, use_safetensors=True)
    reloaded = reloaded.to(device).eval()
    original = subject.reference(device)
    torch.manual_seed(GOLDEN_SEED)
    again = primary(run(reloaded, subject.inputs, device), subject.recipe)
    assert torch.equal(original, again), "the reloaded model gives different outputs"


def test_forward(
    architecture: str, subject: Subject, device: str, request: pytest.FixtureRequest
) -> None:
    import torch

    from test.common.models.model_inputs import item_singles, packs_items
    from test.common.results.recorder import measure_forward

    model = on(subject, device)
    outputs = subject.outputs(device)
    output = primary(outputs, subject.recipe)
    assert torch.isfinite(output).all(), "the output contains NaN or inf"
    if packs_items(subject.recipe):
        # Two items packed into one run of rows: the output holds both items' rows.
        singles = item_singles(subject.recipe, subject.inputs)
        _items_of_batch(subject, model, device, output, singles)  # asserts the rows add up
    else:
        assert output.shape[0] == 2, f"batch of 2 gave an output of shape {tuple(output.shape)}"
    hidden = getattr(outputs, "last_hidden_state", None)
    if subject.recipe.kind == "text" and hidden is not None:
        length = subject.recipe.sequence_length
        assert tuple(hidden.shape[:2]) == (2, length), (
            f"text of shape (2, {length}) gave hidden states of shape {tuple(hidden.shape)}"
        )
    if device != "cpu":
        assert_close(output, subject.cpu_reference, DEVICE_TOLERANCE, DEVICE_TOLERANCE, device)
    # Latency, memory and size for the results database (a no-op when not recorded).
    measure_forward(request.node, model, lambda: run(model, subject.inputs, device), device)


def test_determinism(architecture: str, subject: Subject, device: str) -> None:
    import torch

    first = subject.reference(device)  # the first forward on this device, earlier
    second = primary(run(on(subject, device), subject.inputs, device), subject.recipe)
    assert torch.equal(first, second), "two eval-mode forwards differ"


def _items_of_batch(
    subject: Subject, model: Any, device: str, batched: Any, singles: list[dict[str, Any]]
) -> list[tuple[Any, Any]]:
    """(the batch output's part for each item, that item's output alone)."""
    from test.common.models.model_inputs import batch_items

    alone = [primary(run(model, single, device), subject.recipe) for single in singles]
    return list(zip(batch_items(subject.recipe, batched, alone), alone, strict=True))


def test_batch_consistency(architecture: str, subject: Subject, device: str) -> None:
    _, singles, padding, batched = subject.padded(device)
    items = _items_of_batch(subject, on(subject, device), device, batched, singles)
    for index, (item, alone) in enumerate(items):
        if index == 1 and padding and item.shape != alone.shape and item.ndim >= 2:
            # Token-aligned outputs: compare the positions that hold real tokens.
            item = item[:, : alone.shape[1]]
        assert_close(item, alone, BATCH_ATOL, BATCH_RTOL, f"item {index} of the padded batch")


def test_bad_input(architecture: str, subject: Subject, device: str) -> None:
    from test.common.models.model_inputs import bad_inputs

    model = on(subject, device)
    # The well-formed batch must work, or an exception below would prove nothing.
    subject.reference(device)
    accepted, silent = [], []
    for problem, inputs in bad_inputs(subject.recipe).items():
        try:
            run(model, inputs, device)
        except Exception as error:  # any exception is right, if it says what is wrong
            if not str(error).strip():
                silent.append(f"{problem} ({type(error).__name__})")
        else:
            accepted.append(problem)
    assert not accepted, f"malformed input accepted without an error: {', '.join(accepted)}"
    assert not silent, f"malformed input raised without a message: {', '.join(silent)}"


def test_reduced_precision(architecture: str, subject: Subject, device: str) -> None:
    import torch

    reference = subject.reference(device)
    model = bfloat16_model(subject, device)
    keep = subject.recipe.float32_inputs
    reduced = run(model, subject.inputs, device, dtype=torch.bfloat16, keep=keep)
    reduced = primary(reduced, subject.recipe)
    if not reference.is_floating_point():
        # Discrete outputs (a codec's audio codes) have no relative error: the same codes.
        assert torch.equal(reduced.cpu(), reference.cpu()), "bfloat16 gives different codes"
        return
    reduced = reduced.float()
    assert torch.isfinite(reduced).all(), "bfloat16 output contains NaN or inf"
    assert reduced.shape == reference.shape
    tolerance = BF16_TOLERANCE[subject.spec.modality]
    error = ((reduced - reference).norm() / reference.norm().clamp_min(1e-6)).item()
    assert error <= tolerance, (
        f"bfloat16 differs from float32 by {error:.3f} (relative), above {tolerance}"
    )


def bfloat16_model(subject: Subject, device: str) -> Any:
    """The subject in bfloat16.  A model that declares `_keep_in_fp32_modules_strict`
    (MoE routers, attention sinks) keeps those in float32 when loaded with `dtype=`,
    as its checkpoints load; `.to(bfloat16)` would cast them too, which its forward
    does not expect, so it is reloaded.  Any other is a cast copy."""
    import torch
    from transformers import AutoModel

    if getattr(subject.model, "_keep_in_fp32_modules_strict", None):
        reloaded = AutoModel.from_pretrained(
            subject.tiny.path, dtype=torch.bfloat16, use_safetensors=True
        )
        return reloaded.to(device).eval()
    return copy.deepcopy(subject.model).to(device=device, dtype=torch.bfloat16)


def test_golden(architecture: str, subject: Subject, device: str, goldens_book: Any) -> None:
    goldens_book.check(architecture, subject.reference(device), device)


def with_attention(subject: Subject, implementation: str, device: str) -> Any:
    """The subject's model using `implementation`.

    The subject is loaded with transformers' default (sdpa where the model and each
    of its sub-models support it); any other implementation is set on a copy, so
    that the subject is never left switched.  The switch is checked: a model that
    ignored it would compare an implementation with itself."""
    from transformers import AutoModel

    model = on(subject, device)
    if model.config._attn_implementation == implementation:
        return model
    switched = copy.deepcopy(model)
    switched.set_attn_implementation(implementation)
    if switched.config._attn_implementation != implementation:
        # Models that cannot switch after loading (a warning, nothing changed).
        switched = AutoModel.from_pretrained(
            subject.tiny.path, attn_implementation=implementation, use_safetensors=True
        ).to(device)
    assert switched.config._attn_implementation == implementation, (
        f"asked for {implementation} attention, got {switched.config._attn_implementation}"
    )
    return switched.eval()


def _real_positions(output: Any, length: int, padding: int) -> Any:
    """The output without the padded positions of item 1, where they are an axis."""
    if padding and output.ndim >= 2 and output.shape[1] == length:
        return [output[0], output[1, : length - padding]]
    return [output]


def test_attention_paths(
    architecture: str,
    subject: Subject,
    device: str,
    request: pytest.FixtureRequest,
    record_property: Any,
) -> None:
    from test.common.plugins.golden_plugin import compared_attention_paths

    declared = attention_paths(architecture, request.config)
    paths = compared_attention_paths(declared, device, request.config)
    if len(paths) < 2:
        pytest.skip(
            f"declares {', '.join(declared)}; flex_attention is not compared on {device} by "
            "default (inductor compiles C++ per model, ~10 s each): --cpu-flex-attention"
        )
    batch, _, padding, default_output = subject.padded(device)
    outputs = {}
    for path in paths:
        model = with_attention(subject, path, device)
        same = model is subject.model  # the loaded default: its output is computed already
        outputs[path] = (
            default_output if same else primary(run(model, batch, device), subject.recipe)
        )
    length = subject.recipe.sequence_length
    eager = outputs["eager"].float().cpu()
    disagree = []
    for path in paths[1:]:
        other = outputs[path].float().cpu()
        assert other.shape == eager.shape, f"{path}: shape {other.shape} != {eager.shape}"
        # Padded positions attend to real tokens only; where they are an axis of the
        # output they are left out, as transformers' own equivalence tests do.
        pairs = zip(
            _real_positions(other, length, padding),
            _real_positions(eager, length, padding),
            strict=True,
        )
        difference = max(((a - b).abs().max().item() for a, b in pairs if b.numel()), default=0.0)
        scale = eager.abs().max().item() if eager.numel() else 0.0
        allowed = ATTENTION_ATOL + ATTENTION_RTOL * scale
        record_property(f"{path}_difference", f"{difference:.3g} of {scale:.3g}")
        if not difference <= allowed:
            disagree.append(
                f"{path} differs from eager by {difference:.3g} (allowed {allowed:.3g})"
            )
    assert not disagree, "; ".join(disagree)
