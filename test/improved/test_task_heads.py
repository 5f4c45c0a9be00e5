"""Every task head: each model class of a `MODEL_FOR_*` auto mapping, built tiny.

The classes come from test/common/models/heads.py (derived from the installed
transformers); a head reuses its architecture's row and adds its own from
test/common/models/heads.toml.  Ids read `test_train_step[BertForMaskedLM-cpu]`.

- task_output: the task's output has the task's shape (test/common/checks/tasks.py) and
  is finite;
- train_step: with labels of the task's kind the loss is a finite scalar; every
  parameter the loss reaches gets a finite gradient, and the head's own weights a
  nonzero one; one small step down the gradient lowers the loss;
- tied_weights (heads that project onto a vocabulary): input and output embeddings are
  one tensor where the config ties them and two where it does not, after the head was
  saved with safetensors and loaded back with `from_pretrained`;
- generation (causal-LM, seq2seq, speech-seq2seq, image-text-to-text, multimodal-LM
  heads): greedy generation with the KV cache equals greedy generation without it,
  and gives exactly the tokens asked for (test/common/checks/generation.py);
- padded_batch (text generators): each sequence of a padded batch generates what it
  generates alone; a decoder's prompts are padded on the left, an encoder's inputs on
  the right, as their tokenizers pad them.

Expected failures are keyed by platform (test/common/plugins/expectations.py).  torch
and transformers are imported inside fixtures and tests only.
"""

from __future__ import annotations

import copy
import functools
import gc
from typing import Any

import pytest

from test.common.checks.running import (
    Subject,
    make_subject,
    on,
    one_thread_per_worker,
    primary,
    run,
    seed_everything,
    single_thread,
)
from test.common.checks.tasks import adjust_config
from test.common.models.heads import load_heads
from test.common.models.registry import MODALITY_MARKS

pytestmark = [pytest.mark.model_test, pytest.mark.model]

TEXT_MODALITIES = ("text-encoder", "text-decoder", "encoder-decoder")
#: Which heads each check applies to; a check not named here applies to every head.
APPLIES = {
    "tied_weights": lambda spec: spec.language_modelling,
    "generation": lambda spec: spec.generative,
    "padded_batch": lambda spec: spec.generative and spec.modality in TEXT_MODALITIES,
}
#: The step of the training check: lr / ||gradient||, so every head moves as far.
STEP = 1e-2
TRAIN_SEED = 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_class" not in metafunc.fixturenames:
        return
    check = metafunc.function.__name__.removeprefix("test_")
    applies = APPLIES.get(check, lambda spec: True)
    params = []
    for spec in load_heads().values():
        if not applies(spec):
            continue
        marks = [pytest.mark.xdist_group(spec.class_name)]
        if spec.modality in MODALITY_MARKS:
            marks.append(getattr(pytest.mark, MODALITY_MARKS[spec.modality]))
        params.append(pytest.param(spec.class_name, id=spec.class_name, marks=marks))
    metafunc.parametrize("model_class", params, scope="module")


@pytest.fixture(scope="module")
def head(model_class: str):
    from test.common.models import tiny_models

    one_thread_per_worker()
    spec = load_heads()[model_class]
    tiny = tiny_models.build_tiny_model(
        spec.model_type,
        class_name=model_class,
        overrides=dict(spec.config_overrides),
        adjust=functools.partial(adjust_config, spec.tasks),
    )
    yield make_subject(spec, tiny)
    del tiny
    gc.collect()


@pytest.fixture(autouse=True)
def _record_tiny_weights(record_property: Any) -> None:
    record_property("model_weights", "tiny")


def _inputs(head: Subject) -> dict[str, Any]:
    from test.common.checks.tasks import task_inputs

    return task_inputs(head.spec.tasks, head.inputs, head.model.config)


def test_task_output(model_class: str, head: Subject, device: str) -> None:
    import torch

    from test.common.checks.tasks import output_problems

    inputs = _inputs(head)
    torch.manual_seed(TRAIN_SEED)
    outputs = run(on(head, device), inputs, device)
    problems = output_problems(head.spec.tasks, head.model, inputs, outputs)
    assert not problems, "; ".join(problems)
    output = primary(outputs, head.recipe)
    assert torch.isfinite(output.float()).all(), "the output contains NaN or inf"


def _loss(
    model: Any, head: Subject, inputs: dict[str, Any], labels: dict[str, Any], device: str
) -> Any:
    """The head's loss on `labels`, or a surrogate where it has none; seeded, so that
    dropout, SpecAugment (numpy) and BigBird's random blocks draw alike each time."""
    from test.common.models.model_inputs import to_device

    seed_everything(TRAIN_SEED)
    outputs = model(**to_device(inputs, device), **to_device(labels, device))
    loss = getattr(outputs, "loss", None)
    if loss is None:
        tensor = primary(outputs, head.recipe)
        loss = tensor.float().pow(2).mean()
    return loss


def test_train_step(model_class: str, head: Subject, device: str, record_property: Any) -> None:
    with single_thread():
        _train_step(head, device, record_property)


