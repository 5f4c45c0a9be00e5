"""Keyed weights on real tiny models: stable, independent of the other modules, well-formed."""

from __future__ import annotations

import pytest

from test.common.plugins.model_source import TINY, record_model_weights

pytestmark = [pytest.mark.model_test, pytest.mark.model]


@pytest.fixture(autouse=True)
def _record_tiny_weights(request: pytest.FixtureRequest) -> None:
    record_model_weights(request.node, TINY)


def _state(model_type: str, **overrides: object) -> dict:
    from test.common.models.tiny_models import build_tiny_model

    return build_tiny_model(model_type, overrides=overrides or None).model.state_dict()


def test_two_builds_are_identical() -> None:
    import torch

    first, second = _state("bert"), _state("bert")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_adding_a_layer_changes_no_other_weight() -> None:
    import torch

    two, three = _state("bert", num_hidden_layers=2), _state("bert", num_hidden_layers=3)
    assert set(two) < set(three)
    for name, value in two.items():
        assert torch.equal(value, three[name]), f"{name} changed when a layer was added"


def test_values_keep_the_model_well_formed() -> None:
    import torch

    from test.common.models.tiny_models import build_tiny_model, tiny_config

    model = build_tiny_model("bert").model
    state = model.state_dict()
    norm = state["embeddings.LayerNorm.weight"]
    assert torch.all((norm > 0.8) & (norm < 1.2)), "norm weights must stay near 1"
    assert not torch.all(norm == 1), "a constant norm weight hides a skipped norm"
    assert state["embeddings.LayerNorm.bias"].abs().max() > 0, "zero biases hide a lost bias"
    pad = tiny_config("bert").pad_token_id
    assert torch.all(state["embeddings.word_embeddings.weight"][pad] == 0), "padding row kept"
    query = state["encoder.layer.0.attention.self.query.weight"]
    assert abs(query.std().item() - 32**-0.5) < 0.02, "drawn weights have 1/sqrt(fan_in) scale"


def test_computed_tables_and_signs_are_kept() -> None:
    import torch

    state = _state("mamba2")
    a_log = state["layers.0.mixer.A_log"]
    assert torch.equal(a_log, torch.log(torch.arange(1, a_log.numel() + 1, dtype=a_log.dtype)))
    dt_bias = state["layers.0.mixer.dt_bias"]
    assert torch.all(dt_bias < 0), "a one-signed drawn tensor keeps its sign"
