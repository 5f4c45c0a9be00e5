"""Shared checks for the ten priority models (test/improved/test_hf_<name>_improved.py).

A per-model file declares one `PriorityModel` (model type, task head, pipeline task,
hub checkpoint, which check groups apply) and a test class inheriting the matching
check classes below; every behaviour lives here once.

Subjects (model + preprocessing) come from `--model-source`:
- tiny: the architecture's tiny config (test/common/models/tiny_models.py) aligned with the
  offline tokenizer/processors (test/common/models/preprocessing.py), random weights;
- hub: the real checkpoint `hub_id`, from the local Hugging Face cache only.
Each test records which (`model_weights` = real | tiny) for the end-of-run summary.

torch and transformers are imported lazily (the per-model files import this module
at collection time, when model tests may be gated).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from test.common.models import preprocessing
from test.common.plugins.model_source import REAL, TINY, cached_checkpoint, record_model_weights

SEED = 0
PROMPTS = ("The cat sat on the", "Paris is the capital of France and Berlin is")
CANDIDATE_LABELS = ("a photo of a cat", "a photo of a dog", "a picture of a car")
NEW_TOKENS = 6
#: Float noise allowed between a padded and an unpadded forward pass.
PADDING_ATOL = 1e-4


class CheckpointError(RuntimeError):
    """A checkpoint on disk is incomplete: the message names the folder and the keys."""


@dataclass(frozen=True)
class PriorityModel:
    """What differs between the priority models: data, not code."""

    name: str
    model_type: str
    model_class: str  # the transformers class carrying the task head
    task: str  # the pipeline task
    hub_id: str  # a real checkpoint, used with --model-source hub
    modality: str  # pytest marker: text, vision, audio or multimodal
    #: "decoder" (prompt continues), "seq2seq" (encoder-decoder text) or "speech".
    generation: str | None = None
    config_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def marks(self) -> list[pytest.MarkDecorator]:
        return [pytest.mark.model_test, pytest.mark.model, getattr(pytest.mark, self.modality)]


@dataclass
class Subject:
    """A loaded model with the preprocessing it ships with, on one device."""

    spec: PriorityModel
    model: Any
    weights: str  # REAL or TINY
    device: str
    tokenizer: Any = None
    image_processor: Any = None
    feature_extractor: Any = None

    def encode(self, texts: list[str], padding_side: str = "right") -> Any:
        self.tokenizer.padding_side = padding_side
        return self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)


# ----------------------------------------------------------------------------- subjects

_SUBJECTS: dict[tuple[str, str, str], Subject] = {}


def _transformers_class(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def _tiny_overrides(spec: PriorityModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """Config overrides aligning the tiny config with the offline preprocessing, and the
    preprocessing itself (keyword arguments of Subject)."""
    parts: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    if spec.model_type in preprocessing.FAMILY_OF_MODEL_TYPE:
        parts["tokenizer"] = preprocessing.tokenizer_for(spec.model_type)
        overrides = preprocessing.token_config_overrides(parts["tokenizer"])
    if spec.model_type == "clip":
        overrides = {"text_config": overrides}
    if spec.model_type == "whisper":
        tokenizer = parts["tokenizer"]
        overrides["decoder_start_token_id"] = tokenizer.convert_tokens_to_ids(
            "<|startoftranscript|>"
        )
        overrides["max_source_positions"] = preprocessing.whisper_encoder_positions()
    overrides.update(spec.config_overrides)
    return overrides, parts


def _tiny_subject(spec: PriorityModel, device: str) -> Subject:
    import torch

    from test.common.models.tiny_models import tiny_config

    overrides, parts = _tiny_overrides(spec)
    config = tiny_config(spec.model_type, **overrides)
    torch.manual_seed(SEED)
    model = _transformers_class(spec.model_class)(config)
    if spec.model_type == "vit":
        parts["image_processor"] = preprocessing.build_image_processor(
            "vit", image_size=config.image_size
        )
    if spec.model_type == "clip":
        parts["image_processor"] = preprocessing.build_image_processor(
            "clip", image_size=config.vision_config.image_size
        )
    if spec.model_type == "whisper":
        parts["feature_extractor"] = preprocessing.whisper_feature_extractor(
            num_mel_bins=config.num_mel_bins
        )
    return Subject(spec, model.eval().to(device), TINY, device, **parts)


def _hub_subject(spec: PriorityModel, device: str) -> Subject:
    folder = cached_checkpoint(spec.hub_id)
    auto = _transformers_class
    model = auto(spec.model_class).from_pretrained(folder, local_files_only=True)
    parts: dict[str, Any] = {}
    if spec.modality in ("text", "multimodal", "audio"):
        parts["tokenizer"] = auto("AutoTokenizer").from_pretrained(folder, local_files_only=True)
    if spec.modality in ("vision", "multimodal"):
        parts["image_processor"] = auto("AutoImageProcessor").from_pretrained(
            folder, local_files_only=True
        )
    if spec.modality == "audio":
        parts["feature_extractor"] = auto("AutoFeatureExtractor").from_pretrained(
            folder, local_files_only=True
        )
    return Subject(spec, model.eval().to(device), REAL, device, **parts)


def load_subject(spec: PriorityModel, source: str, device: str) -> Subject:
    """The spec's subject from `source` on `device`, built once per process.

    Checks must leave the model unchanged (they save copies to change them).
    """
    key = (spec.name, source, device)
    if key not in _SUBJECTS:
        build = _hub_subject if source == "hub" else _tiny_subject
        _SUBJECTS[key] = build(spec, device)
    return _SUBJECTS[key]


# ----------------------------------------------------------------------------- pipelines


def build_pipeline(subject: Subject, task: str | None = None) -> Any:
    import transformers

    return transformers.pipeline(
        task or subject.spec.task,
        model=subject.model,
        tokenizer=subject.tokenizer,
        image_processor=subject.image_processor,
        feature_extractor=subject.feature_extractor,
        device=subject.device,
    )


def _assert_scores(entries: list[dict[str, Any]], count: int) -> None:
    assert len(entries) == count, entries
    scores = [entry["score"] for entry in entries]
    assert all(isinstance(score, float) and 0.0 <= score <= 1.0 for score in scores), scores
    assert scores == sorted(scores, reverse=True), f"scores not sorted: {scores}"


def _fill_mask(subject: Subject, pipe: Any) -> None:
    text = f"The cat sat on the {subject.tokenizer.mask_token}."
    entries = pipe(text, top_k=3)
    _assert_scores(entries, 3)
    for entry in entries:
        assert set(entry) == {"score", "token", "token_str", "sequence"}, entry
        assert isinstance(entry["token"], int)
        assert isinstance(entry["token_str"], str)
        assert subject.tokenizer.mask_token not in entry["sequence"]


def _text_generation(subject: Subject, pipe: Any) -> None:
    outputs = pipe(list(PROMPTS), max_new_tokens=NEW_TOKENS, do_sample=False)
    assert len(outputs) == len(PROMPTS)
    for prompt, output in zip(PROMPTS, outputs, strict=True):
        assert isinstance(output, list), output
        assert set(output[0]) == {"generated_text"}, output
        assert output[0]["generated_text"].startswith(prompt)


def _text2text(subject: Subject, pipe: Any) -> None:
    outputs = pipe(list(PROMPTS), max_new_tokens=NEW_TOKENS)
    key = "summary_text" if subject.spec.task == "summarization" else "generated_text"
    assert [set(output) for output in outputs] == [{key}] * len(PROMPTS), outputs
    assert all(isinstance(output[key], str) for output in outputs)


def _image_classification(subject: Subject, pipe: Any) -> None:
    entries = pipe(preprocessing.sample_image(), top_k=2)
    _assert_scores(entries, 2)
    labels = set(subject.model.config.id2label.values())
    assert all(set(entry) == {"score", "label"} and entry["label"] in labels for entry in entries)


def _zero_shot_image_classification(subject: Subject, pipe: Any) -> None:
    entries = pipe(preprocessing.sample_image(), candidate_labels=list(CANDIDATE_LABELS))
    _assert_scores(entries, len(CANDIDATE_LABELS))
    assert {entry["label"] for entry in entries} == set(CANDIDATE_LABELS)
    assert abs(sum(entry["score"] for entry in entries) - 1.0) < 1e-4  # a softmax over labels


def _speech_recognition(subject: Subject, pipe: Any) -> None:
    audio = {"raw": preprocessing.sample_audio(), "sampling_rate": 16_000}
    output = pipe(audio, generate_kwargs={"max_new_tokens": NEW_TOKENS})
    assert set(output) == {"text"}, output
    assert isinstance(output["text"], str), output


TASK_CHECKS = {
    "fill-mask": _fill_mask,
    "text-generation": _text_generation,
    "text2text-generation": _text2text,
    "summarization": _text2text,
    "image-classification": _image_classification,
    "zero-shot-image-classification": _zero_shot_image_classification,
    "automatic-speech-recognition": _speech_recognition,
}


def check_pipeline(subject: Subject, task: str | None = None) -> None:
    """Run the task's pipeline and check the documented output structure and types."""
    task = task or subject.spec.task
    TASK_CHECKS[task](subject, build_pipeline(subject, task))


