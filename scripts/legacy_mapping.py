"""Decide what in a legacy file is real: its model_type, its hub ids, its task.

Everything is checked against the pinned transformers, read from its source with
`ast` (test/common/models/transformers_catalog.py and the pipeline table below), never
against a hand-typed list of architectures.  What cannot be verified is dropped
with a reason: the legacy converter's worst failure was emitting tests for ids
it had invented (`__help-base`).
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scripts.legacy_checkpoints import checkpoint_owners
from scripts.legacy_reader import LegacyFacts
from test.common.models.transformers_catalog import Catalog, load_catalog, transformers_dir

# Trailing words of a legacy file name that name a variant or a size, not an
# architecture: test_hf_bert_base_uncased.py and test_hf_bert_web.py are BERT.
VARIANT_SUFFIXES = frozenset(
    {
        "base",
        "cased",
        "huge",
        "improved",
        "large",
        "medium",
        "mini",
        "minimal",
        "small",
        "standardized",
        "tiny",
        "uncased",
        "web",
    }
)

# Hub ids from before the Hub moved its root-level models into organisations.
# Legacy tests still use the old names; the Hub redirects them to these.
CANONICAL_IDS = {
    "albert-base-v1": "albert/albert-base-v1",
    "albert-base-v2": "albert/albert-base-v2",
    "albert-large-v2": "albert/albert-large-v2",
    "bert-base-cased": "google-bert/bert-base-cased",
    "bert-base-chinese": "google-bert/bert-base-chinese",
    "bert-base-multilingual-cased": "google-bert/bert-base-multilingual-cased",
    "bert-base-multilingual-uncased": "google-bert/bert-base-multilingual-uncased",
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "bert-large-cased": "google-bert/bert-large-cased",
    "bert-large-uncased": "google-bert/bert-large-uncased",
    "camembert-base": "almanach/camembert-base",
    "ctrl": "Salesforce/ctrl",
    "distilbert-base-cased": "distilbert/distilbert-base-cased",
    "distilbert-base-uncased": "distilbert/distilbert-base-uncased",
    "distilgpt2": "distilbert/distilgpt2",
    "distilroberta-base": "distilbert/distilroberta-base",
    "gpt2": "openai-community/gpt2",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-xl": "openai-community/gpt2-xl",
    "openai-gpt": "openai-community/openai-gpt",
    "roberta-base": "FacebookAI/roberta-base",
    "roberta-large": "FacebookAI/roberta-large",
    "t5-11b": "google-t5/t5-11b",
    "t5-3b": "google-t5/t5-3b",
    "t5-base": "google-t5/t5-base",
    "t5-large": "google-t5/t5-large",
    "t5-small": "google-t5/t5-small",
    "xlm-roberta-base": "FacebookAI/xlm-roberta-base",
    "xlm-roberta-large": "FacebookAI/xlm-roberta-large",
    "xlnet-base-cased": "xlnet/xlnet-base-cased",
    "xlnet-large-cased": "xlnet/xlnet-large-cased",
}

# Template placeholders that look like `org/name` but name nothing.
PLACEHOLDER_IDS = frozenset(
    {"model/id", "org/model", "org/name", "organization/model", "user/model", "username/model"}
)

# The Hub's repo id rules: `org/name`, letters, digits, `-`, `_`, `.`; no `--` or `..`;
# neither part starts or ends with `-` or `.`; at most 96 characters for the name.
_ID_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^{_ID_PART}/{_ID_PART}$")


def canonical_key(name: str) -> str:
    """The spelling-free key under which names are compared: `XLM_Roberta` -> `xlmroberta`."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def check_hub_id(candidate: str) -> tuple[str | None, str]:
    """(the id to keep, or None; why)."""
    if candidate in CANONICAL_IDS:
        return CANONICAL_IDS[candidate], f"legacy canonical id, now {CANONICAL_IDS[candidate]}"
    if candidate.lower() in PLACEHOLDER_IDS or "{" in candidate:
        return None, "a template placeholder, not a hub id"
    if "/" not in candidate:
        return None, "not `org/name` and not a known canonical hub id"
    if not _HUB_ID.match(candidate) or "--" in candidate or ".." in candidate:
        return None, "not a valid hub repo id"
    return candidate, "org/name hub id"


