"""Synthetic battery inputs (test/common/models/model_inputs.py): shapes, padding, bad variants.

These need torch (a second to import), hence `slow`; no model is built.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from test.common.models import model_inputs
from test.common.models.model_inputs import InputRecipe

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_torch() -> None:
    pytest.importorskip("torch", reason="input recipes build torch tensors")


@pytest.mark.parametrize(
    ("recipe", "shapes"),
    [
        (InputRecipe("text", accepts_mask=True), {"input_ids": (2, 8), "attention_mask": (2, 8)}),
        (InputRecipe("image", image_size=32), {"pixel_values": (2, 3, 32, 32)}),
        (InputRecipe("image", image_size=32, image_width=128), {"pixel_values": (2, 3, 32, 128)}),
        (
            InputRecipe("audio-features", feature_size=80, frames=32),
            {"input_features": (2, 80, 32)},
        ),
        (
            InputRecipe("audio-features", feature_size=80, frames=32, features_first=False),
            {"input_features": (2, 32, 80)},
        ),
        (InputRecipe("audio-values"), {"input_values": (2, 1600)}),
        (
            InputRecipe("text+image", image_size=32, decoder_ids=True),
            {"input_ids": (2, 8), "pixel_values": (2, 3, 32, 32)},
        ),
        (InputRecipe("text", decoder_ids=True), {"input_ids": (2, 8), "decoder_input_ids": (2, 8)}),
        (InputRecipe("audio-values", audio_channels=1), {"input_values": (2, 1, 1600)}),
        (
            InputRecipe("audio-features", frames=16, feature_mask_name="input_features_mask"),
            {"input_features": (2, 80, 16), "input_features_mask": (2, 16)},
        ),
        (
            InputRecipe("audio-features", frames=16, feature_size=8, input_name="input_values"),
            {"input_values": (2, 8, 16)},
        ),
        (InputRecipe("video", image_size=16, video_frames=4), {"pixel_values": (2, 4, 3, 16, 16)}),
        (
            InputRecipe("video", image_size=16, input_name="pixel_values_videos"),
            {"pixel_values_videos": (2, 2, 3, 16, 16)},
        ),
        (InputRecipe("time-series", context_length=10), {"past_values": (2, 10)}),
        (
            InputRecipe(
                "time-series",
                context_length=11,
                series_channels=3,
                time_features=2,
                prediction_length=4,
                observed_mask_name="past_observed_mask",
            ),
            {
                "past_values": (2, 11, 3),
                "past_observed_mask": (2, 11, 3),
                "past_time_features": (2, 11, 2),
                "future_time_features": (2, 4, 2),
            },
        ),
        (
            InputRecipe(
                "time-series", context_length=64, padding_name="past_values_padding", frequency=True
            ),
            {"past_values": (2, 64), "past_values_padding": (2, 64), "freq": (2, 1)},
        ),
    ],
)
def test_inputs_have_the_recipe_shapes(recipe: InputRecipe, shapes: dict) -> None:
    inputs = model_inputs.make_inputs(recipe)
    assert {name: tuple(tensor.shape) for name, tensor in inputs.items()} == shapes


def test_token_ids_avoid_special_ids() -> None:
    recipe = InputRecipe("text", low_token=5, vocab_size=20)
    ids = model_inputs.make_inputs(recipe)["input_ids"]
    assert int(ids.min()) >= 5
    assert int(ids.max()) < 20


def test_padded_batch_masks_the_short_item() -> None:
    recipe = InputRecipe("text", accepts_mask=True)
    batch, singles, padding = model_inputs.padded_text_batch(recipe)
    assert padding == model_inputs.PADDING
    assert batch["attention_mask"][1, -padding:].sum() == 0
    assert singles[1]["input_ids"].shape == (1, 8 - padding)
    assert (singles[0]["input_ids"] == batch["input_ids"][:1]).all()


def test_padded_batch_pads_with_the_row_pad_token() -> None:
    default = InputRecipe("text", accepts_mask=True, low_token=5)
    batch, _, padding = model_inputs.padded_text_batch(default)
    assert (batch["input_ids"][1, -padding:] == 5).all()
    batch, _, padding = model_inputs.padded_text_batch(
        InputRecipe("text", accepts_mask=True, low_token=5, pad_token=0)
    )
    assert (batch["input_ids"][1, -padding:] == 0).all()


def test_time_series_padding_is_float_like_the_values() -> None:
    recipe = InputRecipe("time-series", context_length=64, padding_name="past_values_padding")
    inputs = model_inputs.make_inputs(recipe)
    assert inputs["past_values_padding"].dtype == inputs["past_values"].dtype
    assert not inputs["past_values_padding"].any()


def test_layout_boxes_are_valid_and_padded_with_their_tokens() -> None:
    recipe = InputRecipe("text", accepts_mask=True, bbox=True)
    boxes = model_inputs.make_inputs(recipe)["bbox"]
    assert boxes.shape == (2, 8, 4)
    assert (boxes[..., 0] <= boxes[..., 2]).all()
    assert (boxes[..., 1] <= boxes[..., 3]).all()
    assert int(boxes.min()) >= 0
    assert int(boxes.max()) <= 1000
    _, singles, padding = model_inputs.padded_text_batch(recipe)
    assert singles[1]["bbox"].shape == (1, 8 - padding, 4)
    normalized = model_inputs.make_inputs(InputRecipe("text", bbox=True, bbox_normalized=True))
    assert normalized["bbox"].is_floating_point()
    assert float(normalized["bbox"].max()) <= 1.0


def test_bad_variants_break_one_thing_each() -> None:
    variants = model_inputs.bad_inputs(InputRecipe("image", image_size=32))
    assert "wrong dtype" not in variants, "an integer image is valid input, not malformed"
    assert variants["wrong rank"]["pixel_values"].ndim == 3
    assert variants["empty"]["pixel_values"].shape[-1] == 0
    text = model_inputs.bad_inputs(InputRecipe("text"))
    assert text["wrong dtype"]["input_ids"].is_floating_point()


def test_time_series_sizes_come_from_the_config() -> None:
    # TimeSeriesTransformer-like: lags before the context, time features, a decoder.
    config = SimpleNamespace(
        context_length=4,
        lags_sequence=[1, 7],
        input_size=1,
        num_time_features=2,
        num_dynamic_real_features=1,
        prediction_length=3,
    )
    parameters = {"past_values", "past_time_features", "past_observed_mask", "future_time_features"}
    assert model_inputs._series_guess(config, parameters) == {
        "context_length": 11,
        "series_channels": 0,
        "time_features": 3,
        "prediction_length": 3,
        "observed_mask_name": "past_observed_mask",
        "padding_name": "",
        "frequency": False,
    }
    # PatchTST-like: channels, no time features; TimesFM-like: padding and frequency.
    patch = model_inputs._series_guess(
        SimpleNamespace(context_length=32, num_input_channels=2), {"past_values", "observed_mask"}
    )
    assert (patch["series_channels"], patch["time_features"], patch["observed_mask_name"]) == (
        2,
        -1,
        "observed_mask",
    )
    timesfm = model_inputs._series_guess(
        SimpleNamespace(context_length=64), {"past_values", "past_values_padding", "freq"}
    )
    assert (timesfm["padding_name"], timesfm["frequency"]) == ("past_values_padding", True)


def test_primary_output_skips_cross_batch_logits() -> None:
    import torch

    outputs = {"loss": None, "logits_per_image": torch.ones(2, 2), "text_embeds": torch.ones(2, 4)}
    assert model_inputs.primary_output(outputs).shape == (2, 4)
    contrastive = {"logits_audio_text": torch.ones(2, 2), "audio_embeds": torch.ones(2, 3)}
    assert model_inputs.primary_output(contrastive).shape == (2, 3)
    assert model_inputs.primary_output((torch.empty(0), [torch.ones(3)])).shape == (3,)
    assert model_inputs.primary_output({"x": None}) is None


def test_to_device_casts_only_floating_tensors() -> None:
    import torch

    moved = model_inputs.to_device(
        {"ids": torch.ones(2, dtype=torch.long), "x": torch.ones(2)}, "cpu", torch.bfloat16
    )
    assert moved["ids"].dtype == torch.long
    assert moved["x"].dtype == torch.bfloat16


def _packed_recipe(**fields: object) -> InputRecipe:
    return InputRecipe("packed-patches", patch_shape=(12,), **fields)


def test_packed_patches_concatenate_the_images_rows() -> None:
    inputs = model_inputs.make_inputs(_packed_recipe(input_name="hidden_states", merge_sizes=2), 3)
    # Grids (1, 4, 4), (1, 4, 6), then the first again: 16 + 24 + 16 patch rows.
    assert inputs["hidden_states"].shape == (56, 12)
    assert inputs["grid_thw"].tolist() == [[1, 4, 4], [1, 4, 6], [1, 4, 4]]
    assert inputs["merge_sizes"].tolist() == [2, 2, 2]
    kimi = model_inputs.make_inputs(InputRecipe("packed-patches", patch_shape=(3, 2, 2)))
    assert kimi["pixel_values"].shape == (40, 3, 2, 2)


def test_packed_singles_are_each_images_rows_and_grid() -> None:
    recipe = _packed_recipe(grid_name="image_grid_thw", merge_sizes=1)
    batch, singles, padding = model_inputs.padded_text_batch(recipe)
    assert padding == 0
    assert [tuple(single["pixel_values"].shape) for single in singles] == [(16, 12), (24, 12)]
    assert singles[1]["image_grid_thw"].tolist() == [[1, 4, 6]]
    assert singles[1]["merge_sizes"].tolist() == [1]
    assert (singles[1]["pixel_values"] == batch["pixel_values"][16:]).all()


def test_batch_items_split_a_packed_output_by_image() -> None:
    import torch

    batched = torch.arange(10.0).reshape(1, 10, 1)
    alone = [torch.zeros(1, 4, 1), torch.zeros(1, 6, 1)]
    items = model_inputs.batch_items(_packed_recipe(packed_axis=1), batched, alone)
    assert [item.flatten().tolist() for item in items] == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
    with pytest.raises(AssertionError, match=r"does not hold the images' \[1, 1\] rows \(axis 0\)"):
        model_inputs.batch_items(_packed_recipe(), batched, alone)
    # Other kinds: one row of the batch axis per item.
    rows = model_inputs.batch_items(InputRecipe("image"), torch.ones(2, 3), alone)
    assert [tuple(row.shape) for row in rows] == [(1, 3), (1, 3)]


def test_packed_bad_inputs_include_a_grid_that_does_not_match() -> None:
    variants = model_inputs.bad_inputs(_packed_recipe())
    assert set(variants) == {"wrong rank", "empty", "grid mismatch"}
    assert variants["wrong rank"]["pixel_values"].shape == (12,)
    assert variants["grid mismatch"]["grid_thw"].tolist() == [[1, 4, 4], [1, 8, 6]]
    assert variants["grid mismatch"]["pixel_values"].shape == (40, 12)


def test_packed_patch_towers_are_guessed_from_the_signature_and_config() -> None:
    import torch

    class Tower(torch.nn.Module):
        def __init__(self, config: SimpleNamespace) -> None:
            super().__init__()
            self.config = config

        def forward(self, hidden_states: object, grid_thw: object) -> None:
            raise NotImplementedError

    qwen = SimpleNamespace(in_channels=3, temporal_patch_size=2, patch_size=4)
    recipe = model_inputs.recipe_for(Tower(qwen), {"packed_axis": 1})
    assert recipe.kind == "packed-patches"
    assert (recipe.main_input, recipe.grid_name, recipe.patch_shape) == (
        "hidden_states",
        "grid_thw",
        (96,),
    )
    assert (recipe.merge_sizes, recipe.packed_axis) == (0, 1)
    video_llama = model_inputs._packed_guess(
        SimpleNamespace(num_channels=3, patch_size=2, merge_size=2),
        {"pixel_values", "image_grid_thw", "merge_sizes"},
    )
    assert video_llama == {
        "input_name": "pixel_values",
        "grid_name": "image_grid_thw",
        "patch_shape": (12,),
        "merge_sizes": 2,
    }


@pytest.mark.parametrize(
    ("recipe", "shapes"),
    [
        (InputRecipe("latents", feature_size=16, frames=4), {"latents": (2, 16, 4)}),
        (
            InputRecipe(
                "latents", feature_size=16, frames=4, features_first=False, input_name="embeds"
            ),
            {"embeds": (2, 4, 16)},
        ),
        (
            InputRecipe("audio-features", feature_size=8, frames=4, audio_channels=1),
            {"input_features": (2, 1, 8, 4)},
        ),
        (
            InputRecipe(
                "audio-values",
                audio_channels=1,
                spectrogram_name="input_features",
                feature_size=8,
                frames=4,
                feature_mask_name="mask",
            ),
            {"input_values": (2, 1, 1600), "input_features": (2, 8, 4), "mask": (2, 4)},
        ),
        (
            InputRecipe("audio-values", audio_channels=1, with_text=True, accepts_mask=True),
            {"input_values": (2, 1, 1600), "input_ids": (2, 8), "attention_mask": (2, 8)},
        ),
        (
            InputRecipe(
                "latents",
                feature_size=16,
                frames=4,
                features_first=False,
                input_name="input_values",
                decoder_states=True,
            ),
            {"input_values": (2, 4, 16), "decoder_input_values": (2, 4, 16)},
        ),
        (
            InputRecipe("text", codebooks=3, accepts_mask=True),
            {"input_ids": (2, 8, 3), "attention_mask": (2, 8)},
        ),
        (
            InputRecipe("text", decoder_ids=True, decoder_codebooks=9),
            {"input_ids": (2, 8), "decoder_input_ids": (2, 8, 9)},
        ),
    ],
)
def test_audio_companions_and_latents_have_the_recipe_shapes(
    recipe: InputRecipe, shapes: dict
) -> None:
    inputs = model_inputs.make_inputs(recipe)
    assert {name: tuple(tensor.shape) for name, tensor in inputs.items()} == shapes


def test_feature_mask_marks_real_frames_or_padding() -> None:
    import torch

    real = InputRecipe("audio-features", frames=4, feature_mask_name="mask")
    assert model_inputs.make_inputs(real)["mask"].tolist() == [[1] * 4] * 2
    padding = dataclasses.replace(real, feature_mask_padding=True)
    mask = model_inputs.make_inputs(padding)["mask"]
    assert mask.dtype == torch.bool
    assert not mask.any()


def test_latents_are_guessed_and_sized_from_the_config() -> None:
    decoder = SimpleNamespace(
        forward=lambda latents, padding_mask=None: None,
        main_input_name="latents",
        config=SimpleNamespace(hidden_size=24, latent_dim=12),
        modules=lambda: [],
    )
    recipe = model_inputs.recipe_for(decoder)
    assert (recipe.kind, recipe.feature_size, recipe.features_first) == ("latents", 12, True)
    assert model_inputs._latents_guess(SimpleNamespace(hidden_size=24))["feature_size"] == 24


def test_codebook_ids_pad_along_the_length_axis() -> None:
    recipe = InputRecipe("text", codebooks=3, accepts_mask=True)
    batch, singles, padding = model_inputs.padded_text_batch(recipe)
    assert batch["attention_mask"][1, -padding:].sum() == 0
    assert singles[1]["input_ids"].shape == (1, 8 - padding, 3)