def _train_step(head: Subject, device: str, record_property: Any) -> None:
    import torch

    from test.common.checks.tasks import labels_for
    from test.common.models.model_inputs import forward_parameters

    model = copy.deepcopy(head.model).to(device).train()
    inputs = _inputs(head)
    if "use_cache" in forward_parameters(model):
        inputs = {**inputs, "use_cache": False}
    labels = labels_for(head.spec.tasks, model, inputs)
    record_property("loss", "labels" if labels else "surrogate")
    loss = _loss(model, head, inputs, labels, device)
    assert loss.ndim == 0, f"the loss has shape {tuple(loss.shape)}, not a scalar"
    assert torch.isfinite(loss), f"the loss is {loss.item()}"
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    gradients = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    reached = [(name, p, g) for (name, p), g in zip(named, gradients, strict=True) if g is not None]
    assert reached, "the loss reaches no parameter"
    not_finite = [name for name, _, g in reached if not torch.isfinite(g).all()]
    assert not not_finite, f"non-finite gradients: {', '.join(not_finite[:5])}"
    # Inside the base model an exactly-zero gradient can be right for a tiny input (a
    # softmax over one position, a first decoder layer whose queries start at zero); the
    # head's own weights make the task output, so theirs never is.  A head's bias can be:
    # a softmax over choices or positions is blind to a bias added to all of them.
    base = (
        {id(p) for p in model.base_model.parameters()} if model.base_model is not model else set()
    )
    zero = [name for name, p, g in reached if not g.any()]
    record_property("zero_gradients", ", ".join(zero))
    zero_in_head = [
        name
        for name, p, g in reached
        if not g.any() and id(p) not in base and not name.endswith("bias")
    ]
    assert not zero_in_head, f"head parameters with a zero gradient: {', '.join(zero_in_head[:5])}"
    norm = torch.sqrt(sum(g.double().pow(2).sum() for _, _, g in reached)).item()
    with torch.no_grad():
        for _, parameter, gradient in reached:
            parameter -= (STEP / norm) * gradient
    after = _loss(model, head, inputs, labels, device)
    assert after < loss, f"a step down the gradient moved the loss from {loss:.6g} to {after:.6g}"


def _assert_tying(model: Any) -> None:
    from test.common.checks.tasks import tying_config

    output = model.get_output_embeddings()
    if output is None or getattr(output, "weight", None) is None:
        pytest.skip(f"{type(model).__name__} has no output embedding matrix")
    # transformers ties by the flag of the config of the (sub-)model that owns the output
    # embeddings: BLIP-2's language model follows its text config, not the outer one.
    tied = bool(getattr(tying_config(model, output), "tie_word_embeddings", False))
    shared = model.get_input_embeddings().weight.data_ptr() == output.weight.data_ptr()
    assert shared == tied, (
        f"the config says tie_word_embeddings={tied}, but the input and output embeddings "
        f"are {'one tensor' if shared else 'two tensors'} after save_pretrained and "
        "from_pretrained"
    )


def test_tied_weights(model_class: str, head: Subject, device: str) -> None:
    # The head was saved with safetensors and loaded back: tying must survive that.
    _assert_tying(on(head, device))


def test_generation(model_class: str, head: Subject, device: str) -> None:
    from test.common.checks.generation import NEW_TOKENS, disagreement, generate, prompt_of

    model = on(head, device)
    prompt = prompt_of(head.inputs)
    cached, cached_logits = generate(model, prompt, device, use_cache=True)
    plain, plain_logits = generate(model, prompt, device, use_cache=False)
    assert cached.shape[-1] == NEW_TOKENS, f"{cached.shape[-1]} new tokens, asked for {NEW_TOKENS}"
    assert plain.shape == cached.shape, f"{tuple(plain.shape)} != {tuple(cached.shape)}"
    for item in range(cached.shape[0]):
        problem = disagreement(
            cached[item],
            cached_logits[:, item],
            plain[item],
            plain_logits[:, item],
            f"sequence {item} with the cache against without",
        )
        assert problem is None, problem


def test_padded_batch(model_class: str, head: Subject, device: str) -> None:
    import torch

    from test.common.checks.generation import disagreement, generate, prompt_of
    from test.common.models.model_inputs import PADDING

    model = on(head, device)
    prompt = prompt_of(head.inputs)
    ids = prompt.get("input_ids")
    if ids is None or set(prompt) - {"input_ids", "attention_mask", "token_type_ids"}:
        pytest.skip(f"the prompt is not text alone: {sorted(prompt)}")
    pad = model.generation_config.pad_token_id
    padding = torch.full((PADDING,), 0 if pad is None else pad)
    short = ids[1, PADDING:]
    real, none = torch.ones_like(short), torch.zeros(PADDING, dtype=torch.long)
    # Prompts of a decoder are padded on the left, so that generation continues each
    # from its last real token; an encoder's inputs on the right, as its tokenizer does.
    right = model.config.is_encoder_decoder
    batch = {
        "input_ids": torch.stack(
            [ids[0], torch.cat([short, padding] if right else [padding, short])]
        ),
        "attention_mask": torch.stack(
            [torch.ones_like(ids[0]), torch.cat([real, none] if right else [none, real])]
        ),
    }
    batched, batched_logits = generate(model, batch, device, use_cache=True)
    for item, alone_ids in enumerate([ids[:1], short[None]]):
        alone_prompt = {"input_ids": alone_ids, "attention_mask": torch.ones_like(alone_ids)}
        alone, alone_logits = generate(model, alone_prompt, device, use_cache=True)
        problem = disagreement(
            batched[item],
            batched_logits[:, item],
            alone[0],
            alone_logits[:, 0],
            f"sequence {item} of the padded batch against alone",
        )
        assert problem is None, problem