def check_seq2seq_task(subject: Subject) -> None:
    """The text2text task without its pipeline: tokenize, generate, decode to text."""
    batch = subject.encode([f"summarize: {prompt}" for prompt in PROMPTS])
    texts = subject.tokenizer.batch_decode(
        _greedy(subject, batch, max_new_tokens=NEW_TOKENS), skip_special_tokens=True
    )
    assert len(texts) == len(PROMPTS)
    assert all(isinstance(text, str) for text in texts)


# ----------------------------------------------------------------------------- generation


def generation_inputs(subject: Subject) -> dict[str, Any]:
    """One model input for generate(): a prompt, or a second of audio features."""
    if subject.spec.generation == "speech":
        features = subject.feature_extractor(
            preprocessing.sample_audio(), sampling_rate=16_000, return_tensors="pt"
        )
        return {"input_features": features["input_features"].to(subject.device)}
    return dict(subject.encode([PROMPTS[0]]))


def _greedy(subject: Subject, inputs: dict[str, Any], **options: Any) -> Any:
    import torch

    options.setdefault("max_new_tokens", NEW_TOKENS)
    with torch.no_grad():
        # The dict output holds every generated step: Whisper's plain output drops a
        # generated token equal to its start token, which random weights may produce.
        output = subject.model.generate(
            **inputs, do_sample=False, num_beams=1, return_dict_in_generate=True, **options
        )
    return output.sequences


