"""A tiny BERT built from a config: the suite's first real model test.

No download: the configuration is written here, the weights are random.
"""

from collections.abc import Callable

import pytest

pytestmark = [pytest.mark.model_test, pytest.mark.model, pytest.mark.text]


def test_tiny_bert_forward(device: str, record_property: Callable[[str, object], None]) -> None:
    record_property("model_weights", "tiny")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval().to(device)
    input_ids = torch.randint(0, config.vocab_size, (2, 7), device=device)
    with torch.no_grad():
        hidden = model(input_ids=input_ids).last_hidden_state
    assert hidden.shape == (2, 7, config.hidden_size)
    assert torch.isfinite(hidden).all(), "BERT output contains NaN or inf"
