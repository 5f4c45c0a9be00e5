"""Every task head: each model class a `MODEL_FOR_*` auto mapping of the installed
transformers names, besides the AutoModel classes the battery builds.

The list is derived, never typed: the auto mappings are read with `ast`
(test/common/models/transformers_catalog.py), so a transformers release that adds a
head brings it in.  A head reuses its architecture's row (config overrides, input
recipe, required packages) from architectures.toml; what is specific to the head is a
row of test/common/models/heads.toml, keyed by class name:

    [GitForCausalLM]
    config_overrides = { ... }                 # merged over the architecture's
    inputs = { ... }                           # merged over the architecture's
    requires = ["timm"]
    expected_failure = "why it cannot be built"  # every check, every platform
    [GitForCausalLM.expected_failures.cpu]     # observed on the CPU
    train_step = "why"

`python -m test.common.models.heads --list [--json]` prints every head with its tasks and
status, and the count per task mapping.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from test.common.models import expectations
from test.common.models.expectations import RegistryError
from test.common.models.registry import (
    ArchitectureSpec,
    guess_modality,
    load_registry,
    read_toml,
)
from test.common.models.tiny_models import merge_overrides
from test.common.models.transformers_catalog import Catalog, load_catalog

HEADS_FILE = Path(__file__).parent / "heads.toml"
ROW_KEYS = frozenset(
    {"config_overrides", "inputs", "requires", "expected_failure", "expected_failures"}
)
#: Tasks whose classes generate text: greedy generation is checked on them.
GENERATIVE_TASKS = frozenset(
    {"causal-lm", "seq-to-seq-causal-lm", "speech-seq-2-seq", "image-text-to-text", "multimodal-lm"}
)
#: Tasks whose head projects onto the vocabulary: tied embeddings are checked on them.
LANGUAGE_MODELLING_TASKS = GENERATIVE_TASKS | {"masked-lm", "pretraining"}


def task_name(mapping: str) -> str:
    """'MODEL_FOR_CAUSAL_LM_MAPPING_NAMES' -> 'causal-lm'."""
    core = mapping.removeprefix("MODEL_FOR_").removesuffix("_NAMES").removesuffix("_MAPPING")
    return core.lower().replace("_", "-")


def task_mappings(catalog: Catalog) -> list[str]:
    return [name for name in catalog.mappings if name.startswith("MODEL_FOR_")]


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """One task head: its class, the architecture it belongs to, its tasks and row."""

    class_name: str
    model_type: str
    tasks: tuple[str, ...]
    architecture: ArchitectureSpec
    config_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    inputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    requires: tuple[str, ...] = ()
    expected_failure: str | None = None
    expected_failures: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def modality(self) -> str:
        return self.architecture.modality

    @property
    def generative(self) -> bool:
        return bool(GENERATIVE_TASKS.intersection(self.tasks))

    @property
    def language_modelling(self) -> bool:
        return bool(LANGUAGE_MODELLING_TASKS.intersection(self.tasks))

    def expected_failure_of(self, check: str, keys: Sequence[str] = ("cpu",)) -> str | None:
        if self.expected_failure:
            return self.expected_failure
        return expectations.observed_failure(self.expected_failures, check, keys)

    @property
    def status(self) -> str:
        return expectations.row_status(
            self.expected_failure, self.requires, None, self.expected_failures
        )


def _check_row(class_name: str, row: Any) -> None:
    where = f"{HEADS_FILE}: [{class_name}]"
    if not isinstance(row, dict):
        raise RegistryError(f"{where} must be a table, got {row!r}")
    unknown = set(row) - ROW_KEYS
    if unknown:
        raise RegistryError(
            f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(ROW_KEYS)}"
        )
    expectations.check_observations(
        where, row.get("expected_failures", {}), expectations.checks_of("model_class")
    )
    expectations.check_requires(where, row.get("requires", []))
    reason = row.get("expected_failure", "reason")
    if not (isinstance(reason, str) and reason.strip()):
        raise RegistryError(f"{where} expected_failure needs a reason (a string)")


def head_classes(catalog: Catalog) -> dict[str, tuple[str, list[str]]]:
    """class name -> (the model_type that first names it, its tasks), for every class
    of a task mapping that is not an AutoModel class, in the catalog's order."""
    base = set(catalog.base_model_classes.values())
    found: dict[str, tuple[str, list[str]]] = {}
    for mapping in task_mappings(catalog):
        for model_type, class_name in catalog.mappings[mapping].items():
            if class_name in base:
                continue
            _, tasks = found.setdefault(class_name, (model_type, []))
            if task_name(mapping) not in tasks:
                tasks.append(task_name(mapping))
    return found


def build_heads(
    catalog: Catalog, registry: Mapping[str, ArchitectureSpec], rows: Mapping[str, Any]
) -> dict[str, HeadSpec]:
    """One spec per head class of `catalog`, from the architecture rows and head rows."""
    classes = head_classes(catalog)
    unknown = sorted(set(rows) - set(classes))
    if unknown:
        raise RegistryError(
            f"{HEADS_FILE}: {unknown} are not task-head classes of the installed transformers"
        )
    heads = {}
    for class_name, (model_type, tasks) in classes.items():
        row = rows.get(class_name, {})
        _check_row(class_name, row)
        architecture = registry.get(model_type) or ArchitectureSpec(
            model_type, guess_modality(catalog, model_type)
        )
        heads[class_name] = HeadSpec(
            class_name=class_name,
            model_type=model_type,
            tasks=tuple(tasks),
            architecture=architecture,
            config_overrides=merge_overrides(
                architecture.config_overrides, row.get("config_overrides", {})
            ),
            inputs=merge_overrides(architecture.inputs, row.get("inputs", {})),
            requires=(*architecture.requires, *row.get("requires", ())),
            expected_failure=row.get("expected_failure"),
            expected_failures=row.get("expected_failures", {}),
        )
    return heads


@functools.cache
def load_heads() -> dict[str, HeadSpec]:
    """Every task head of the installed transformers (cached)."""
    rows = read_toml(HEADS_FILE) if HEADS_FILE.is_file() else {}
    return build_heads(load_catalog(), load_registry(), rows)


def tasks_table(heads: Mapping[str, HeadSpec]) -> dict[str, collections.Counter[str]]:
    """task -> Counter of statuses ('runs', 'partial xfail', 'xfail', 'needs')."""
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for spec in heads.values():
        status = spec.status.split(":")[0].split(" ")[0]
        for task in spec.tasks:
            table[task][status] += 1
    return dict(sorted(table.items()))


def describe_all(heads: Mapping[str, HeadSpec]) -> list[dict[str, Any]]:
    return [
        {
            "class": spec.class_name,
            "model_type": spec.model_type,
            "tasks": list(spec.tasks),
            "status": spec.status,
        }
        for spec in heads.values()
    ]


def print_table(heads: Mapping[str, HeadSpec]) -> None:
    """Every head with its tasks and status, then the count per task mapping."""
    width = max(len(name) for name in heads)
    for spec in heads.values():
        print(f"{spec.class_name:<{width}}  {','.join(spec.tasks):<40}  {spec.status}")
    print(f"{len(heads)} model classes (task heads)")
    for task, counts in tasks_table(heads).items():
        listed = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
        print(f"  {task:<32} {sum(counts.values()):>4}  {listed}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m test.common.models.heads", description=__doc__)
    parser.add_argument("--list", action="store_true", help="print every task head")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args(argv)
    if not options.list:
        parser.print_usage()
        return 2
    heads = load_heads()
    if options.json:
        print(json.dumps(describe_all(heads), indent=2))
    else:
        print_table(heads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