def _new_tokens(subject: Subject, inputs: dict[str, Any], output: Any) -> Any:
    """The generated part: decoder-only outputs repeat the prompt first."""
    if subject.spec.generation == "decoder":
        return output[:, inputs["input_ids"].shape[1] :]
    return output


def check_greedy_deterministic(subject: Subject) -> None:
    inputs = generation_inputs(subject)
    first, second = _greedy(subject, inputs), _greedy(subject, inputs)
    assert first.tolist() == second.tolist()


def check_kv_cache_equivalence(subject: Subject) -> None:
    inputs = generation_inputs(subject)
    cached = _greedy(subject, inputs, use_cache=True)
    uncached = _greedy(subject, inputs, use_cache=False)
    assert cached.tolist() == uncached.tolist(), "KV cache changed the greedy tokens"


def check_max_new_tokens(subject: Subject) -> None:
    inputs = generation_inputs(subject)
    for limit in (1, 4):
        free = _new_tokens(subject, inputs, _greedy(subject, inputs, max_new_tokens=limit))
        forced = _new_tokens(
            subject, inputs, _greedy(subject, inputs, max_new_tokens=limit, min_new_tokens=limit)
        )
        # Encoder-decoder outputs start with the decoder start token.
        start = 0 if subject.spec.generation == "decoder" else 1
        assert free.shape[1] - start <= limit, free.tolist()
        assert forced.shape[1] - start == limit, forced.tolist()


