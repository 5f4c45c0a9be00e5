"""The task-head catalogue (test/common/models/heads.py): derived from the auto
mappings, validated, listed per task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test.common.models import heads
from test.common.models.expectations import RegistryError
from test.common.models.heads import build_heads, load_heads, task_name
from test.common.models.registry import ArchitectureSpec, load_registry
from test.common.models.transformers_catalog import Catalog, load_catalog

FAKE_CATALOG = Catalog(
    Path("/nowhere"),
    {
        "CONFIG_MAPPING_NAMES": {"alpha": "AlphaConfig", "beta": "BetaConfig"},
        "MODEL_MAPPING_NAMES": {"alpha": "AlphaModel"},
        "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": {"alpha": "AlphaForCausalLM", "beta": "BetaLM"},
        "MODEL_FOR_MASKED_LM_MAPPING_NAMES": {"alpha": "AlphaForCausalLM"},
        "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": {"alpha": "AlphaModel"},
    },
)
REGISTRY = {
    "alpha": ArchitectureSpec(
        "alpha", "text-decoder", config_overrides={"width": 8, "sub": {"a": 1}}, requires=("x",)
    )
}


@pytest.mark.parametrize(
    ("mapping", "task"),
    [
        ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "causal-lm"),
        ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "speech-seq-2-seq"),
        ("MODEL_FOR_AUDIO_TOKENIZATION_NAMES", "audio-tokenization"),
    ],
)
def test_task_names(mapping: str, task: str) -> None:
    assert task_name(mapping) == task


def test_heads_are_the_task_classes_that_are_not_automodel_classes() -> None:
    found = build_heads(FAKE_CATALOG, REGISTRY, {})
    assert list(found) == ["AlphaForCausalLM", "BetaLM"]
    alpha = found["AlphaForCausalLM"]
    assert alpha.tasks == ("causal-lm", "masked-lm")
    assert alpha.generative
    assert alpha.language_modelling
    assert alpha.requires == ("x",)
    # beta has no AutoModel: an empty row, its modality guessed.
    assert found["BetaLM"].architecture.model_type == "beta"


def test_a_head_row_merges_over_its_architecture_row() -> None:
    rows = {"AlphaForCausalLM": {"config_overrides": {"sub": {"b": 2}}, "inputs": {"kind": "text"}}}
    alpha = build_heads(FAKE_CATALOG, REGISTRY, rows)["AlphaForCausalLM"]
    assert alpha.config_overrides == {"width": 8, "sub": {"a": 1, "b": 2}}
    assert alpha.inputs == {"kind": "text"}


def test_observations_of_a_head_are_keyed_by_platform() -> None:
    rows = {"BetaLM": {"expected_failures": {"cpu": {"train_step": "zero gradient"}}}}
    beta = build_heads(FAKE_CATALOG, REGISTRY, rows)["BetaLM"]
    assert beta.expected_failure_of("train_step", ("cpu",)) == "observed on cpu: zero gradient"
    assert beta.expected_failure_of("train_step", ("cuda",)) is None
    assert beta.status == "partial xfail: cpu: train_step"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"GammaLM": {}}, "['GammaLM'] are not task-head classes"),
        ({"BetaLM": {"colour": 1}}, "unknown keys ['colour']"),
        ({"BetaLM": []}, "must be a table"),
        ({"BetaLM": {"expected_failure": ""}}, "expected_failure needs a reason"),
        ({"BetaLM": {"expected_failures": {"cpu": {"fly": "x"}}}}, "unknown checks ['fly']"),
    ],
)
def test_malformed_head_rows_are_errors(rows: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_heads(FAKE_CATALOG, REGISTRY, rows)


def test_every_head_of_the_installed_transformers() -> None:
    found = load_heads()
    catalog = load_catalog()
    base = set(catalog.base_model_classes.values())
    assert len(found) > 900
    assert not base & set(found)
    assert found["BertForMaskedLM"].tasks == ("masked-lm",)
    assert "multimodal-lm" in found["LlavaForConditionalGeneration"].tasks
    assert set(found[name].model_type for name in found) - set(load_registry()), (
        "model types with heads but no AutoModel (trocr, ...) are covered too"
    )


def test_list_prints_every_head_and_the_count_per_task(capsys: pytest.CaptureFixture) -> None:
    assert heads.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert f"{len(load_heads())} model classes (task heads)" in out
    assert "  causal-lm" in out


def test_list_json(capsys: pytest.CaptureFixture) -> None:
    assert heads.main(["--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == len(load_heads())
    assert heads.main([]) == 2
