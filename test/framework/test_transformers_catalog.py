"""The ast reading of transformers' auto mappings (no transformers import)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test.common.models import transformers_catalog as catalog_module
from test.framework.conftest import REPO_ROOT


def test_catalog_lists_known_architectures() -> None:
    catalog = catalog_module.load_catalog()
    model_types = catalog.model_types()
    assert len(model_types) == len(set(model_types)) > 500
    for model_type in ("bert", "gpt2", "whisper", "vit", "clip", "t5"):
        assert model_type in model_types
        assert model_type in catalog.config_classes
    assert catalog.base_model_classes["bert"] == "BertModel"
    assert "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES" in catalog.tasks_of("gpt2")


def test_catalog_does_not_import_transformers() -> None:
    code = (
        "import sys; from test.common.models.transformers_catalog import load_catalog; "
        "load_catalog(); print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_read_mappings_handles_tuples_and_backend_dicts(tmp_path: Path) -> None:
    source = tmp_path / "auto.py"
    source.write_text(
        textwrap.dedent(
            """
            from collections import OrderedDict
            MODEL_MAPPING_NAMES = OrderedDict(
                [
                    ("funnel", ("FunnelModel", "FunnelBaseModel")),
                    ("bert", "BertModel"),
                    ("bert", "Shadowed"),
                ]
            )
            IMAGE_PROCESSOR_MAPPING_NAMES = OrderedDict(
                [("vit", {"torchvision": "ViTFast", "pil": "ViTPil"}), ("x", {"torchvision": "XT"})]
            )
            NOT_A_MAPPING = OrderedDict(**{"a": "b"})
            ALSO_NOT = [1, 2]
            """
        )
    )
    mappings = catalog_module.read_mappings(source)
    assert mappings["MODEL_MAPPING_NAMES"] == {"funnel": "FunnelModel", "bert": "BertModel"}
    assert mappings["IMAGE_PROCESSOR_MAPPING_NAMES"] == {"vit": "ViTPil", "x": "XT"}
    assert set(mappings) == {"MODEL_MAPPING_NAMES", "IMAGE_PROCESSOR_MAPPING_NAMES"}


def test_unexpected_value_shape_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "auto.py"
    source.write_text('M = OrderedDict([("bert", 3 + 4)])\n')
    with pytest.raises(catalog_module.CatalogError, match="unexpected auto-mapping value"):
        catalog_module.read_mappings(source)


def test_unknown_mapping_name_is_an_error() -> None:
    with pytest.raises(catalog_module.CatalogError, match="no auto mapping named NOPE"):
        catalog_module.load_catalog().mapping("NOPE")


def test_missing_transformers_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(catalog_module.CatalogError, match="transformers is not installed"):
        catalog_module.transformers_dir()


MODELING_SOURCE = """
class PreTrainedModel(nn.Module):
    pass


class FooPreTrainedModel(PreTrainedModel):
    config: FooConfig
    _supports_sdpa = True
    _supports_flash_attn = _supports_flex_attn = True  # a chain


class FooModel(FooPreTrainedModel):
    def forward(self):
        _supports_sdpa = False  # a local in a method, not the class attribute
        return None


class BarModel(
    modeling_utils.PreTrainedModel,
):
    _supports_flex_attn = False
"""


def test_attention_flags_are_read_from_class_bodies() -> None:
    classes = catalog_module.read_attention_flags(MODELING_SOURCE)
    assert classes["FooPreTrainedModel"] == (
        ["PreTrainedModel"],
        {"_supports_sdpa": True, "_supports_flex_attn": True},
    )
    assert classes["FooModel"] == (["FooPreTrainedModel"], {})
    assert classes["BarModel"] == (["PreTrainedModel"], {"_supports_flex_attn": False})


def test_attention_implementations_follow_the_bases(monkeypatch: pytest.MonkeyPatch) -> None:
    index = catalog_module.read_attention_flags(MODELING_SOURCE)
    monkeypatch.setattr(catalog_module, "_attention_index", lambda: index)
    assert catalog_module.attention_implementations("FooModel") == (
        "eager",
        "sdpa",
        "flex_attention",
    )
    assert catalog_module.attention_implementations("BarModel") == ("eager",)
    assert catalog_module.attention_implementations("Unknown") == ("eager",)


class _Cache:
    """pytest's config.cache interface: get(key, default) and set(key, value)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get(self, key: str, default: object) -> object:
        return self.values.get(key, default)

    def set(self, key: str, value: object) -> None:
        self.values[key] = value


def test_attention_paths_of_every_architecture_are_cached() -> None:
    cache = _Cache()
    found = catalog_module.attention_paths_by_model_type(cache)
    assert found["bert"] == ("eager", "sdpa", "flex_attention")
    assert found["resnet"] == ("eager",)
    assert set(found) == set(catalog_module.load_catalog().model_types())
    (key,) = cache.values
    cache.values[key] = {"bert": ["eager"]}  # what the cache holds is what is used
    assert catalog_module.attention_paths_by_model_type(cache) == {"bert": ("eager",)}