def check_padded_batch_equals_single(subject: Subject) -> None:
    """Greedy tokens of each prompt alone equal its row of a padded batch.

    Decoder-only models pad on the left (the continuation must follow the prompt);
    encoder-decoder models pad the encoder input on the right, as they are trained.
    """
    side = "left" if subject.spec.generation == "decoder" else "right"
    prompts = list(PROMPTS)
    batch = subject.encode(prompts, padding_side=side)
    together = _new_tokens(subject, batch, _greedy(subject, batch, min_new_tokens=NEW_TOKENS))
    for row, prompt in enumerate(prompts):
        single = subject.encode([prompt], padding_side=side)
        alone = _new_tokens(subject, single, _greedy(subject, single, min_new_tokens=NEW_TOKENS))
        assert together[row].tolist() == alone[0].tolist(), f"prompt {row}: {prompt!r}"


# ----------------------------------------------------------------------------- attention masks


def check_padding_invariance(subject: Subject) -> None:
    """Right padding (masked) leaves the logits of the real tokens unchanged."""
    import torch

    short, long = PROMPTS
    batch = subject.encode([short, long])
    alone = subject.encode([short])
    extra: dict[str, Any] = {}
    if subject.spec.generation == "seq2seq":
        start = subject.model.config.decoder_start_token_id
        extra["decoder_input_ids"] = torch.tensor([[start, 5, 6]], device=subject.device)
    with torch.no_grad():
        padded = subject.model(**batch, **_repeat(extra, 2)).logits[0]
        single = subject.model(**alone, **extra).logits[0]
    length = single.shape[0]
    assert int(batch["attention_mask"][0].sum()) == alone["input_ids"].shape[1]
    assert batch["input_ids"].shape[1] > alone["input_ids"].shape[1], "nothing was padded"
    torch.testing.assert_close(padded[:length], single, atol=PADDING_ATOL, rtol=1e-4)


def _repeat(inputs: dict[str, Any], times: int) -> dict[str, Any]:
    return {name: value.repeat(times, 1) for name, value in inputs.items()}


# ----------------------------------------------------------------------------- checkpoints


def model_inputs(subject: Subject) -> dict[str, Any]:
    """A small forward input for any of the ten."""
    import torch

    inputs: dict[str, Any] = {}
    if subject.tokenizer is not None and subject.spec.generation != "speech":
        inputs.update(subject.encode([PROMPTS[0]]))
    if subject.image_processor is not None:
        pixels = subject.image_processor(preprocessing.sample_image(), return_tensors="pt")
        inputs["pixel_values"] = pixels["pixel_values"].to(subject.device)
    if subject.spec.generation == "speech":
        inputs.update(generation_inputs(subject))
    if subject.spec.generation in ("seq2seq", "speech"):
        start = subject.model.config.decoder_start_token_id
        inputs["decoder_input_ids"] = torch.tensor([[start]], device=subject.device)
    return inputs


def _outputs(model: Any, inputs: dict[str, Any]) -> list[Any]:
    import torch

    with torch.no_grad():
        output = model(**inputs)
    return [value for value in output.values() if isinstance(value, torch.Tensor)]


def _byte_size(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.state_dict().values())


def load_strictly(class_name: str, folder: Path, device: str = "cpu") -> Any:
    """from_pretrained that refuses a checkpoint lacking tensors.

    transformers initialises missing weights randomly and only logs a load report;
    a test (or a user) loading a damaged checkpoint must get an error instead.
    """
    model, info = _transformers_class(class_name).from_pretrained(
        folder, local_files_only=True, use_safetensors=True, output_loading_info=True
    )
    if info["missing_keys"] or info["mismatched_keys"]:
        missing = sorted(info["missing_keys"]) + sorted(map(str, info["mismatched_keys"]))
        raise CheckpointError(f"{folder}: checkpoint lacks tensors {missing}")
    return model.eval().to(device)