@dataclass(frozen=True)
class PipelineTasks:
    """Pipeline tasks of the pinned transformers: task -> auto-mapping names it loads with."""

    mappings: dict[str, tuple[str, ...]]
    aliases: dict[str, str]
    removed: dict[str, str]


@dataclass
class Resolution:
    """What a legacy file maps to, or why it maps to nothing."""

    model_type: str | None
    reason: str
    task: str | None = None
    warnings: list[str] = field(default_factory=list)


def _literal_dict(node: ast.expr) -> dict[str, ast.expr]:
    if not isinstance(node, ast.Dict):
        return {}
    pairs = zip(node.keys, node.values, strict=True)
    return {
        k.value: v for k, v in pairs if isinstance(k, ast.Constant) and isinstance(k.value, str)
    }


def _module_assignments(source: str) -> dict[str, ast.expr]:
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                found[target.id] = node.value
    return found


def _auto_class_mappings(modeling_auto: str) -> dict[str, str]:
    """`class AutoModelForMaskedLM: _model_mapping = X` + `X = _LazyAutoMapping(C, X_NAMES)`."""
    assignments = _module_assignments(modeling_auto)
    lazy = {}
    for name, value in assignments.items():
        if isinstance(value, ast.Call) and len(value.args) == 2:
            names_arg = value.args[1]
            if isinstance(names_arg, ast.Name):
                lazy[name] = names_arg.id
    found = {}
    for node in ast.parse(modeling_auto).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if (
                isinstance(item, ast.Assign)
                and isinstance(item.value, ast.Name)
                and any(getattr(t, "id", None) == "_model_mapping" for t in item.targets)
                and item.value.id in lazy
            ):
                found[node.name] = lazy[item.value.id]
    return found


@functools.cache
def load_pipeline_tasks() -> PipelineTasks:
    """Read SUPPORTED_TASKS, TASK_ALIASES and REMOVED_TASKS of transformers.pipelines by `ast`."""
    root = transformers_dir()
    pipelines = _module_assignments((root / "pipelines" / "__init__.py").read_text("utf-8"))
    auto_classes = _auto_class_mappings(
        (root / "models" / "auto" / "modeling_auto.py").read_text("utf-8")
    )
    mappings = {}
    for task, spec in _literal_dict(pipelines.get("SUPPORTED_TASKS")).items():
        pt = _literal_dict(spec).get("pt")
        names = [n.id for n in ast.walk(pt) if isinstance(n, ast.Name)] if pt else []
        mappings[task] = tuple(auto_classes[n] for n in names if n in auto_classes)

    def strings(name: str) -> dict[str, str]:
        table = _literal_dict(pipelines.get(name))
        return {k: v.value for k, v in table.items() if isinstance(v, ast.Constant)}

    return PipelineTasks(mappings, strings("TASK_ALIASES"), strings("REMOVED_TASKS"))


