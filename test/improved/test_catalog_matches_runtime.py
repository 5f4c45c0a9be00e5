"""The ast-read catalog (test/common/models/transformers_catalog.py) equals transformers' own
runtime mappings: the registry derived from it leaves no architecture out."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.model_test, pytest.mark.integration]


def _first_class(value: object) -> str:
    # A few entries map to a tuple of classes; AutoModel instantiates the first.
    return value[0] if isinstance(value, (tuple, list)) else str(value)


def test_model_mapping_matches_runtime() -> None:
    modeling_auto = pytest.importorskip("transformers.models.auto.modeling_auto")
    from test.common.models.transformers_catalog import load_catalog

    runtime = {
        name: _first_class(value) for name, value in modeling_auto.MODEL_MAPPING_NAMES.items()
    }
    assert load_catalog().base_model_classes == runtime


def test_config_mapping_matches_runtime() -> None:
    configuration_auto = pytest.importorskip("transformers.models.auto.configuration_auto")
    from test.common.models.transformers_catalog import load_catalog

    runtime = dict(configuration_auto.CONFIG_MAPPING_NAMES)
    catalog = load_catalog().config_classes
    # The runtime table may hold a few more entries (added outside the literal, e.g.
    # aliases): every literal entry must be there, unchanged.
    assert {name: runtime.get(name) for name in catalog} == catalog
    missing = set(load_catalog().model_types()) - set(runtime)
    assert not missing, f"architectures without a runtime config class: {sorted(missing)}"


def test_registry_covers_the_runtime_automodel_mapping() -> None:
    transformers = pytest.importorskip("transformers")
    from test.common.models.registry import load_registry

    assert set(load_registry()) == set(transformers.MODEL_MAPPING._model_mapping)
