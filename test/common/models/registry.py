"""The architecture registry: every AutoModel architecture, plus what is specific to it.

The list of architectures is never typed by hand: it is the installed transformers'
`MODEL_MAPPING_NAMES` (read with `ast` by test/common/models/transformers_catalog.py), so a
new transformers release brings its new architectures in automatically.  What differs
per architecture is data, in one declarative file, test/common/models/architectures.toml:

    [whisper]
    modality = "audio"                        # else derived from the auto mappings
    config_overrides = { max_source_positions = 16 }
    inputs = { frames = 32 }                  # input recipe (test/common/models/model_inputs.py)
    expected_failure = "why it cannot pass"   # strict xfail of every check, everywhere
    forward_failure = "why"                   # builds, but every check that runs it fails
    requires = ["timm"]                       # skipped, naming the package, where missing
    max_parameters = 6_000_000                # above the 5M cap, with:
    max_parameters_reason = "why"

    [whisper.expected_failures.cpu]           # observed on the CPU: a strict xfail there only
    bad_input = "why"

Expected failures are keyed by platform (test/common/models/expectations.py).

An optional overlay, test/common/models/converted_models.toml (written by the legacy
converter), adds real checkpoint names and a task per architecture.

`python -m test.common.models.registry --list [--json]` prints every architecture with its
modality and status, then every task head (test/common/models/heads.py) with its tasks
and status, and the count per task mapping.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from test.common.models import expectations
from test.common.models.expectations import RegistryError
from test.common.models.model_inputs import RECIPE_FIELDS
from test.common.models.transformers_catalog import Catalog, load_catalog

MODELS_DIR = Path(__file__).parent
ARCHITECTURES_FILE = MODELS_DIR / "architectures.toml"
CONVERTED_FILE = MODELS_DIR / "converted_models.toml"

#: The pytest marker of each modality (a test module marks its items with it).
MODALITY_MARKS = {
    "text-encoder": "text",
    "text-decoder": "text",
    "encoder-decoder": "text",
    "vision": "vision",
    "audio": "audio",
    "multimodal": "multimodal",
    "time-series": "time_series",
}
MODALITIES = (
    "text-encoder",
    "text-decoder",
    "encoder-decoder",
    "vision",
    "audio",
    "multimodal",
    "time-series",
    "other",
)
#: Default parameter cap of a tiny model; a row may raise it, with a reason.
PARAMETER_CAP = 5_000_000
ROW_KEYS = frozenset(
    {
        "modality",
        "config_overrides",
        "inputs",
        "expected_failure",
        "expected_failures",
        "forward_failure",
        "requires",
        "max_parameters",
        "max_parameters_reason",
    }
)
OVERLAY_KEYS = frozenset({"checkpoints", "task", "sources"})

#: (auto mapping, modality), first match wins: how an architecture's modality is
#: guessed from the tasks transformers registers it for.
MODALITY_RULES: tuple[tuple[str, str], ...] = (
    ("MODEL_FOR_TIME_SERIES_PREDICTION_MAPPING_NAMES", "time-series"),
    ("MODEL_FOR_TIME_SERIES_CLASSIFICATION_MAPPING_NAMES", "time-series"),
    ("MODEL_FOR_TIME_SERIES_REGRESSION_MAPPING_NAMES", "time-series"),
    ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "multimodal"),
    ("MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES", "multimodal"),
    ("MODEL_FOR_DOCUMENT_QUESTION_ANSWERING_MAPPING_NAMES", "multimodal"),
    ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES", "multimodal"),
    ("MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES", "multimodal"),
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_CTC_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_AUDIO_XVECTOR_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_AUDIO_TOKENIZATION_NAMES", "audio"),
    ("MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_TEXT_TO_SPECTROGRAM_MAPPING_NAMES", "audio"),
    ("FEATURE_EXTRACTOR_MAPPING_NAMES", "audio"),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_BACKBONE_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_IMAGE_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_MASK_GENERATION_MAPPING_NAMES", "vision"),
    ("VIDEO_PROCESSOR_MAPPING_NAMES", "vision"),
    ("IMAGE_PROCESSOR_MAPPING_NAMES", "vision"),
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "encoder-decoder"),
    # BERT-likes are in the causal-LM table too (BertLMHeadModel): masked LM first.
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "text-encoder"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "text-decoder"),
    ("MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES", "text-encoder"),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "text-encoder"),
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "text-encoder"),
    ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", "text-encoder"),
)


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec:
    """What the checks need to know about one architecture."""

    model_type: str
    modality: str
    config_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    expected_failure: str | None = None
    #: {platform: {check: reason}}: observations, each applying where it was seen.
    expected_failures: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    forward_failure: str | None = None
    requires: tuple[str, ...] = ()
    max_parameters: int = PARAMETER_CAP
    max_parameters_reason: str | None = None
    checkpoints: tuple[str, ...] = ()
    task: str | None = None
    sources: tuple[str, ...] = ()

    def expected_failure_of(self, check: str, keys: Sequence[str] = ("cpu",)) -> str | None:
        """Why `check` is expected to fail on the platform looked up by `keys`
        (hardware.observation_keys), or None."""
        if self.expected_failure:
            return self.expected_failure
        observed = expectations.observed_failure(self.expected_failures, check, keys)
        if observed:
            return observed
        return self.forward_failure if check != "loads" else None

    @property
    def status(self) -> str:
        return expectations.row_status(
            self.expected_failure, self.requires, self.forward_failure, self.expected_failures
        )


#: Sub-models (qwen2_vl_text, sam_vision_model, ...) are in no task table: their
#: name says what they are.
NAME_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("_vision", "_vision_model", "_vit_model", "_det_model"), "vision"),
    (("_audio", "_audio_encoder", "asr_encoder", "_asr", "_encoder_audio"), "audio"),
    (("_text", "_text_model"), "text-decoder"),
)


def guess_modality(catalog: Catalog, model_type: str) -> str:
    for mapping, modality in MODALITY_RULES:
        if model_type in catalog.mappings.get(mapping, {}):
            return modality
    for suffixes, modality in NAME_RULES:
        if model_type.endswith(suffixes):
            return modality
    return "other"


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a syntax error names the file and the position."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise RegistryError(f"{path}: invalid TOML: {error}") from None


def _check_keys(path: Path, model_type: str, row: Any, allowed: frozenset[str]) -> None:
    if not isinstance(row, dict):
        raise RegistryError(f"{path}: [{model_type}] must be a table, got {row!r}")
    unknown = set(row) - allowed
    if unknown:
        raise RegistryError(
            f"{path}: [{model_type}] has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _check_row(path: Path, model_type: str, row: dict[str, Any]) -> None:
    _check_keys(path, model_type, row, ROW_KEYS)
    # A misspelt recipe field would otherwise be ignored, and the model fed the default.
    _check_keys(path, f"{model_type}.inputs", row.get("inputs", {}), RECIPE_FIELDS)
    modality = row.get("modality")
    if modality is not None and modality not in MODALITIES:
        raise RegistryError(
            f"{path}: [{model_type}] modality {modality!r} is not one of {MODALITIES}"
        )
    where = f"{path}: [{model_type}]"
    expectations.check_observations(
        where, row.get("expected_failures", {}), expectations.checks_of("architecture")
    )
    expectations.check_requires(where, row.get("requires", []))
    for key in ("expected_failure", "forward_failure"):
        reason = row.get(key, "reason")
        if not (isinstance(reason, str) and reason.strip()):
            raise RegistryError(f"{where} {key} needs a reason (a string)")
    if "max_parameters" in row and not row.get("max_parameters_reason"):
        raise RegistryError(f"{path}: [{model_type}] max_parameters needs max_parameters_reason")


def _check_known(path: Path, rows: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(rows) - set(known))
    if unknown:
        raise RegistryError(
            f"{path}: {unknown} are not AutoModel architectures of the installed "
            "transformers (remove the rows, or check the spelling of model_type)"
        )


def build_registry(
    catalog: Catalog,
    rows: Mapping[str, dict[str, Any]],
    overlay: Mapping[str, dict[str, Any]],
    *,
    rows_file: Path = ARCHITECTURES_FILE,
    overlay_file: Path = CONVERTED_FILE,
) -> dict[str, ArchitectureSpec]:
    """One spec per architecture of `catalog`, from the data rows and the overlay."""
    model_types = catalog.model_types()
    _check_known(rows_file, rows, model_types)
    _check_known(overlay_file, overlay, model_types)
    registry: dict[str, ArchitectureSpec] = {}
    for model_type in model_types:
        row = rows.get(model_type, {})
        _check_row(rows_file, model_type, row)
        extra = overlay.get(model_type, {})
        _check_keys(overlay_file, model_type, extra, OVERLAY_KEYS)
        registry[model_type] = ArchitectureSpec(
            model_type=model_type,
            modality=row.get("modality") or guess_modality(catalog, model_type),
            config_overrides=row.get("config_overrides", {}),
            inputs=row.get("inputs", {}),
            expected_failure=row.get("expected_failure"),
            expected_failures=row.get("expected_failures", {}),
            forward_failure=row.get("forward_failure"),
            requires=tuple(row.get("requires", ())),
            max_parameters=int(row.get("max_parameters", PARAMETER_CAP)),
            max_parameters_reason=row.get("max_parameters_reason"),
            checkpoints=tuple(extra.get("checkpoints", ())),
            task=extra.get("task"),
            sources=tuple(extra.get("sources", ())),
        )
    return registry


@functools.cache
def load_registry() -> dict[str, ArchitectureSpec]:
    """Every AutoModel architecture of the installed transformers (cached)."""
    rows = read_toml(ARCHITECTURES_FILE)
    overlay = read_toml(CONVERTED_FILE) if CONVERTED_FILE.is_file() else {}
    return build_registry(load_catalog(), rows, overlay)


def describe(spec: ArchitectureSpec) -> dict[str, Any]:
    return {
        "model_type": spec.model_type,
        "modality": spec.modality,
        "status": spec.status,
        "checkpoints": list(spec.checkpoints),
        "task": spec.task,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m test.common.models.registry", description=__doc__
    )
    parser.add_argument("--list", action="store_true", help="print every architecture")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args(argv)
    if not options.list:
        parser.print_usage()
        return 2
    from test.common.models import heads

    registry = load_registry()
    if options.json:
        listed = {
            "architectures": [describe(spec) for spec in registry.values()],
            "model_classes": heads.describe_all(heads.load_heads()),
        }
        print(json.dumps(listed, indent=2))
        return 0
    width = max(len(model_type) for model_type in registry)
    for spec in registry.values():
        print(f"{spec.model_type:<{width}}  {spec.modality:<15}  {spec.status}")
    print(f"{len(registry)} architectures")
    print()
    heads.print_table(heads.load_heads())
    return 0


if __name__ == "__main__":
    sys.exit(main())
