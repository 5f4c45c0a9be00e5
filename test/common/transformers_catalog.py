"""What the installed transformers knows, read from its source with `ast`.

The model registry must be derived from transformers' auto mappings, yet
collecting the (gated) model tests must not import transformers: importing it
costs seconds and pulls in torch.  The auto mappings are plain literals in
`transformers/models/auto/*.py`, so reading them with `ast` gives the same
answer in milliseconds.  A model test checks that this answer equals the
runtime mappings (test/improved/test_catalog_matches_runtime.py).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path


class CatalogError(RuntimeError):
    """transformers is missing, or its auto mappings no longer have the shape we read."""


@dataclass(frozen=True)
class Catalog:
    """Auto-mapping tables of the installed transformers: name -> {model_type: class name}."""

    transformers_dir: Path
    mappings: dict[str, dict[str, str]]

    def mapping(self, name: str) -> dict[str, str]:
        try:
            return self.mappings[name]
        except KeyError:
            raise CatalogError(f"transformers has no auto mapping named {name}") from None

    @property
    def config_classes(self) -> dict[str, str]:
        """Every model_type transformers knows -> its config class name."""
        return self.mapping("CONFIG_MAPPING_NAMES")

    @property
    def base_model_classes(self) -> dict[str, str]:
        """model_type -> AutoModel class: the architectures the battery covers."""
        return self.mapping("MODEL_MAPPING_NAMES")

    def model_types(self) -> list[str]:
        """The architectures registered with AutoModel, in transformers' order."""
        return list(self.base_model_classes)

    def tasks_of(self, model_type: str) -> list[str]:
        """Names of the auto mappings (e.g. MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) listing it."""
        return [name for name, table in self.mappings.items() if model_type in table]


def transformers_dir() -> Path:
    """Where transformers is installed, found without importing it."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError("transformers is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _class_name(node: ast.expr) -> str:
    # A few entries map to a tuple of classes (e.g. funnel: FunnelModel,
    # FunnelBaseModel); the first is the one AutoModel instantiates.
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, (ast.Tuple, ast.List)) and node.elts:
        return _class_name(node.elts[0])
    # Image and video processors map to {backend: class}.  The PIL backend is
    # preferred: the torchvision one needs torchvision, which has no build that
    # imports beside the pinned CPU torch.
    if isinstance(node, ast.Dict) and node.values:
        pairs = zip(node.keys, node.values, strict=True)
        backends = {_class_name(k): _class_name(v) for k, v in pairs if k is not None}
        return backends.get("pil") or next(iter(backends.values()))
    raise CatalogError(f"unexpected auto-mapping value: {ast.dump(node)}")


def _literal_pairs(call: ast.expr) -> dict[str, str] | None:
    """The dict of an `OrderedDict([("key", "Value"), ...])` literal, else None."""
    if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.List)):
        return None
    table: dict[str, str] = {}
    for element in call.args[0].elts:
        if not (isinstance(element, ast.Tuple) and len(element.elts) == 2):
            return None
        key = element.elts[0]
        if not isinstance(key, ast.Constant):
            return None
        table.setdefault(str(key.value), _class_name(element.elts[1]))
    return table


def read_mappings(path: Path) -> dict[str, dict[str, str]]:
    """Every top-level `NAME = OrderedDict([...])` literal of one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            table = _literal_pairs(node.value)
            if isinstance(target, ast.Name) and table is not None:
                found[target.id] = table
    return found


@functools.cache
def load_catalog() -> Catalog:
    """Read the installed transformers' auto mappings (cached per process)."""
    auto_dir = transformers_dir() / "models" / "auto"
    mappings: dict[str, dict[str, str]] = {}
    for source in ("auto_mappings.py", "modeling_auto.py"):
        path = auto_dir / source
        if not path.is_file():
            raise CatalogError(
                f"{path} is missing: this transformers release is laid out differently"
            )
        mappings.update(read_mappings(path))
    for required in ("CONFIG_MAPPING_NAMES", "MODEL_MAPPING_NAMES"):
        if not mappings.get(required):
            raise CatalogError(f"could not read {required} from {auto_dir}")
    return Catalog(auto_dir.parent.parent, mappings)
