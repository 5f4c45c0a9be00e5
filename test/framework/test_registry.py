"""The architecture registry (test/common/models/registry.py): derived, validated, listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test.common.models import registry
from test.common.models.expectations import PLATFORM_KEYS, checks_of
from test.common.models.registry import RegistryError, build_registry, load_registry
from test.common.models.transformers_catalog import Catalog, load_catalog

FAKE_CATALOG = Catalog(
    Path("/nowhere"),
    {
        "CONFIG_MAPPING_NAMES": {"alpha": "AlphaConfig", "beta": "BetaConfig"},
        "MODEL_MAPPING_NAMES": {"alpha": "AlphaModel", "beta": "BetaModel"},
        "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": {"alpha": "AlphaForCausalLM"},
    },
)


def test_every_automodel_architecture_has_exactly_one_spec() -> None:
    assert list(load_registry()) == load_catalog().model_types()


def test_every_spec_has_a_known_modality_and_a_sane_cap() -> None:
    for spec in load_registry().values():
        assert spec.modality in registry.MODALITIES, spec.model_type
        assert spec.max_parameters >= registry.PARAMETER_CAP or spec.max_parameters_reason


def test_every_expected_failure_has_a_reason() -> None:
    for spec in load_registry().values():
        for check in checks_of("architecture"):
            for platform in PLATFORM_KEYS:
                reason = spec.expected_failure_of(check, (platform,))
                assert reason is None or len(reason.strip()) > 10, (spec.model_type, check)


@pytest.mark.parametrize(
    ("model_type", "modality"),
    [
        ("bert", "text-encoder"),
        ("gpt2", "text-decoder"),
        ("vit", "vision"),
        ("whisper", "audio"),
        ("clip", "multimodal"),
        ("t5", "encoder-decoder"),
    ],
)
def test_modality_is_guessed_from_the_auto_mappings(model_type: str, modality: str) -> None:
    assert registry.guess_modality(load_catalog(), model_type) == modality


def test_rows_and_overlay_are_merged() -> None:
    rows = {"alpha": {"modality": "vision", "expected_failures": {"cpu": {"bad_input": "casts"}}}}
    overlay = {"beta": {"checkpoints": ["org/beta-base"], "task": "fill-mask", "sources": ["a.py"]}}
    specs = build_registry(FAKE_CATALOG, rows, overlay)
    assert specs["alpha"].modality == "vision"
    assert specs["alpha"].expected_failure_of("bad_input") == "observed on cpu: casts"
    assert specs["alpha"].expected_failure_of("forward") is None
    assert specs["alpha"].status == "partial xfail: cpu: bad_input"
    assert specs["beta"].modality == "other"
    assert specs["beta"].checkpoints == ("org/beta-base",)
    assert specs["beta"].task == "fill-mask"
    assert specs["beta"].status == "runs"


def test_an_observation_applies_only_on_its_platform() -> None:
    rows = {"alpha": {"expected_failures": {"cpu": {"reduced_precision": "no bf16 fft"}}}}
    spec = build_registry(FAKE_CATALOG, rows, {})["alpha"]
    assert spec.expected_failure_of("reduced_precision", ("cpu",))
    assert spec.expected_failure_of("reduced_precision", ("cuda",)) is None
    assert spec.expected_failure_of("reduced_precision", ("rocm",)) is None


def test_a_qualified_observation_applies_only_where_the_feature_is() -> None:
    rows = {"alpha": {"expected_failures": {"cpu+amx": {"reduced_precision": "1.3 off"}}}}
    spec = build_registry(FAKE_CATALOG, rows, {})["alpha"]
    assert spec.expected_failure_of("reduced_precision", ("cpu+amx", "cpu"))
    assert spec.expected_failure_of("reduced_precision", ("cpu",)) is None


def test_requires_is_a_status_not_an_expected_failure() -> None:
    spec = build_registry(FAKE_CATALOG, {"alpha": {"requires": ["timm"]}}, {})["alpha"]
    assert spec.requires == ("timm",)
    assert spec.status == "needs timm"
    assert spec.expected_failure_of("forward") is None


def test_forward_failure_spares_only_loads() -> None:
    rows = {
        "alpha": {
            "forward_failure": "needs grid_thw",
            "expected_failures": {"cpu": {"loads": "cap"}},
        }
    }
    spec = build_registry(FAKE_CATALOG, rows, {})["alpha"]
    assert spec.expected_failure_of("loads") == "observed on cpu: cap"
    assert spec.expected_failure_of("forward") == "needs grid_thw"
    assert spec.expected_failure_of("bad_input") == "needs grid_thw"
    assert spec.status == "xfail after loading: needs grid_thw"


def test_whole_battery_xfail_status() -> None:
    specs = build_registry(FAKE_CATALOG, {"alpha": {"expected_failure": "needs timm"}}, {})
    assert specs["alpha"].status == "xfail: needs timm"
    assert specs["alpha"].expected_failure_of("loads") == "needs timm"
    assert FAKE_CATALOG.model_types() == ["alpha", "beta"]
    assert specs["alpha"].modality == "text-decoder"


@pytest.mark.parametrize(
    ("rows", "overlay", "message"),
    [
        ({"gamma": {}}, {}, "architectures.toml: ['gamma'] are not AutoModel"),
        ({}, {"gamma": {"task": "x"}}, "converted_models.toml: ['gamma'] are not AutoModel"),
        ({"alpha": {"colour": "red"}}, {}, "unknown keys ['colour']"),
        ({"alpha": {"inputs": {"fames": 32}}}, {}, "[alpha.inputs] has unknown keys ['fames']"),
        ({"alpha": {"modality": "smell"}}, {}, "modality 'smell' is not one of"),
        ({"alpha": {"expected_failures": {"cpu": {"fly": "no"}}}}, {}, "unknown checks ['fly']"),
        ({"alpha": {"expected_failures": {"bad_input": "x"}}}, {}, "unknown platform 'bad_input'"),
        ({"alpha": {"expected_failures": {"tpu": {}}}}, {}, "unknown platform 'tpu'"),
        ({"alpha": {"expected_failures": {"cpu": "x"}}}, {}, "expected_failures.cpu must be a"),
        ({"alpha": {"expected_failures": {"cpu": {"forward": ""}}}}, {}, "cpu.forward needs a"),
        ({"alpha": {"expected_failures": []}}, {}, "must be a table of platforms"),
        ({"alpha": {"requires": "timm"}}, {}, "requires must be a list"),
        ({"alpha": {"expected_failure": " "}}, {}, "expected_failure needs a reason"),
        ({"alpha": {"forward_failure": 3}}, {}, "forward_failure needs a reason"),
        ({"alpha": {"max_parameters": 9}}, {}, "max_parameters needs max_parameters_reason"),
        ({"alpha": "runs"}, {}, "[alpha] must be a table"),
        ({}, {"alpha": {"weights": "x"}}, "converted_models.toml: [alpha] has unknown keys"),
    ],
)
def test_malformed_rows_are_errors_naming_the_file(rows, overlay, message) -> None:
    with pytest.raises(RegistryError) as error:
        build_registry(FAKE_CATALOG, rows, overlay)
    assert message in str(error.value)


def test_invalid_toml_names_file_and_position(tmp_path: Path) -> None:
    broken = tmp_path / "architectures.toml"
    broken.write_text('[bert]\nmodality = "text-encoder"\nexpected_failure = \n')
    with pytest.raises(RegistryError, match=r"architectures\.toml: invalid TOML: .*line 3"):
        registry.read_toml(broken)


def test_list_prints_every_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    assert registry.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{len(load_registry())} architectures" in lines
    assert any(line.endswith("model classes (task heads)") for line in lines)
    assert any(line.split()[:3] == ["bert", "text-encoder", "runs"] for line in lines)


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert registry.main(["--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    architectures = listed["architectures"]
    assert [entry["model_type"] for entry in architectures] == list(load_registry())
    assert {"model_type", "modality", "status", "checkpoints", "task"} <= set(architectures[0])
    assert {"class", "model_type", "tasks", "status"} <= set(listed["model_classes"][0])


def test_without_list_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert registry.main([]) == 2
    assert "usage" in capsys.readouterr().out
