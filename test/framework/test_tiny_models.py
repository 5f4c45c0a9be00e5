"""The tiny-model factory (test/common/models/tiny_models.py) and its inputs.

The shrinking rules are checked on plain objects (fast); building real models is a
model test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common.models import tiny_models


@dataclasses.dataclass
class FakeConfig:
    hidden_size: int = 4096
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    num_hidden_layers: int = 12
    intermediate_size: int = 11008
    vocab_size: int = 32000
    pad_token_id: int = 0
    image_token_id: int = 31999
    eos_token_id: Any = (2, 32001)
    layer_types: tuple = ("linear", "linear", "linear", "full") * 3
    depths: tuple = (3, 4, 6, 3)
    hidden_sizes: tuple = (256, 512, 1024, 2048)
    num_heads: tuple = (3, 6, 12, 24)
    image_size: int = 224
    patch_size: int = 16
    suppress_tokens: tuple = (5, 6)
    rope_parameters: Any = None


def test_sizes_shrink_and_constraints_hold() -> None:
    overrides = tiny_models.shrink_overrides(FakeConfig())
    assert overrides["hidden_size"] == tiny_models.WIDTH
    assert overrides["num_attention_heads"] == tiny_models.HEADS
    assert tiny_models.WIDTH % overrides["num_attention_heads"] == 0
    # Grouped-query attention stays grouped, and divides the heads.
    assert overrides["num_key_value_heads"] == tiny_models.HEADS // 2
    assert overrides["num_hidden_layers"] == tiny_models.LAYERS
    assert overrides["intermediate_size"] == tiny_models.FEED_FORWARD
    assert overrides["vocab_size"] == tiny_models.VOCAB
    assert overrides["image_size"] == 64
    assert overrides["suppress_tokens"] is None


def test_special_tokens_move_inside_the_vocabulary_and_stay_distinct() -> None:
    overrides = tiny_models.shrink_overrides(FakeConfig())
    vocab = overrides["vocab_size"]
    assert overrides["pad_token_id"] == 0
    ids = [overrides["image_token_id"], *overrides["eos_token_id"]]
    assert all(0 <= token < vocab for token in ids)
    assert len(set(ids)) == len(ids)


def test_hybrid_layers_keep_one_of_each_kind() -> None:
    overrides = tiny_models.shrink_overrides(FakeConfig())
    assert overrides["layer_types"] == ["linear", "full"]


def test_stage_lists_keep_their_ratios() -> None:
    overrides = tiny_models.shrink_overrides(FakeConfig())
    assert overrides["depths"] == [1, 1, 1, 1]
    assert overrides["hidden_sizes"] == [8, 16, 32, 64]
    assert overrides["num_heads"] == [1, 2, 4, 8]


def test_mrope_sections_sum_to_half_the_head_dim() -> None:
    config = FakeConfig(rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24]})
    overrides = tiny_models.shrink_overrides(config)
    assert sum(overrides["rope_parameters"]["mrope_section"]) == tiny_models.HEAD_DIM // 2


def test_empty_rope_parameters_are_left_to_the_row() -> None:
    # CohereCompass: M-RoPE config class, RoPE parameters keyed by layer type, none by default.
    class PerLayerRope(FakeConfig):
        ignore_keys_at_rope_validation = frozenset({"mrope_section"})

    assert "rope_parameters" not in tiny_models.shrink_overrides(PerLayerRope(rope_parameters={}))
    shrunk = tiny_models.shrink_overrides(PerLayerRope(rope_parameters={"rope_type": "default"}))
    assert sum(shrunk["rope_parameters"]["mrope_section"]) == tiny_models.HEAD_DIM // 2


@given(
    st.lists(st.sampled_from(["full", "sliding", "mamba", "linear"]), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=4),
)
def test_cut_per_layer_keeps_every_kind(values: list[str], depth: int) -> None:
    cut = tiny_models._cut_per_layer(values, depth)
    kinds = set(values)
    if len(kinds) > 1:
        assert set(cut) == kinds
        assert len(cut) == min(len(values), max(depth, len(kinds)))
    else:
        assert cut == values[:depth]


@given(st.lists(st.integers(min_value=1, max_value=4096), min_size=1, max_size=6))
def test_width_lists_shrink_below_the_limit(values: list[int]) -> None:
    shrunk = tiny_models._shrunk_list("hidden_sizes", values)
    assert shrunk is not None
    assert len(shrunk) == len(values)
    assert all(4 <= v <= max(4, values[i]) for i, v in enumerate(shrunk))
    assert max(shrunk) <= 2 * tiny_models.LIST_WIDTH_LIMIT


def test_lists_that_are_not_sizes_are_left_alone() -> None:
    assert tiny_models._shrunk_list("conv_kernel", [10, 3, 3]) is None
    assert tiny_models._shrunk_list("depths", []) is None
    assert tiny_models._shrunk_list("depths", ["a"]) is None


def test_merge_overrides_recurses_into_sub_configs() -> None:
    base = {"text_config": {"hidden_size": 32, "vocab_size": 128}, "x": 1}
    merged = tiny_models.merge_overrides(base, {"text_config": {"vocab_size": 99}, "y": 2})
    assert merged == {"text_config": {"hidden_size": 32, "vocab_size": 99}, "x": 1, "y": 2}
    assert base["text_config"]["vocab_size"] == 128


def test_mamba_heads_times_head_dim_is_expand_times_hidden() -> None:
    @dataclasses.dataclass
    class MambaConfig:
        hidden_size: int = 2048
        expand: int = 2
        num_heads: int = 64
        head_dim: int = 64

    overrides = tiny_models.shrink_overrides(MambaConfig())
    assert overrides["num_heads"] * overrides["head_dim"] == 2 * overrides["hidden_size"]


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="not a model type of this transformers"):
        tiny_models.spec_of("no-such-model")


def test_a_model_type_with_heads_but_no_automodel_gets_an_empty_row() -> None:
    spec = tiny_models.spec_of("trocr")
    assert spec.model_type == "trocr"
    assert spec.config_overrides == {}


def test_field_names_of_a_plain_class() -> None:
    class Plain:
        def __init__(self, hidden_size: int = 8, vocab_size: int = 10) -> None:
            self.hidden_size, self.vocab_size = hidden_size, vocab_size

    assert {"hidden_size", "vocab_size"} <= tiny_models._field_names(Plain)


@pytest.mark.model_test
@pytest.mark.parametrize(
    "model_type",
    ["bert", "gpt2", "clip", "llama", "whisper", "t5", "vit", "roberta", "distilbert", "bart"],
)
def test_priority_models_build_tiny_and_reload(model_type: str, tmp_path) -> None:
    before = tiny_models.BUILD_COUNTS[model_type]
    tiny = tiny_models.build_tiny_model(model_type, save_dir=tmp_path / model_type)
    assert tiny_models.BUILD_COUNTS[model_type] == before + 1
    assert (tmp_path / model_type / "model.safetensors").is_file()
    assert not tiny.model.training
    assert 0 < tiny.parameters <= 5_000_000


@pytest.mark.model_test
def test_caller_overrides_win(tmp_path) -> None:
    config = tiny_models.tiny_config("bert", vocab_size=77, hidden_size=48)
    assert (config.vocab_size, config.hidden_size) == (77, 48)
    clip = tiny_models.tiny_config("clip", text_config={"vocab_size": 55})
    assert clip.text_config.vocab_size == 55
    assert clip.text_config.hidden_size == tiny_models.WIDTH
