"""Offline preprocessing for the whole suite: tokenizers, image processors, feature extractors.

Nothing here downloads.  Tokenizers are trained with the `tokenizers` library on the
small corpus shipped at test/common/data/corpus.txt, inside the backend pipeline
(normalizer, pre-tokenizer) of the family's own transformers class, then wrapped by
that class: a BERT tokenizer is a real `BertTokenizer` with [CLS]/[SEP]/[MASK], a
Whisper tokenizer a real `WhisperTokenizer` whose special tokens sit after the
vocabulary as in the released checkpoints (so `<|notimestamps|>` + 1 starts the
timestamp range, as the ASR pipeline assumes).  Image processors, feature extractors
and multimodal processors are built from their classes with explicit parameters.

Training is cached once per process; every call returns a fresh, independent object
(pipelines and tests mutate tokenizers, e.g. `padding_side`).

torch, transformers and tokenizers are imported lazily: importing this module is free.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS_PATH = Path(__file__).resolve().parents[1] / "data" / "corpus.txt"
#: Small enough to train in milliseconds, large enough to split common words whole.
DEFAULT_VOCAB_SIZE = 400


@dataclass(frozen=True)
class TokenizerFamily:
    """How one family of checkpoints tokenizes: class, trainer and special tokens."""

    name: str
    class_name: str
    trainer: str  # "bpe", "wordpiece" or "unigram"
    #: Special tokens given ids 0.. before the trained vocabulary (the family's layout).
    leading_specials: tuple[str, ...] = ()
    #: Special tokens appended after the trained vocabulary (Whisper's layout).
    trailing_specials: tuple[str, ...] = ()
    byte_level: bool = False
    end_of_word_suffix: str | None = None
    class_kwargs: dict[str, Any] = field(default_factory=dict)


WHISPER_SPECIALS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)

FAMILIES: dict[str, TokenizerFamily] = {
    family.name: family
    for family in (
        TokenizerFamily(
            "bert",
            "BertTokenizer",
            "wordpiece",
            leading_specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
        ),
        TokenizerFamily(
            "roberta",
            "RobertaTokenizer",
            "bpe",
            leading_specials=("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
            byte_level=True,
        ),
        # GPT-2 and LLaMA ship without a pad token; batched generation conventionally
        # pads with EOS (and an attention mask), so the built tokenizers do that.
        TokenizerFamily(
            "gpt2",
            "GPT2Tokenizer",
            "bpe",
            leading_specials=("<|endoftext|>",),
            byte_level=True,
            class_kwargs={"pad_token": "<|endoftext|>"},
        ),
        TokenizerFamily(
            "llama",
            "LlamaTokenizer",
            "bpe",
            leading_specials=("<unk>", "<s>", "</s>"),
            class_kwargs={"add_bos_token": True, "pad_token": "</s>"},
        ),
        TokenizerFamily(
            "t5",
            "T5Tokenizer",
            "unigram",
            leading_specials=("<pad>", "</s>", "<unk>"),
            class_kwargs={"extra_ids": 0},
        ),
        TokenizerFamily(
            "clip",
            "CLIPTokenizer",
            "bpe",
            leading_specials=("<|startoftext|>", "<|endoftext|>"),
            byte_level=True,
            end_of_word_suffix="</w>",
        ),
        TokenizerFamily(
            "whisper",
            "WhisperTokenizer",
            "bpe",
            trailing_specials=WHISPER_SPECIALS,
            byte_level=True,
            class_kwargs={"pad_token": "<|endoftext|>"},
        ),
    )
}

#: The tokenizer family of each model type that has one here.
FAMILY_OF_MODEL_TYPE = {
    "bert": "bert",
    "distilbert": "bert",
    "roberta": "roberta",
    "bart": "roberta",
    "gpt2": "gpt2",
    "llama": "llama",
    "t5": "t5",
    "clip": "clip",
    "whisper": "whisper",
}


def corpus_lines() -> list[str]:
    """The shipped training corpus, one sentence a line."""
    return [line for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line]


def _transformers_class(name: str) -> Any:
    import transformers

    return getattr(transformers, name)


def _trainer(family: TokenizerFamily, vocab_size: int) -> Any:
    from tokenizers import pre_tokenizers, trainers

    specials = list(family.leading_specials)
    if family.trainer == "wordpiece":
        return trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials, show_progress=False
        )
    if family.trainer == "unigram":
        return trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            unk_token="<unk>",
            show_progress=False,
        )
    options: dict[str, Any] = {"special_tokens": specials, "show_progress": False}
    if family.byte_level:
        options["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    if family.end_of_word_suffix:
        options["end_of_word_suffix"] = family.end_of_word_suffix
    return trainers.BpeTrainer(vocab_size=vocab_size, **options)


@functools.cache
def _trained_backend_json(family_name: str, vocab_size: int) -> str:
    """Train once per process; the JSON is immutable, so sharing it is safe."""
    family = FAMILIES[family_name]
    seed = _transformers_class(family.class_name)(**family.class_kwargs)
    backend = seed.backend_tokenizer
    backend.train_from_iterator(corpus_lines(), trainer=_trainer(family, vocab_size))
    return backend.to_str()


def build_tokenizer(family_name: str, *, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Any:
    """A fresh transformers tokenizer of the family, trained on the shipped corpus."""
    if family_name not in FAMILIES:
        raise KeyError(f"unknown tokenizer family {family_name!r}; known: {sorted(FAMILIES)}")
    from tokenizers import Tokenizer

    family = FAMILIES[family_name]
    backend = Tokenizer.from_str(_trained_backend_json(family_name, vocab_size))
    cls = _transformers_class(family.class_name)
    kwargs = dict(family.class_kwargs)
    if family.trailing_specials:
        kwargs["extra_special_tokens"] = list(family.trailing_specials[1:])
    tokenizer = cls(tokenizer_object=backend, **kwargs)
    if family.trailing_specials:
        # Registered after the vocabulary, in order, exactly as Whisper's files lay them out.
        tokenizer.add_tokens(list(family.trailing_specials), special_tokens=True)
    return tokenizer


def tokenizer_for(model_type: str, *, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Any:
    """The tokenizer a checkpoint of `model_type` would ship with, built offline."""
    if model_type not in FAMILY_OF_MODEL_TYPE:
        raise KeyError(
            f"no offline tokenizer for model type {model_type!r}; "
            f"known: {sorted(FAMILY_OF_MODEL_TYPE)} (add it to FAMILY_OF_MODEL_TYPE)"
        )
    return build_tokenizer(FAMILY_OF_MODEL_TYPE[model_type], vocab_size=vocab_size)


def token_config_overrides(tokenizer: Any) -> dict[str, int]:
    """Config values that must agree with `tokenizer`: vocab size and special ids."""
    overrides = {"vocab_size": len(tokenizer)}
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name)
        if value is not None:
            overrides[name] = int(value)
    return overrides


def build_image_processor(kind: str, *, image_size: int = 30) -> Any:
    """A PIL-backed image processor ('vit' or 'clip') for square `image_size` inputs."""
    if kind == "vit":
        return _transformers_class("ViTImageProcessorPil")(
            size={"height": image_size, "width": image_size}
        )
    if kind == "clip":
        return _transformers_class("CLIPImageProcessorPil")(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        )
    raise KeyError(f"unknown image processor kind {kind!r}; known: ['clip', 'vit']")


def whisper_feature_extractor(*, num_mel_bins: int = 80, chunk_seconds: int = 1) -> Any:
    """Whisper's log-mel feature extractor over `chunk_seconds` of 16 kHz audio.

    The encoder expects exactly `2 * max_source_positions` frames: with hop 160 that
    is `chunk_seconds * 50` positions (50 for one second).
    """
    return _transformers_class("WhisperFeatureExtractor")(
        feature_size=num_mel_bins,
        sampling_rate=16_000,
        hop_length=160,
        chunk_length=chunk_seconds,
        n_fft=400,
    )


def whisper_encoder_positions(chunk_seconds: int = 1) -> int:
    """`max_source_positions` matching `whisper_feature_extractor(chunk_seconds=...)`."""
    return chunk_seconds * 16_000 // 160 // 2


def build_processor(kind: str, **options: Any) -> Any:
    """A multimodal processor ('clip' or 'whisper') from the offline parts."""
    if kind == "clip":
        return _transformers_class("CLIPProcessor")(
            image_processor=build_image_processor("clip", **options),
            tokenizer=build_tokenizer("clip"),
        )
    if kind == "whisper":
        return _transformers_class("WhisperProcessor")(
            feature_extractor=whisper_feature_extractor(**options),
            tokenizer=build_tokenizer("whisper"),
        )
    raise KeyError(f"unknown processor kind {kind!r}; known: ['clip', 'whisper']")


def sample_image(seed: int = 0, size: int = 40) -> Any:
    """A deterministic RGB PIL image of noise (no file, no download)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def sample_audio(seconds: float = 1.0, seed: int = 0) -> Any:
    """A deterministic 16 kHz float32 waveform: a tone plus a little noise."""
    import numpy as np

    samples = int(16_000 * seconds)
    time = np.arange(samples, dtype=np.float32) / 16_000
    noise = np.random.default_rng(seed).normal(0, 0.01, samples).astype(np.float32)
    return (0.3 * np.sin(2 * np.pi * 440 * time) + noise).astype(np.float32)
