"""Input recipes of vision models with more than one input (test/common/models/model_inputs.py):
the text+video kind, and `tensors` beside another kind (ids, constants, floats).

These need torch (a second to import), hence `slow`; no model is built.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from test.common.models import model_inputs
from test.common.models.model_inputs import InputRecipe

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_torch() -> None:
    pytest.importorskip("torch", reason="input recipes build torch tensors")


def _shapes(recipe: InputRecipe) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in model_inputs.make_inputs(recipe).items()}


def test_text_and_video_give_token_ids_and_a_clip() -> None:
    recipe = InputRecipe("text+video", image_size=16, video_frames=3, accepts_mask=True)
    assert recipe.main_input == "input_ids"
    assert _shapes(recipe) == {
        "input_ids": (2, 8),
        "attention_mask": (2, 8),
        "pixel_values": (2, 3, 3, 16, 16),
    }


def test_tensors_beside_the_main_input_draw_ids_constants_and_floats() -> None:
    recipe = InputRecipe(
        "image",
        image_size=16,
        image_width=8,
        low_token=3,
        vocab_size=9,
        tensors={
            "task_inputs": {"shape": [7], "dtype": "ids"},
            "prompt_pixel_values": {"shape": [3, 16, 8]},
            "task_mask": {"shape": [7], "dtype": "long", "fill": 1},
            "classes_structure": {"shape": [], "dtype": "long", "fill": 1},
        },
    )
    inputs = model_inputs.make_inputs(recipe)
    assert {name: tuple(tensor.shape) for name, tensor in inputs.items()} == {
        "pixel_values": (2, 3, 16, 8),
        "task_inputs": (2, 7),
        "prompt_pixel_values": (2, 3, 16, 8),
        "task_mask": (2, 7),
        "classes_structure": (2,),
    }
    assert bool((inputs["task_mask"] == 1).all())
    ids = inputs["task_inputs"]
    assert not ids.is_floating_point()
    assert int(ids.min()) >= 3
    assert int(ids.max()) < 9
    # The prompt is not a copy of the image.
    assert not bool((inputs["prompt_pixel_values"] == inputs["pixel_values"]).all())
    # Each item alone keeps its own extra inputs.
    _, singles, _ = model_inputs.padded_text_batch(recipe)
    assert (singles[1]["task_inputs"] == ids[1:]).all()


def test_unknown_tensor_dtype_is_an_error() -> None:
    recipe = InputRecipe("tensors", tensors={"x": {"shape": [2], "dtype": "int8"}})
    with pytest.raises(ValueError, match="unknown tensor dtype 'int8'"):
        model_inputs.make_inputs(recipe)


class _PairModel:
    """A model-like object: a forward signature and a config, no weights."""

    main_input_name = "pixel_values"
    config = SimpleNamespace(image_size=32, num_channels=3)

    def forward(self, pixel_values: Any = None, prompt_masks: Any = None) -> None:
        del pixel_values, prompt_masks

    def modules(self) -> list[Any]:
        return []


def test_row_lists_become_tuples_in_the_recipe() -> None:
    recipe = model_inputs.recipe_for(_PairModel(), {"patch_grid": [4, 4]})
    assert recipe.kind == "image"
    assert recipe.patch_grid == (4, 4)
