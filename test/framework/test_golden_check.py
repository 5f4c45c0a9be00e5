"""The MiniLM golden check: file validation is instant; the perturbed-weight proof is slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test.common.models import real_weights


def _write_golden(path: Path, embeddings: list[list[float]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "tolerance": 1e-4,
                "sentences": [f"s{i}" for i in range(len(embeddings))],
                "embeddings": embeddings,
            }
        )
    )
    return path


def test_shipped_golden_file_is_valid() -> None:
    golden = real_weights.load_golden()
    assert golden.sentences == real_weights.GOLDEN_SENTENCES
    assert golden.tolerance == real_weights.GOLDEN_TOLERANCE
    assert {len(row) for row in golden.embeddings} == {384}
    for row in golden.embeddings:  # stored normalised
        assert abs(sum(x * x for x in row) - 1.0) < 1e-5


def test_corrupted_golden_file_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    path.write_text('{"tolerance": 1e-4,\n "sentences": [oops]}')
    with pytest.raises(real_weights.GoldenFileError, match=r"golden\.json.*line 2, column 16"):
        real_weights.load_golden(path)


@pytest.mark.parametrize(
    "content",
    [
        '{"sentences": ["a"], "embeddings": [[1.0]]}',
        '{"tolerance": 1, "sentences": ["a"], "embeddings": [[1.0], [2.0]]}',
    ],
)
def test_malformed_golden_data_is_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "golden.json"
    path.write_text(content)
    with pytest.raises(real_weights.GoldenFileError, match=r"golden\.json"):
        real_weights.load_golden(path)


def test_missing_golden_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(real_weights.GoldenFileError, match="missing"):
        real_weights.load_golden(tmp_path / "absent.json")


def test_check_fails_when_one_value_moves_beyond_tolerance(tmp_path: Path) -> None:
    golden = real_weights.load_golden(_write_golden(tmp_path / "g.json", [[0.5, 0.5], [1.0, 0.0]]))
    assert real_weights.assert_matches_golden([[0.5, 0.50005], [1.0, 0.0]], golden)
    with pytest.raises(AssertionError, match=r"'s1': max \|diff\| 0\.001"):
        real_weights.assert_matches_golden([[0.5, 0.5], [1.0, 0.001]], golden)
    with pytest.raises(AssertionError, match="nan"):
        real_weights.assert_matches_golden([[float("nan"), 0.5], [1.0, 0.0]], golden)


@pytest.mark.slow
def test_golden_check_fails_when_one_real_weight_is_perturbed() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    folder = real_weights.minilm_folder()
    if folder is None:
        pytest.skip(f"{real_weights.MINILM_DISTRIBUTION} is not installed")
    golden = real_weights.load_golden()
    # A private copy: the cached model is shared with other tests.
    model, tokenizer = real_weights.load_minilm.__wrapped__(folder, "cpu")
    sentences = list(golden.sentences)
    # Control: the untouched checkpoint passes, so the failure below is the perturbation's.
    real_weights.assert_matches_golden(
        real_weights.sentence_embeddings(model, tokenizer, sentences, "cpu"), golden
    )
    with torch.no_grad():
        # One scalar of 22.7 million: the bias of the first layer's query projection.
        model.encoder.layer[0].attention.self.query.bias[0] += 0.5
    perturbed = real_weights.sentence_embeddings(model, tokenizer, sentences, "cpu")
    with pytest.raises(AssertionError, match=r"differ from minilm_golden\.json"):
        real_weights.assert_matches_golden(perturbed, golden)