def check_sharded_round_trip(subject: Subject, folder: Path) -> None:
    """save_pretrained(max_shard_size) writes several shards plus an index; loading them
    back reproduces every tensor and the outputs."""
    import torch

    shard_bytes = _byte_size(subject.model) // 3 + 1
    subject.model.save_pretrained(folder, max_shard_size=shard_bytes)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2, f"expected several shards at {shard_bytes} bytes, got {shards}"
    assert all((folder / shard).is_file() for shard in shards)
    reloaded = load_strictly(subject.spec.model_class, folder, subject.device)
    expected = subject.model.state_dict()
    for name, tensor in reloaded.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0, msg=name)
    inputs = model_inputs(subject)
    for got, want in zip(_outputs(reloaded, inputs), _outputs(subject.model, inputs), strict=True):
        torch.testing.assert_close(got, want)


def check_truncated_checkpoint_raises(subject: Subject, folder: Path) -> None:
    """A safetensors file cut in half fails at load with safetensors' header error."""
    subject.model.save_pretrained(folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match=r"(?i)deserializ|incomplete|truncat") as caught:
        _transformers_class(subject.spec.model_class).from_pretrained(folder, local_files_only=True)
    assert "safetensor" in type(caught.value).__module__.lower() + str(caught.value).lower()