class Resolver:
    """Maps LegacyFacts to a model_type, real checkpoints and a task of the pinned transformers."""

    def __init__(self, catalog: Catalog | None = None, tasks: PipelineTasks | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self.tasks = tasks or load_pipeline_tasks()
        # Config model types, then AutoModel's keys, which win: a few differ
        # (AutoModel registers `mlcd` whose config type is `mlcd_vision_model`).
        known = [*self.catalog.config_classes, *self.catalog.base_model_classes]
        self._by_key = {canonical_key(mt): mt for mt in known}
        self.aliases = {
            canonical_key(product): target for product, target in load_aliases().items()
        }
        self._class_index = self._build_class_index()

    def _build_class_index(self) -> dict[str, str]:
        """Model class name -> model_type, over every MODEL_* auto mapping."""
        owners: dict[str, set[str]] = {}
        for name, table in self.catalog.mappings.items():
            if name.startswith("MODEL_"):
                for model_type, class_name in table.items():
                    owners.setdefault(class_name, set()).add(model_type)
        index = {}
        for class_name, model_types in owners.items():
            chosen = self._owner_of(class_name, model_types)
            if chosen:
                index[class_name] = chosen
        return index

    @staticmethod
    def _owner_of(class_name: str, model_types: set[str]) -> str | None:
        # A class shared by several model types (LlamaModel: llama, internlm3, ...)
        # belongs to the one its name starts with; if none does, it is ambiguous.
        if len(model_types) == 1:
            return next(iter(model_types))
        key = canonical_key(class_name)
        prefixed = [mt for mt in model_types if key.startswith(canonical_key(mt))]
        return max(prefixed, key=len) if prefixed else None

    def model_type_of_name(self, name: str) -> str | None:
        """A family spelling -> model_type: exact key (or a product alias, legacy_aliases.toml)
        first, then without variant suffixes."""
        words = [w for w in re.split(r"[-_\s]+", name.strip("_-")) if w]
        while words:
            key = canonical_key("".join(words))
            model_type = self._by_key.get(key) or self._by_key.get(
                canonical_key(self.aliases.get(key, ""))
            )
            if model_type:
                return model_type
            if words[-1].lower() not in VARIANT_SUFFIXES:
                return None
            words.pop()
        return None

    def signals(self, facts: LegacyFacts) -> list[tuple[str, str | None]]:
        """(evidence, the model_type it names or None): the file name first, then the
        content: registry names, test classes, model classes."""
        found = [(f"file name {facts.family!r}", self.model_type_of_name(facts.family))]
        found += [
            (f"registry name {name!r}", self.model_type_of_name(name))
            for name in _registry_families(facts)
        ]
        found += [
            (f"test class {family!r}", self.model_type_of_name(family))
            for family in facts.test_class_families
        ]
        found += [
            (f"model class {name}", self._class_index.get(name)) for name in facts.model_classes
        ]
        return found

    def resolve(self, facts: LegacyFacts) -> Resolution:
        """The model_type the content names most often (registry, test class, model classes),
        the file name breaking ties; the file name alone when the content names none.

        Legacy generators copied one family's template to make another's file: a
        `test_hf_marian.py` whose registry, test class and model class are T5's tests T5.
        """
        signals = self.signals(facts)
        content = Counter(model_type for _, model_type in signals[1:] if model_type)
        named_by_file = signals[0][1]
        if content:
            most = max(content.values())
            leaders = [model_type for model_type, votes in content.items() if votes == most]
            chosen = named_by_file if named_by_file in leaders else leaders[0]
        elif named_by_file:
            chosen = named_by_file
        else:
            return Resolution(None, self._unmapped_reason(facts))
        return self._finish(facts, chosen, signals)

    def _finish(
        self, facts: LegacyFacts, model_type: str, signals: list[tuple[str, str | None]]
    ) -> Resolution:
        agreeing = [evidence for evidence, named in signals if named == model_type]
        resolution = Resolution(model_type, f"{agreeing[0]} is model_type {model_type!r}")
        disagreeing = [
            (evidence, named) for evidence, named in signals if named not in (None, model_type)
        ]
        if disagreeing:
            said = "; ".join(f"{evidence} says {named!r}" for evidence, named in disagreeing)
            resolution.warnings.append(
                f"the file disagrees with itself: {said}; decided {model_type!r} by the "
                f"content ({', '.join(agreeing)})"
            )
        resolution.task = self._choose_task(facts, model_type, resolution.warnings)
        return resolution

    def checkpoint_problem(
        self, checkpoint: str, written: str, model_type: str, facts: LegacyFacts
    ) -> str | None:
        """Why `checkpoint` (written `written` in the file) is not a `model_type` checkpoint,
        or None: transformers' source ties it to other model_types only, or the legacy
        registry entry that names it loads another model_type's class."""
        owners = checkpoint_owners().get(checkpoint.lower())
        if owners and model_type not in owners:
            named = ", ".join(map(repr, owners[:3])) + (
                f" and {len(owners) - 3} more" if len(owners) > 3 else ""
            )
            return f"belongs to {named} (named in that source of transformers), not {model_type!r}"
        for class_name in facts.registry_classes.get(written, []):
            owner = self._class_index.get(class_name)
            if owner and owner != model_type:
                return f"its registry entry loads {class_name}, a {owner!r} class"
        return None

    def _unmapped_reason(self, facts: LegacyFacts) -> str:
        names = [facts.family, *_registry_families(facts), *facts.test_class_families]
        tried = ", ".join(repr(n) for n in dict.fromkeys(names))
        reason = f"no model_type of transformers {self.catalog_version()} matches {tried}"
        if facts.model_classes:
            reason += f" nor model class {', '.join(facts.model_classes)}"
        near = difflib.get_close_matches(canonical_key(facts.family), self._by_key, n=3)
        if near:
            reason += f" (nearest: {', '.join(self._by_key[k] for k in near)})"
        return reason

    def catalog_version(self) -> str:
        return transformers_version()

    def task_supported(self, task: str, model_type: str) -> tuple[str | None, str]:
        """(the pipeline task name if model_type can run it, else None; why)."""
        task = self.tasks.aliases.get(task, task)
        if task in self.tasks.removed:
            return None, f"task {task!r} was removed from transformers pipelines"
        if task not in self.tasks.mappings:
            return None, f"{task!r} is not a pipeline task of transformers"
        for mapping in self.tasks.mappings[task]:
            if model_type in self.catalog.mappings.get(mapping, {}):
                return task, f"{model_type!r} is in {mapping}"
        return None, f"{model_type!r} cannot run task {task!r} (in none of its auto mappings)"

    def _choose_task(self, facts: LegacyFacts, model_type: str, warnings: list[str]) -> str | None:
        """The explicit task if transformers supports it, else one its model class implies."""
        for task in facts.tasks:
            supported, why = self.task_supported(task, model_type)
            if supported:
                return supported
            warnings.append(f"legacy task {task!r} dropped: {why}")
        return self._task_of_classes(facts.model_classes, model_type)

    def _task_of_classes(self, class_names: list[str], model_type: str) -> str | None:
        # A head class (BertForMaskedLM) implies its task; a base class (BertModel)
        # implies none, and a class serving several tasks is left undecided.
        base = self.catalog.base_model_classes.get(model_type)
        for class_name in class_names:
            if class_name == base:
                continue
            # rank 0: the task's primary auto class (text-generation for a CausalLM);
            # a later rank is a fallback of another task (decision also takes CausalLMs).
            ranked = sorted(
                (rank, task)
                for task, mappings in self.tasks.mappings.items()
                for rank, mapping in enumerate(mappings)
                if self.catalog.mappings.get(mapping, {}).get(model_type) == class_name
                and mapping != "MODEL_MAPPING_NAMES"
            )
            best = [task for rank, task in ranked if rank == ranked[0][0]] if ranked else []
            if len(best) == 1:
                return best[0]
        return None


#: Product names -> model_type (flan-t5 -> t5): data, checked by a framework test.
ALIASES_FILE = Path(__file__).with_name("legacy_aliases.toml")


@functools.cache
def load_aliases() -> dict[str, str]:
    with ALIASES_FILE.open("rb") as stream:
        return dict(tomllib.load(stream))


def _registry_families(facts: LegacyFacts) -> list[str]:
    return [re.sub(r"_MODELS?_REGISTRY$", "", name) for name in facts.registry_names]


def transformers_version() -> str:
    """The installed transformers' version, from its metadata (no import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "unknown"


def most_common_task(tasks: list[str]) -> tuple[str | None, list[str]]:
    """Variants of one family may disagree: the most frequent task, ties alphabetical."""
    if not tasks:
        return None, []
    counts = Counter(tasks)
    chosen = sorted(counts, key=lambda t: (-counts[t], t))[0]
    others = sorted(set(tasks) - {chosen})
    return chosen, others
