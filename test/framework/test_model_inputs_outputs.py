"""Which output the battery compares, and how a batch's output holds its items
(test/common/models/model_inputs.py): a named output, an output packing the items, and the
companions rebuilt from a padded batch's mask.

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


def test_a_named_output_is_taken_by_its_dotted_path() -> None:
    import torch

    codec = {"audio_codes": torch.zeros(1, 2, 3), "audio_values": torch.ones(2, 1, 5)}
    assert model_inputs.primary_output(codec).shape == (1, 2, 3)
    assert model_inputs.primary_output(codec, "audio_values").shape == (2, 1, 5)
    # Attributes of nested outputs, then the first tensor of what the path names.
    language = {"states": torch.ones(2, 3), "other": torch.ones(9)}
    nested = SimpleNamespace(vision=torch.ones(8, 4), language=language)
    assert model_inputs.primary_output(nested, "language").shape == (2, 3)
    assert model_inputs.primary_output(nested, "language.other").shape == (9,)
    with pytest.raises(KeyError, match="no output 'missing'"):
        model_inputs.primary_output(nested, "missing")
    with pytest.raises(KeyError, match=r"no output 'language\.missing'"):
        model_inputs.primary_output(nested, "language.missing")


def test_a_packed_output_is_split_by_each_items_own_length() -> None:
    import torch

    recipe = InputRecipe("audio-features", packed_output=True)
    assert model_inputs.packs_items(recipe)
    assert not model_inputs.packs_items(InputRecipe("audio-features"))
    batched = torch.arange(5.0).reshape(5, 1)
    items = model_inputs.batch_items(recipe, batched, [torch.zeros(2, 1), torch.zeros(3, 1)])
    assert [item.flatten().tolist() for item in items] == [[0, 1], [2, 3, 4]]
    # The items alone must account for every packed row, no more, no less.
    with pytest.raises(AssertionError, match="does not hold"):
        model_inputs.batch_items(recipe, batched, [torch.zeros(2, 1), torch.zeros(2, 1)])


def test_item_singles_are_rows_unless_patches_are_packed() -> None:
    recipe = InputRecipe("image", image_size=8)
    inputs = model_inputs.make_inputs(recipe)
    singles = model_inputs.item_singles(recipe, inputs)
    assert [tuple(s["pixel_values"].shape) for s in singles] == [(1, 3, 8, 8)] * 2
    assert (singles[1]["pixel_values"] == inputs["pixel_values"][1:]).all()
    packed = InputRecipe("packed-patches", patch_shape=(12,))
    rows = model_inputs.item_singles(packed, model_inputs.make_inputs(packed))
    assert [tuple(s["pixel_values"].shape) for s in rows] == [(16, 12), (24, 12)]


def test_decoder_mask_and_positions_follow_each_items_real_prompt() -> None:
    recipe = InputRecipe(
        "text",
        accepts_mask=True,
        decoder_ids=True,
        companions=("decoder_attention_mask", "decoder_position_ids"),
    )
    plain = model_inputs.make_inputs(recipe)
    assert plain["decoder_attention_mask"].shape == (2, 16)
    assert plain["decoder_position_ids"][0].tolist() == list(range(8, 16))
    batch, singles, padding = model_inputs.padded_text_batch(recipe)
    assert padding == 3
    # Item 1: 5 real tokens, 3 padded, then the 8 canvas tokens, placed from position 5.
    assert batch["decoder_attention_mask"][1].tolist() == [1] * 5 + [0] * 3 + [1] * 8
    assert batch["decoder_position_ids"][1].tolist() == list(range(5, 13))
    assert batch["decoder_position_ids"][0].tolist() == list(range(8, 16))
    # Alone, it has no padding: its mask is all real, its canvas at the same positions.
    assert singles[1]["decoder_attention_mask"].tolist() == [[1] * 13]
    assert singles[1]["decoder_position_ids"].tolist() == [list(range(5, 13))]
    assert singles[0]["decoder_attention_mask"].tolist() == [[1] * 16]


def test_a_strip_packs_the_patches_side_by_side_with_an_hw_grid() -> None:
    recipe = InputRecipe(
        "packed-patches", packed_layout="strip", grid_name="target_sizes", patch_shape=(3, 2, 2)
    )
    inputs = model_inputs.make_inputs(recipe)
    # 16 + 24 patches of 2 x 2, side by side in one row; grids (h, w) without the t.
    assert inputs["pixel_values"].shape == (1, 3, 2, 80)
    assert inputs["target_sizes"].tolist() == [[4, 4], [4, 6]]
    rows = model_inputs.make_inputs(dataclasses.replace(recipe, packed_layout="rows"))
    # Patch 17 (the second image's second) is the strip's 17th patch-wide column.
    assert (inputs["pixel_values"][0, :, :, 34:36] == rows["pixel_values"][17]).all()
    first, second = model_inputs.item_singles(recipe, inputs)
    assert first["pixel_values"].shape == (1, 3, 2, 32)
    assert (second["pixel_values"] == inputs["pixel_values"][..., 32:]).all()
    assert second["target_sizes"].tolist() == [[4, 6]]
    mismatch = model_inputs.bad_inputs(recipe)["grid mismatch"]
    assert mismatch["target_sizes"].tolist() == [[4, 4], [4, 12]]


def test_float32_inputs_are_not_cast_and_layouts_are_checked() -> None:
    import torch

    inputs = {"bbox": torch.rand(2, 4), "x": torch.ones(2), "ids": torch.ones(2, dtype=torch.long)}
    moved = model_inputs.to_device(inputs, "cpu", torch.bfloat16, keep=("bbox",))
    assert (moved["bbox"].dtype, moved["x"].dtype) == (torch.float32, torch.bfloat16)
    assert moved["ids"].dtype == torch.long
    model = SimpleNamespace(
        config=SimpleNamespace(), forward=lambda pixel_values=None: None, modules=list
    )
    recipe = model_inputs.recipe_for(model, {"kind": "image", "float32_inputs": ["bbox"]})
    assert recipe.float32_inputs == ("bbox",)
    with pytest.raises(ValueError, match="unknown packed_layout 'strips'"):
        model_inputs.recipe_for(model, {"kind": "packed-patches", "packed_layout": "strips"})