def check_missing_tensor_raises(subject: Subject, folder: Path) -> None:
    """A checkpoint lacking one tensor is reported by transformers and refused by
    `load_strictly` with an error naming the tensor."""
    from safetensors.torch import load_file, save_file

    subject.model.save_pretrained(folder)
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    # Any saved tensor is a real weight: tied aliases and non-persistent buffers are
    # not written, so whichever we drop, the model needs it.
    dropped = sorted(tensors)[len(tensors) // 2]
    del tensors[dropped]
    save_file(tensors, weights, metadata={"format": "pt"})
    _, info = _transformers_class(subject.spec.model_class).from_pretrained(
        folder, local_files_only=True, output_loading_info=True
    )
    # The model may name the tensor differently from the file (key renaming on load).
    assert len(info["missing_keys"]) == 1, f"dropped {dropped}: {info}"
    (missing,) = info["missing_keys"]
    with pytest.raises(CheckpointError, match=re.escape(missing)):
        load_strictly(subject.spec.model_class, folder)


# ----------------------------------------------------------------------------- test classes


class PriorityModelTests:
    """Checks that apply to every priority model; subclasses set `spec`."""

    spec: ClassVar[PriorityModel]

    @pytest.fixture
    def subject(self, request: pytest.FixtureRequest, device: str, model_source: str) -> Subject:
        pytest.importorskip("torch")
        pytest.importorskip("transformers")
        loaded = load_subject(self.spec, model_source, device)
        record_model_weights(request.node, loaded.weights)
        return loaded

    def test_sharded_save_load_round_trip(self, subject: Subject, tmp_path: Path) -> None:
        check_sharded_round_trip(subject, tmp_path)

    def test_truncated_safetensors_raises(self, subject: Subject, tmp_path: Path) -> None:
        check_truncated_checkpoint_raises(subject, tmp_path)

    def test_missing_tensor_raises(self, subject: Subject, tmp_path: Path) -> None:
        check_missing_tensor_raises(subject, tmp_path)


class PipelineTests:
    """The model's task through its pipeline, with the offline preprocessing."""

    def test_task_pipeline(self, subject: Subject) -> None:
        check_pipeline(subject)


class RemovedSeq2SeqPipelineTests:
    """T5/BART tasks: transformers 5 removed the text2text pipelines, so the task is
    checked through generate(), and the pipelines are strict xfails that turn red the
    day transformers restores them."""

    def test_seq2seq_task_through_generate(self, subject: Subject) -> None:
        check_seq2seq_task(subject)

    @pytest.mark.xfail(
        strict=True,
        raises=(KeyError, ValueError),
        reason="transformers 5 removed the summarization and text2text-generation "
        "pipelines (pipelines.REMOVED_TASKS)",
    )
    @pytest.mark.parametrize("task", ["summarization", "text2text-generation"])
    def test_removed_pipeline(self, subject: Subject, task: str) -> None:
        check_pipeline(subject, task)


class AttentionMaskTests:
    def test_padding_does_not_change_real_tokens(self, subject: Subject) -> None:
        check_padding_invariance(subject)


class GenerationTests:
    def test_greedy_generation_is_deterministic(self, subject: Subject) -> None:
        check_greedy_deterministic(subject)

    def test_kv_cache_does_not_change_tokens(self, subject: Subject) -> None:
        check_kv_cache_equivalence(subject)

    def test_max_new_tokens_is_respected(self, subject: Subject) -> None:
        check_max_new_tokens(subject)


class BatchedGenerationTests:
    def test_padded_batch_equals_single(self, subject: Subject) -> None:
        check_padded_batch_equals_single(subject)


# ----------------------------------------------------------------------------- the ten

_VIT_LABELS = {"num_labels": 3, "id2label": {0: "cat", 1: "dog", 2: "car"}}

#: One row per priority model; the per-model file picks its row and its check classes.
PRIORITY_MODELS: dict[str, PriorityModel] = {
    spec.name: spec
    for spec in (
        PriorityModel(
            "bert", "bert", "BertForMaskedLM", "fill-mask", "google-bert/bert-base-uncased", "text"
        ),
        PriorityModel(
            "roberta",
            "roberta",
            "RobertaForMaskedLM",
            "fill-mask",
            "FacebookAI/roberta-base",
            "text",
        ),
        PriorityModel(
            "distilbert",
            "distilbert",
            "DistilBertForMaskedLM",
            "fill-mask",
            "distilbert/distilbert-base-uncased",
            "text",
        ),
        PriorityModel(
            "gpt2",
            "gpt2",
            "GPT2LMHeadModel",
            "text-generation",
            "openai-community/gpt2",
            "text",
            generation="decoder",
        ),
        PriorityModel(
            "llama",
            "llama",
            "LlamaForCausalLM",
            "text-generation",
            "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
            "text",
            generation="decoder",
        ),
        PriorityModel(
            "t5",
            "t5",
            "T5ForConditionalGeneration",
            "summarization",
            "google-t5/t5-small",
            "text",
            generation="seq2seq",
            config_overrides={"decoder_start_token_id": 0},  # T5 starts decoding with <pad>
        ),
        PriorityModel(
            "bart",
            "bart",
            "BartForConditionalGeneration",
            "summarization",
            "facebook/bart-base",
            "text",
            generation="seq2seq",
        ),
        PriorityModel(
            "vit",
            "vit",
            "ViTForImageClassification",
            "image-classification",
            "google/vit-base-patch16-224",
            "vision",
            config_overrides=_VIT_LABELS,
        ),
        PriorityModel(
            "clip",
            "clip",
            "CLIPModel",
            "zero-shot-image-classification",
            "openai/clip-vit-base-patch32",
            "multimodal",
        ),
        PriorityModel(
            "whisper",
            "whisper",
            "WhisperForConditionalGeneration",
            "automatic-speech-recognition",
            "openai/whisper-tiny",
            "audio",
            generation="speech",
        ),
    )
}


# ----------------------------------------------------------------------------- bundles
# The check sets shared by several of the ten, so each file names one base.


class MaskedLMTests(PriorityModelTests, PipelineTests, AttentionMaskTests):
    """BERT, RoBERTa, DistilBERT."""


class DecoderOnlyLMTests(
    PriorityModelTests, PipelineTests, AttentionMaskTests, GenerationTests, BatchedGenerationTests
):
    """GPT-2, LLaMA."""


class Seq2SeqLMTests(
    PriorityModelTests,
    RemovedSeq2SeqPipelineTests,
    AttentionMaskTests,
    GenerationTests,
    BatchedGenerationTests,
):
    """T5, BART."""


class VisionTests(PriorityModelTests, PipelineTests):
    """ViT, CLIP: the pipeline and the checkpoint checks (no text padding, no generation)."""


class SpeechSeq2SeqTests(PriorityModelTests, PipelineTests, GenerationTests):
    """Whisper."""
