"""What each task's head must output, and the labels it trains on.

A head belongs to the tasks of the auto mappings that name it (test/common/models/heads.py).
Each task here is one entry: a shape rule (what its output must look like for the
battery's batch of 2) and, where transformers defines a loss for it, a labels rule.
A task without a labels rule trains on a surrogate loss (the mean square of its
primary output), which still checks that gradients reach the parameters.

torch is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

BATCH = 2
#: Choices per item of a multiple-choice batch.
CHOICES = 2
#: The characters of a CTC head whose config leaves its vocabulary unset.
CTC_VOCABULARY = 32


def _text_config(config: Any) -> Any:
    """The config of the text model; the config itself where it has none, or several
    (MusicGen's text encoder and decoder: its heads read the outer config)."""
    getter = getattr(config, "get_text_config", None)
    try:
        return getter() if getter else config
    except ValueError:
        return config


def vocabulary_size(model: Any) -> int | None:
    """The width of the head's vocabulary projection."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None and weight.ndim == 2:
        return int(weight.shape[0])
    return getattr(_text_config(model.config), "vocab_size", None)


def num_labels(model: Any) -> int:
    return int(getattr(model.config, "num_labels", 2) or 2)


def adjust_config(tasks: tuple[str, ...], config: Any) -> None:
    """What a head of `tasks` needs in its (tiny) config, as its documentation asks:
    a causal-LM head of an encoder (BertLMHeadModel) is a decoder (`is_decoder`);
    a sequence classifier needs a pad token to find each item's last token; a CTC head
    a vocabulary."""
    text = _text_config(config)
    if "causal-lm" in tasks:
        for part in {id(config): config, id(text): text}.values():
            part.is_decoder = True
    if "sequence-classification" in tasks and getattr(text, "pad_token_id", 0) is None:
        text.pad_token_id = 0
    if "ctc" in tasks and getattr(config, "vocab_size", 0) is None:
        # Speech encoders leave the CTC vocabulary to the fine-tuning (vocab_size None).
        config.vocab_size = CTC_VOCABULARY


def tying_config(model: Any, output_embeddings: Any) -> Any:
    """The config of the innermost (sub-)model whose output embeddings these are."""
    owner = model
    for module in model.modules():
        getter = getattr(module, "get_output_embeddings", None)
        if getter is None or not hasattr(module, "config"):
            continue
        try:
            mine = getter()
        except NotImplementedError:
            continue
        if mine is output_embeddings:
            owner = module
    return owner.config


def task_inputs(tasks: tuple[str, ...], inputs: dict[str, Any], config: Any) -> dict[str, Any]:
    """The inputs a head of `tasks` takes: a multiple-choice head reads (batch, choices,
    length); an encoder-decoder's sequence classifier pools at the end-of-sequence token,
    so every text ends with one, as its tokenizer makes them; every other head takes the
    battery's inputs."""
    eos = getattr(_text_config(config), "eos_token_id", None)
    if "sequence-classification" in tasks and config.is_encoder_decoder and eos is not None:
        ids = inputs["input_ids"].clone()
        ids[:, -1] = eos if isinstance(eos, int) else eos[0]
        inputs = {**inputs, "input_ids": ids}
    if "multiple-choice" not in tasks:
        return inputs
    return {
        name: value.unsqueeze(1).expand(-1, CHOICES, *value.shape[1:]).contiguous()
        if hasattr(value, "ndim") and value.ndim == 2
        else value
        for name, value in inputs.items()
    }


def _text_length(inputs: Mapping[str, Any]) -> int | None:
    ids = inputs.get("input_ids")
    return int(ids.shape[-1]) if ids is not None and hasattr(ids, "shape") else None


def _shape(name: str, tensor: Any, expected: tuple[Any, ...]) -> list[str]:
    """Problems with `tensor`'s shape against `expected` (None: any size)."""
    if tensor is None:
        return [f"no {name} in the output"]
    shape = tuple(tensor.shape)
    if len(shape) != len(expected) or any(
        want is not None and got != want for got, want in zip(shape, expected, strict=False)
    ):
        return [f"{name} has shape {shape}, expected {expected} (None: any)"]
    return []


def _language_logits(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    logits = getattr(outputs, "logits", None)
    problems = _shape("logits", logits, (BATCH, None, vocabulary_size(model)))
    length = _text_length(inputs)
    if not problems and length is not None:
        text_only = set(inputs) <= {"input_ids", "attention_mask", "token_type_ids"}
        # Multimodal heads may put image positions before the text (GIT): at least as long.
        if (logits.shape[1] != length) if text_only else (logits.shape[1] < length):
            problems.append(f"logits cover {logits.shape[1]} positions for {length} tokens")
    return problems


def _decoder_logits(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    decoder = inputs.get("decoder_input_ids")
    length = int(decoder.shape[-1]) if decoder is not None else None
    return _shape(
        "logits", getattr(outputs, "logits", None), (BATCH, length, vocabulary_size(model))
    )


def _per_item(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    return _shape("logits", getattr(outputs, "logits", None), (BATCH, num_labels(model)))


def _per_token(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    expected = (BATCH, _text_length(inputs), num_labels(model))
    return _shape("logits", getattr(outputs, "logits", None), expected)


def _spans(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    length = _text_length(inputs)
    return [
        *_shape("start_logits", getattr(outputs, "start_logits", None), (BATCH, length)),
        *_shape("end_logits", getattr(outputs, "end_logits", None), (BATCH, length)),
    ]


def _choices(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    return _shape("logits", getattr(outputs, "logits", None), (BATCH, CHOICES))


def _next_sentence(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    return _shape("logits", getattr(outputs, "logits", None), (BATCH, 2))


def _frames(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    vocab = getattr(model.config, "vocab_size", None)
    return _shape("logits", getattr(outputs, "logits", None), (BATCH, None, vocab))


def _detections(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    logits = getattr(outputs, "logits", None)
    problems = _shape("logits", logits, (BATCH, None, None))
    queries = logits.shape[1] if logits is not None and logits.ndim == 3 else None
    return problems + _shape(
        "pred_boxes", getattr(outputs, "pred_boxes", None), (BATCH, queries, 4)
    )


def _segmentation(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    return _shape(
        "logits", getattr(outputs, "logits", None), (BATCH, num_labels(model), None, None)
    )


def _depth(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    return _shape("predicted_depth", getattr(outputs, "predicted_depth", None), (BATCH, None, None))


def _feature_maps(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    maps = getattr(outputs, "feature_maps", None)
    if not maps:
        return ["no feature_maps in the output"]
    return [
        f"feature map {index} has shape {tuple(fmap.shape)}: no batch of {BATCH} first"
        for index, fmap in enumerate(maps)
        if fmap.shape[0] != BATCH
    ]


def _xvectors(model: Any, inputs: Mapping[str, Any], outputs: Any) -> list[str]:
    width = getattr(model.config, "xvector_output_dim", None)
    return _shape("embeddings", getattr(outputs, "embeddings", None), (BATCH, width))


#: task -> the rule its output must satisfy.  A task without one is held to the rule
#: every head is: its primary output has the batch first, and is finite.
SHAPE_RULES: dict[str, Callable[[Any, Mapping[str, Any], Any], list[str]]] = {
    "causal-lm": _language_logits,
    "masked-lm": _language_logits,
    "image-text-to-text": _language_logits,
    "multimodal-lm": _language_logits,
    "seq-to-seq-causal-lm": _decoder_logits,
    "speech-seq-2-seq": _decoder_logits,
    "sequence-classification": _per_item,
    "image-classification": _per_item,
    "audio-classification": _per_item,
    "video-classification": _per_item,
    "token-classification": _per_token,
    "question-answering": _spans,
    "multiple-choice": _choices,
    "next-sentence-prediction": _next_sentence,
    "ctc": _frames,
    "object-detection": _detections,
    "semantic-segmentation": _segmentation,
    "depth-estimation": _depth,
    "backbone": _feature_maps,
    "audio-xvector": _xvectors,
}


def output_problems(
    tasks: tuple[str, ...], model: Any, inputs: Mapping[str, Any], outputs: Any
) -> list[str]:
    """What is wrong with a head's outputs for each of its tasks that has a rule."""
    return [
        f"{task}: {problem}"
        for task in tasks
        if task in SHAPE_RULES
        for problem in SHAPE_RULES[task](model, inputs, outputs)
    ]


# -- labels ------------------------------------------------------------------------------


def _copy_ids(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    ids = inputs.get("input_ids")
    return {} if ids is None else {"labels": ids.clone()}


def _decoder_ids(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    ids = inputs.get("decoder_input_ids")
    return {} if ids is None else {"labels": ids.clone()}


def _item_classes(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    if num_labels(model) == 1:
        return {"labels": torch.tensor([0.25, -0.5])}
    return {"labels": torch.arange(BATCH) % num_labels(model)}


def _token_classes(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    length = _text_length(inputs)
    if length is None:
        return {}
    return {"labels": torch.arange(BATCH * length).reshape(BATCH, length) % num_labels(model)}


def _span_positions(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    return {"start_positions": torch.tensor([0, 1]), "end_positions": torch.tensor([1, 2])}


def _choice(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    return {"labels": torch.arange(BATCH) % CHOICES}


def _transcripts(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    vocab = getattr(model.config, "vocab_size", 3) or 3
    return {"labels": torch.arange(1, 1 + BATCH * 2).reshape(BATCH, 2) % (vocab - 1) + 1}


def _boxes(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    target = {"class_labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.25, 0.25]])}
    return {"labels": [dict(target) for _ in range(BATCH)]}


def _pixel_classes(model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    pixels = inputs.get("pixel_values")
    if pixels is None or pixels.ndim != 4:
        return {}
    height, width = pixels.shape[-2:]
    return {"labels": torch.arange(BATCH * height * width).reshape(BATCH, height, width) % 2}


#: task -> the labels its loss takes, built from the inputs (empty: none fits).
LABEL_RULES: dict[str, Callable[[Any, Mapping[str, Any]], dict[str, Any]]] = {
    "causal-lm": _copy_ids,
    "masked-lm": _copy_ids,
    "image-text-to-text": _copy_ids,
    "multimodal-lm": _copy_ids,
    "seq-to-seq-causal-lm": _decoder_ids,
    "speech-seq-2-seq": _decoder_ids,
    "sequence-classification": _item_classes,
    "image-classification": _item_classes,
    "audio-classification": _item_classes,
    "video-classification": _item_classes,
    "audio-xvector": _item_classes,
    "next-sentence-prediction": _item_classes,
    "token-classification": _token_classes,
    "question-answering": _span_positions,
    "multiple-choice": _choice,
    "ctc": _transcripts,
    "object-detection": _boxes,
    "semantic-segmentation": _pixel_classes,
}


def labels_for(tasks: tuple[str, ...], model: Any, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Labels of the first task that has a rule and that the model's forward takes."""
    from test.common.models.model_inputs import forward_parameters

    accepted = forward_parameters(model)
    for task in tasks:
        rule = LABEL_RULES.get(task)
        labels = rule(model, inputs) if rule else {}
        if labels and set(labels) <= accepted:
            return labels
    return {}
