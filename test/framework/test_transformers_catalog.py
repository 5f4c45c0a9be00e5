"""The ast reading of transformers' auto mappings (no transformers import)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test.common import transformers_catalog as catalog_module
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
        "import sys; from test.common.transformers_catalog import load_catalog; "
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
