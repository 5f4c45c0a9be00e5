"""The `tensors` table of an input recipe: named extra inputs, and kind "tensors".

These need torch (a second to import), hence `slow`; no model is built.
"""

from __future__ import annotations

import pytest

from test.common.models import model_inputs
from test.common.models.model_inputs import InputRecipe

pytestmark = pytest.mark.slow

TRAJECTORY = {
    "states": {"shape": [8, 17]},
    "timesteps": {"shape": [8], "dtype": "long", "high": 100},
    "boxes": {"shape": [4, 4], "low": 0.25, "high": 0.5},
}


@pytest.fixture(autouse=True)
def _needs_torch() -> None:
    pytest.importorskip("torch", reason="input recipes build torch tensors")


def test_kind_tensors_feeds_only_the_named_tensors() -> None:
    import torch

    recipe = InputRecipe("tensors", tensors=TRAJECTORY)
    inputs = model_inputs.make_inputs(recipe)
    assert {name: tuple(value.shape) for name, value in inputs.items()} == {
        "states": (2, 8, 17),
        "timesteps": (2, 8),
        "boxes": (2, 4, 4),
    }
    assert inputs["timesteps"].dtype == torch.long
    assert inputs["timesteps"].min() >= 0
    assert inputs["timesteps"].max() < 100
    assert inputs["boxes"].min() >= 0.25
    assert inputs["boxes"].max() < 0.5
    # The first named tensor is the main input (the one bad_input breaks).
    assert recipe.main_input == "states"
    assert InputRecipe("tensors", tensors=TRAJECTORY, input_name="boxes").main_input == "boxes"


def test_named_tensors_are_seeded_and_join_the_kinds_inputs() -> None:
    import torch

    recipe = InputRecipe("text", accepts_mask=True, tensors={"noise": {"shape": [16]}})
    first, second = model_inputs.make_inputs(recipe), model_inputs.make_inputs(recipe)
    assert set(first) == {"input_ids", "attention_mask", "noise"}
    assert torch.equal(first["noise"], second["noise"])
    # The padded batch splits them by item, like every other input.
    batch, singles, _ = model_inputs.padded_text_batch(recipe)
    assert torch.equal(singles[1]["noise"], batch["noise"][1:2])


def test_a_row_sets_the_tensors_table() -> None:
    from types import SimpleNamespace

    model = SimpleNamespace(
        config=SimpleNamespace(), forward=lambda states=None: None, modules=lambda: []
    )
    recipe = model_inputs.recipe_for(model, {"kind": "tensors", "tensors": TRAJECTORY})
    assert recipe.tensors == TRAJECTORY


def test_a_misspelt_recipe_field_is_an_error() -> None:
    from types import SimpleNamespace

    model = SimpleNamespace(config=SimpleNamespace(), forward=lambda x=None: None, modules=list)
    with pytest.raises(ValueError, match=r"unknown input recipe fields \['tensor'\]"):
        model_inputs.recipe_for(model, {"kind": "tensors", "tensor": TRAJECTORY})
