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
import bisect
import functools
import hashlib
import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def _spread(element: ast.expr, known: Mapping[str, dict[str, str]]) -> dict[str, str] | None:
    """The table that `*list(OTHER.items())` spreads into a literal, if OTHER is known."""
    if not isinstance(element, ast.Starred) or not isinstance(element.value, ast.Call):
        return None
    inner = element.value.args[0] if element.value.args else None
    if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)):
        return None
    if isinstance(inner.func.value, ast.Name) and inner.func.attr == "items":
        return known.get(inner.func.value.id)
    return None


def _literal_pairs(
    call: ast.expr, known: Mapping[str, dict[str, str]] | None = None
) -> dict[str, str] | None:
    """The dict of an `OrderedDict([("key", "Value"), ...])` literal, else None.  A
    `*list(OTHER.items())` element spreads OTHER, an earlier table of `known`, into it
    (MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES starts with the image-text-to-text table)."""
    if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.List)):
        return None
    table: dict[str, str] = {}
    for element in call.args[0].elts:
        spread = _spread(element, known or {})
        if spread is not None:
            for key, value in spread.items():
                table.setdefault(key, value)
            continue
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
            table = _literal_pairs(node.value, found)
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


# -- attention implementations -----------------------------------------------------------

#: The attention implementations the battery compares, with the class attribute that
#: declares support for each (eager is always there).
ATTENTION_FLAGS = (("sdpa", "_supports_sdpa"), ("flex_attention", "_supports_flex_attn"))
_BASE_NAME = re.compile(r"[\w.]+")


def _find_all(text: str, needle: str) -> list[int]:
    positions, start = [], text.find(needle)
    while start != -1:
        positions.append(start)
        start = text.find(needle, start + 1)
    return positions


def _class_headers(text: str) -> list[tuple[int, str, list[str]]]:
    """(offset, name, base names) of every top-level class of a source file."""
    headers = []
    for start in _find_all(text, "\nclass "):
        end = text.find(":\n", start)
        header = text[start + len("\nclass ") : end]
        name, _, bases = header.partition("(")
        names = [m.group(0).split(".")[-1] for m in _BASE_NAME.finditer(bases.split(")")[0])]
        headers.append((start, name.strip(), names))
    return headers


def read_attention_flags(text: str) -> dict[str, tuple[list[str], dict[str, bool]]]:
    """class -> (bases, {flag: value}) for the `_supports_*` flags set in a class body.

    Found with str.find, not `ast`: parsing every modeling file costs seconds, and the
    flags are plain `    _supports_sdpa = True` lines (chains like `a = b = True` too)."""
    headers = _class_headers(text)
    classes = {name: (bases, {}) for _, name, bases in headers}
    offsets = [offset for offset, _, _ in headers]
    flags = {flag for _, flag in ATTENTION_FLAGS}
    for position in _find_all(text, "\n    _supports_"):
        line = text[position + 1 : text.find("\n", position + 1)]
        *targets, value = [part.strip() for part in line.split("#")[0].split("=")]
        owner = bisect.bisect_left(offsets, position) - 1
        if value not in ("True", "False") or owner < 0:
            continue
        for flag in flags.intersection(targets):
            classes[headers[owner][1]][1][flag] = value == "True"
    return classes


@functools.cache
def _attention_index() -> dict[str, tuple[list[str], dict[str, bool]]]:
    """Every class of every modeling file of the installed transformers (cached)."""
    index: dict[str, tuple[list[str], dict[str, bool]]] = {}
    for path in sorted((transformers_dir() / "models").glob("*/modeling_*.py")):
        text = path.read_text(encoding="utf-8")
        if "_supports_" in text:
            for name, info in read_attention_flags(text).items():
                index.setdefault(name, info)
    return index


def _flag(index: Mapping[str, Any], name: str, flag: str, depth: int = 0) -> bool:
    if name not in index or depth > 20:
        return False  # PreTrainedModel itself: every flag defaults to False
    bases, flags = index[name]
    if flag in flags:
        return flags[flag]
    return any(_flag(index, base, flag, depth + 1) for base in bases)


def attention_implementations(class_name: str) -> tuple[str, ...]:
    """The attention implementations model class `class_name` declares: eager first."""
    index = _attention_index()
    declared = [path for path, flag in ATTENTION_FLAGS if _flag(index, class_name, flag)]
    return ("eager", *declared)


def attention_paths_by_model_type(cache: Any = None) -> dict[str, tuple[str, ...]]:
    """model_type -> attention_implementations of its AutoModel class, for every
    architecture; `cache` is pytest's (config.cache), keyed by the transformers
    installation, since scanning the sources costs ~0.2 s."""
    key = f"hf-suite/attention-paths/{_installation_key()}"
    cached = cache.get(key, None) if cache is not None else None
    if isinstance(cached, dict) and cached:
        return {name: tuple(paths) for name, paths in cached.items()}
    found = {
        model_type: attention_implementations(class_name)
        for model_type, class_name in load_catalog().base_model_classes.items()
    }
    if cache is not None:
        cache.set(key, {name: list(paths) for name, paths in found.items()})
    return found


@functools.cache
def _installation_key() -> str:
    """Where transformers is installed and which version: a changed install, a new key."""
    from importlib import metadata

    directory = transformers_dir()
    version = metadata.version("transformers")
    stamp = int((directory / "__init__.py").stat().st_mtime)
    return hashlib.sha256(f"{directory}:{version}:{stamp}".encode()).hexdigest()[:16]
