"""Multimodal input recipes (test/common/models/model_inputs.py): image tokens in the text,
stacked and patchified pixels and the companion arguments.

These need torch (a second to import), hence `slow`; no model is built.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from test.common.models import model_inputs
from test.common.models.model_inputs import InputRecipe

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_torch() -> None:
    pytest.importorskip("torch", reason="input recipes build torch tensors")


def shapes(recipe: InputRecipe) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in model_inputs.make_inputs(recipe).items()}


def test_image_tokens_open_every_text_and_its_mask() -> None:
    recipe = InputRecipe(
        "text+image", image_tokens=3, image_token_id=99, accepts_mask=True, low_token=5
    )
    inputs = model_inputs.make_inputs(recipe)
    assert inputs["input_ids"].shape == (2, 3 + 8)
    assert (inputs["input_ids"][:, :3] == 99).all()
    assert (inputs["input_ids"][:, 3:] != 99).all()
    assert inputs["attention_mask"].shape == (2, 11)
    assert inputs["pixel_values"].shape == (2, 3, 64, 64)


def test_image_positions_are_marked_where_there_is_no_image_token() -> None:
    # Kosmos-2: ordinary placeholders, marked by image_embeds_position_mask.
    recipe = InputRecipe(
        "text+image", image_tokens=2, low_token=4, companions=("image_embeds_position_mask",)
    )
    inputs = model_inputs.make_inputs(recipe)
    assert (inputs["input_ids"][:, :2] == 4).all()
    mask = inputs["image_embeds_position_mask"]
    assert mask.shape == (2, 10)
    assert mask[:, :2].eq(1).all()
    assert mask[:, 2:].eq(0).all()


def test_stacked_pixels_and_their_attention_mask() -> None:
    recipe = InputRecipe(
        "text+image",
        image_size=16,
        image_stack=4,
        pixel_name="pixel_values_videos",
        companions=("image_attention_mask",),
    )
    assert shapes(recipe) == {
        "input_ids": (2, 8),
        "pixel_values_videos": (2, 4, 3, 16, 16),
        "image_attention_mask": (2, 8, 4),
    }


def test_patchified_images_with_their_grid_mask_and_positions() -> None:
    recipe = InputRecipe(
        "image",
        patch_grid=(2, 3),
        patch_size=4,
        companions=("pixel_attention_mask", "spatial_shapes", "pixel_position_ids"),
    )
    inputs = model_inputs.make_inputs(recipe)
    assert inputs["pixel_values"].shape == (2, 6, 3 * 4 * 4)
    assert inputs["pixel_attention_mask"].eq(1).all()
    assert inputs["pixel_attention_mask"].shape == (2, 6)
    assert inputs["spatial_shapes"].tolist() == [[2, 3], [2, 3]]
    # (x, y) row by row: the second row starts at x = 0, y = 1.
    assert inputs["pixel_position_ids"][0, :4].tolist() == [[0, 0], [1, 0], [2, 0], [0, 1]]
    assert inputs["pixel_position_ids"].shape == (2, 6, 2)


def test_qformer_ids_are_text_ids() -> None:
    recipe = InputRecipe(
        "text+image", low_token=3, vocab_size=30, companions=("qformer_input_ids",)
    )
    ids = model_inputs.make_inputs(recipe)["qformer_input_ids"]
    assert ids.shape == (2, 8)
    assert int(ids.min()) >= 3
    assert int(ids.max()) < 30


class _QFormerModel:
    """A model that only has what recipe_for reads: a config and a forward signature."""

    main_input_name = "pixel_values"

    def __init__(self) -> None:
        vision = SimpleNamespace(image_size=32, patch_size=8, num_channels=3)
        self.config = SimpleNamespace(vision_config=vision, image_token_index=60)

    def forward(self, pixel_values=None, input_ids=None, qformer_input_ids=None):
        return None

    def modules(self) -> list:
        return []


def test_the_multimodal_guess_reads_the_config_and_the_signature() -> None:
    recipe = model_inputs.recipe_for(_QFormerModel(), {"image_tokens": 4})
    assert recipe.kind == "text"
    assert (recipe.image_token_id, recipe.patch_size) == (60, 8)
    assert recipe.companions == ("qformer_input_ids",)
    assert recipe.image_tokens == 4
    declared = model_inputs.recipe_for(
        _QFormerModel(), {"patch_grid": [2, 2], "companions": ["spatial_shapes"]}
    )
    assert (declared.patch_grid, declared.companions) == ((2, 2), ("spatial_shapes",))


def test_an_unknown_companion_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="unknown companion inputs \\['pixel_mask'\\]"):
        model_inputs.recipe_for(_QFormerModel(), {"companions": ["pixel_mask"]})
