"""Which model_type each hub checkpoint belongs to, as transformers' own source says.

Every `models/<name>/` folder of the installed transformers names checkpoints in its
configuration and modeling files: `_CHECKPOINT_FOR_DOC`, docstring links
(`[google-bert/bert-base-uncased](https://huggingface.co/...)`), `from_pretrained(...)`
examples.  Each such id is tied to the model_types that folder's configuration
declares (`model_type = "bert"`).  Read with regular expressions, never imported.

Scanning ~1,000 files costs about a second, so the index is cached on disk per
transformers installation (version and path), in `$XDG_CACHE_HOME/hf-model-suite/`
(default `~/.cache/`).  A cache file that cannot be read is reported and left as it
is; the index is then rebuilt in memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from test.common.models.transformers_catalog import transformers_dir

#: `org/name` ids as transformers writes them in code and docstrings.
_HUB_ID = re.compile(r"(?<![\w./:-])([A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?![\w/])")
_MODEL_TYPE = re.compile(r"""^\s*model_type\s*(?::\s*\w+\s*)?=\s*["']([^"']+)["']""", re.M)
#: Path-like matches that are not hub ids.
_NOT_IDS = ("http", "www.", "huggingface.co", "github.com")
CACHE_FORMAT = 1


def _folder_index(folder: Path) -> tuple[set[str], set[str]]:
    """(model_types declared, checkpoint ids named) of one models/<name>/ folder."""
    model_types: set[str] = set()
    ids: set[str] = set()
    for path in folder.iterdir():
        name = path.name
        if not (name.endswith(".py") and name.startswith(("configuration_", "modeling_"))):
            continue
        text = path.read_text("utf-8", errors="replace")
        if name.startswith("configuration_"):
            model_types.update(_MODEL_TYPE.findall(text))
        ids.update(
            m.rstrip(".").lower() for m in _HUB_ID.findall(text) if not m.startswith(_NOT_IDS)
        )
    return model_types, ids


def scan_checkpoints(models_dir: Path) -> dict[str, list[str]]:
    """checkpoint id (lowercase) -> the model_types whose source names it, sorted."""
    owners: dict[str, set[str]] = {}
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        model_types, ids = _folder_index(folder)
        for checkpoint in ids:
            owners.setdefault(checkpoint, set()).update(model_types)
    return {checkpoint: sorted(types) for checkpoint, types in owners.items() if types}


def cache_path(root: Path, version: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return base / "hf-model-suite" / f"checkpoints-{version}-{digest}.json"


def _read_cache(path: Path) -> dict[str, list[str]] | None:
    try:
        document = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        print(f"warning: {path}: unreadable cache ({error}); kept, not used", file=sys.stderr)
        return None
    if not (isinstance(document, dict) and document.get("format") == CACHE_FORMAT):
        print(f"warning: {path}: not a checkpoint cache; kept, not used", file=sys.stderr)
        return None
    owners = document.get("owners")
    return owners if isinstance(owners, dict) else None


def _write_cache(path: Path, owners: dict[str, list[str]]) -> None:
    """Atomically; a cache that cannot be written only costs the next run a rescan."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump({"format": CACHE_FORMAT, "owners": owners}, stream)
        os.replace(temporary, path)
    except OSError as error:
        print(f"warning: cannot write {path}: {error}", file=sys.stderr)


@functools.cache
def checkpoint_owners() -> dict[str, list[str]]:
    """The index of the installed transformers, from the disk cache when present."""
    from scripts.legacy_mapping import transformers_version

    root = transformers_dir()
    path = cache_path(root, transformers_version())
    cached = _read_cache(path)
    if cached is not None:
        return cached
    owners = scan_checkpoints(root / "models")
    if not path.exists():
        _write_cache(path, owners)
    return owners
