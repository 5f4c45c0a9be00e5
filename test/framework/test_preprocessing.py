"""The offline preprocessing: tokenizers trained on the shipped corpus, processors built locally.

The table checks are instant; those that build transformers objects import
transformers (seconds on a cold process) and are marked slow.
"""

from __future__ import annotations

import pytest

from test.common.models import preprocessing


def test_corpus_is_shipped_and_nonempty() -> None:
    lines = preprocessing.corpus_lines()
    assert len(lines) >= 40
    assert all(line.strip() == line for line in lines)


def test_every_model_type_maps_to_a_known_family() -> None:
    assert set(preprocessing.FAMILY_OF_MODEL_TYPE.values()) <= set(preprocessing.FAMILIES)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (preprocessing.build_tokenizer, "no-such-family"),
        (preprocessing.tokenizer_for, "no-such-model"),
        (preprocessing.build_image_processor, "no-such-kind"),
        (preprocessing.build_processor, "no-such-kind"),
    ],
)
def test_unknown_names_raise_naming_the_known_ones(call, name: str) -> None:
    with pytest.raises(KeyError, match="known"):
        call(name)


def test_whisper_encoder_positions_match_frames() -> None:
    # 1 s of 16 kHz audio at hop 160 is 100 frames; the conv stem halves them.
    assert preprocessing.whisper_encoder_positions(1) == 50
    assert preprocessing.whisper_encoder_positions(2) == 100


EXPECTED_SPECIALS = {
    "bert": ("[CLS]", "[SEP]", "[MASK]", "[PAD]"),
    "roberta": ("<s>", "</s>", "<mask>", "<pad>"),
    "gpt2": ("<|endoftext|>",),
    "llama": ("<s>", "</s>"),
    "t5": ("</s>", "<pad>"),
    "clip": ("<|startoftext|>", "<|endoftext|>"),
    "whisper": preprocessing.WHISPER_SPECIALS,
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(preprocessing.FAMILIES))
def test_family_tokenizer_round_trips_text(family: str) -> None:
    tokenizer = preprocessing.build_tokenizer(family)
    ids = tokenizer("The cat sat on the mat.")["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    # BERT and CLIP lowercase (and CLIP splits punctuation); the words must survive.
    assert "cat sat on the mat" in decoded.lower()
    assert set(EXPECTED_SPECIALS[family]) <= set(tokenizer.all_special_tokens)
    assert type(tokenizer).__name__ == preprocessing.FAMILIES[family].class_name


@pytest.mark.slow
def test_each_call_returns_an_independent_tokenizer() -> None:
    first = preprocessing.tokenizer_for("gpt2")
    first.padding_side = "left"
    assert preprocessing.tokenizer_for("gpt2").padding_side == "right"


@pytest.mark.slow
def test_whisper_specials_follow_the_vocabulary() -> None:
    # The ASR pipeline treats ids above <|notimestamps|> as timestamps: none may be text.
    tokenizer = preprocessing.build_tokenizer("whisper")
    ids = [tokenizer.convert_tokens_to_ids(token) for token in preprocessing.WHISPER_SPECIALS]
    assert ids == sorted(ids)
    assert ids[-1] == len(tokenizer) - 1
    assert min(ids) >= preprocessing.DEFAULT_VOCAB_SIZE


@pytest.mark.slow
def test_token_config_overrides_agree_with_tokenizer() -> None:
    tokenizer = preprocessing.build_tokenizer("roberta")
    assert preprocessing.token_config_overrides(tokenizer) == {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


@pytest.mark.slow
def test_processors_produce_model_inputs() -> None:
    pytest.importorskip("torch", reason="transformers' image processors need torch")
    pytest.importorskip("PIL", reason="the PIL image processors need pillow")
    clip = preprocessing.build_processor("clip", image_size=24)
    inputs = clip(
        text=["a photo of a cat"], images=preprocessing.sample_image(), return_tensors="np"
    )
    assert inputs["pixel_values"].shape == (1, 3, 24, 24)
    assert inputs["input_ids"].shape[0] == 1
    whisper = preprocessing.build_processor("whisper", num_mel_bins=16)
    features = whisper(
        audio=preprocessing.sample_audio(0.5), sampling_rate=16_000, return_tensors="np"
    )["input_features"]
    # Padded to the one-second window: 100 frames of 16 mel bins.
    assert features.shape == (1, 16, 100)
    vit = preprocessing.build_image_processor("vit", image_size=16)
    assert vit(preprocessing.sample_image(1), return_tensors="np")["pixel_values"].shape == (
        1,
        3,
        16,
        16,
    )
