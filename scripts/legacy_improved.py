"""Which converted families get an improved test file, rendered from the template.

The template (test/common/models/model_test_template.py) is filled with
`fill_template(row, class_name, bundle)`: a file that names a row of
`PRIORITY_MODELS` (test/common/models/priority_models.py) and one check bundle.  What a
model is tested with is data in that row, so the converter renders a file only
for a family that has a row, and only where the legacy intent (its task) agrees
with the row.  Any other family's intent stays in its registry overlay row (which
the battery reads), and the report carries a suggested PRIORITY_MODELS row for a
person to review: generating a near-identical test file per family would only
copy behaviour that lives once in the battery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.legacy_mapping import Resolver

IMPROVED_DIR = Path("test/improved")


@dataclass
class ImprovedPlan:
    """The improved file of one model_type: rendered (text set) or why not."""

    model_type: str
    status: str  # render | exists | no_intent | no_template_row | task_differs | no_bundle
    reason: str
    path: str | None = None
    text: str | None = field(default=None, repr=False)
    suggested_row: dict[str, str] | None = None

    def as_report(self) -> dict[str, Any]:
        shown = {k: v for k, v in vars(self).items() if k != "text" and v is not None}
        return shown


def bundle_for(spec: Any) -> str | None:
    """The template's check bundle for a PRIORITY_MODELS row."""
    by_generation = {
        "decoder": "DecoderOnlyLMTests",
        "seq2seq": "Seq2SeqLMTests",
        "speech": "SpeechSeq2SeqTests",
    }
    if spec.generation in by_generation:
        return by_generation[spec.generation]
    if spec.task == "fill-mask":
        return "MaskedLMTests"
    if spec.modality in ("vision", "multimodal"):
        return "VisionTests"
    return None


def class_name_for(row: str) -> str:
    """`bert` -> `TestBert`, `xlm-roberta` -> `TestXlmRoberta`."""
    words = row.replace("-", "_").split("_")
    return "Test" + "".join(word[:1].upper() + word[1:] for word in words if word)


def suggested_row(model_type: str, entry: Any, resolver: Resolver) -> dict[str, str]:
    """The PRIORITY_MODELS fields the legacy files determine (a person adds the rest)."""
    row = {"name": model_type, "model_type": model_type}
    if entry.task:
        row["task"] = entry.task
        for mapping in resolver.tasks.mappings.get(entry.task, ()):
            head = resolver.catalog.mappings.get(mapping, {}).get(model_type)
            if head:
                row["model_class"] = head
                break
    if entry.checkpoints:
        row["hub_id"] = entry.checkpoints[0]
    return row


def plan_improved(entries: dict[str, Any], resolver: Resolver) -> list[ImprovedPlan]:
    """One plan per converted model_type, in model_type order."""
    from test.common.models import model_test_template
    from test.common.models.priority_models import PRIORITY_MODELS

    rows_by_type = {spec.model_type: spec for spec in PRIORITY_MODELS.values()}
    plans = []
    for model_type, entry in sorted(entries.items()):
        spec = rows_by_type.get(model_type)
        plan = _plan_one(model_type, entry, spec, resolver)
        if plan.status == "render":
            bundle = bundle_for(spec)
            plan.text = model_test_template.fill_template(
                spec.name, class_name_for(spec.name), bundle
            )
        plans.append(plan)
    return plans


def _plan_one(model_type: str, entry: Any, spec: Any, resolver: Resolver) -> ImprovedPlan:
    if not (entry.task or entry.checkpoints):
        reason = "the legacy files name no task and no real checkpoint: the battery covers it"
        return ImprovedPlan(model_type, "no_intent", reason)
    if spec is None:
        reason = (
            f"no PRIORITY_MODELS row has model_type {model_type!r}, and the template renders "
            "rows only; the legacy task and checkpoints are kept in the overlay row"
        )
        suggestion = suggested_row(model_type, entry, resolver)
        return ImprovedPlan(model_type, "no_template_row", reason, suggested_row=suggestion)
    if entry.task and entry.task != spec.task:
        reason = f"legacy task {entry.task!r} differs from row {spec.name!r} task {spec.task!r}"
        return ImprovedPlan(model_type, "task_differs", reason)
    bundle = bundle_for(spec)
    if bundle is None:
        return ImprovedPlan(model_type, "no_bundle", f"no check bundle fits row {spec.name!r}")
    path = (IMPROVED_DIR / f"test_hf_{spec.name}_improved.py").as_posix()
    reason = f"PRIORITY_MODELS row {spec.name!r} with {bundle}"
    return ImprovedPlan(model_type, "render", reason, path=path)
