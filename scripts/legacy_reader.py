"""Read a legacy `test_hf_*.py` file with `ast` and pull out what it claims to test.

Nothing here imports or executes the file: legacy tests run hardware probes,
MagicMock patching and sometimes network calls at import time, so the only safe
reading is a syntactic one.  The facts gathered are raw strings; deciding which
of them are real (a model_type transformers knows, a hub id that exists) is
legacy_mapping's job.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

#: Files above this size are not legacy tests but generated blobs or data.
DEFAULT_MAX_BYTES = 1_000_000

# Names under which legacy tests keep their default checkpoint and task.
_MODEL_ID_NAME = re.compile(r"(default_)?model(_id|_name|_path)?$", re.IGNORECASE)
_TASK_NAME = re.compile(r"(default_|pipeline_)?task$", re.IGNORECASE)
_REGISTRY_NAME = re.compile(r"^(?P<family>\w+?)_MODELS?_REGISTRY$")
_TEST_MODELS_CLASS = re.compile(r"^Test(?P<family>\w+?)Models?$")
_CLASS_KEYS = ("class", "model_class", "architecture")
_TASK_KEYS = ("task", "pipeline_task", "pipeline_tag")
# Imports that mark a file as a client, CLI or container test rather than a model test.
_NON_MODEL_IMPORTS = frozenset(
    {
        "aiohttp",
        "argparse",
        "click",
        "docker",
        "fastapi",
        "flask",
        "grpc",
        "httpx",
        "requests",
        "socket",
        "subprocess",
    }
)


class BadInput(Exception):
    """A file that cannot be read as Python source; `outcome` names the kind of problem."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


@dataclass
class LegacyFacts:
    """Everything a legacy file says about the model it tests, as written in it."""

    family: str
    registry_names: list[str] = field(default_factory=list)
    test_class_families: list[str] = field(default_factory=list)
    default_ids: list[str] = field(default_factory=list)
    registry_ids: list[str] = field(default_factory=list)
    #: registry id -> the model classes its entry names
    registry_classes: dict[str, list[str]] = field(default_factory=dict)
    loaded_ids: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    model_classes: list[str] = field(default_factory=list)
    loading_calls: int = 0
    defined_classes: list[str] = field(default_factory=list)
    non_model_imports: list[str] = field(default_factory=list)

    @property
    def tests_a_model(self) -> bool:
        """A registry, a Test<Name>Models class or a model-loading call: a model test."""
        return bool(self.registry_names or self.test_class_families or self.loading_calls)

    def candidate_ids(self) -> list[str]:
        """Every id the file names, the default first, without repeats."""
        return _unique(self.default_ids + self.registry_ids + self.loaded_ids)


def family_from_filename(path: Path) -> str:
    """`test_hf_xlm-roberta.py` -> `xlm-roberta` (the spelling is normalized later)."""
    stem = path.stem
    for prefix in ("test_hf_", "test_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def read_source(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The file's text, or BadInput saying why it cannot be converted."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadInput("unreadable", "not a regular file")
        if size > max_bytes:
            raise BadInput("too_large", f"{size} bytes, over the {max_bytes}-byte limit")
        data = path.read_bytes()
    except OSError as error:
        raise BadInput("unreadable", f"cannot read: {error.strerror or error}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BadInput("binary", f"contains a NUL byte at offset {nul}")
    text = decode_source(data)
    if not text.strip():
        raise BadInput("empty", "the file is empty")
    return text


def decode_source(data: bytes) -> str:
    """Decode as Python does: a PEP 263 coding line (`# -*- coding: latin-1 -*-`) names the
    encoding, else UTF-8 (a BOM allowed)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:  # an unknown encoding, or a BOM contradicting the cookie
        raise BadInput("not_utf8", f"bad coding line: {error.msg}") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise BadInput("not_utf8", f"not {encoding}: byte {error.start} ({error.reason})") from None


def parse_source(text: str, filename: str) -> ast.Module:
    """Parse without executing; a file with no statements counts as empty."""
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as error:
        where = f"line {error.lineno}, column {error.offset}"
        raise BadInput("syntax_error", f"{where}: {error.msg}") from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise BadInput("syntax_error", f"cannot be parsed: {type(error).__name__}") from None
    if not tree.body:
        raise BadInput("empty", "no statements (comments only)")
    return tree


#: parso node types that hold statements whose parts may parse on their own.
_STATEMENT_HOLDERS = frozenset({"file_input", "classdef", "funcdef", "suite", "error_node"})


def salvage_statements(text: str) -> ast.Module:
    """The statements of a file that does not parse, which do parse on their own.

    parso (error-tolerant, the parser behind jedi) splits the file into statements
    despite the errors; each is then parsed by `ast` alone, and one that still fails
    is searched for smaller statements inside it (a class whose one method has an
    unbalanced parenthesis keeps its other methods).  Nothing is executed.
    """
    import parso

    found: list[ast.stmt] = []
    try:
        pending = [parso.parse(text, error_recovery=True)]
        while pending:
            node = pending.pop()
            if node.type != "file_input" and _parses_alone(node.get_code(), found):
                continue
            if node.type in _STATEMENT_HOLDERS or node.type.endswith("_stmt"):
                pending.extend(reversed(getattr(node, "children", [])))
    except (RecursionError, MemoryError):  # nesting too deep for parso: nothing to salvage
        return ast.Module(body=[], type_ignores=[])
    return ast.Module(body=found, type_ignores=[])


def _parses_alone(code: str, found: list[ast.stmt]) -> bool:
    """Add the statements of `code` (dedented) to `found` if it parses by itself."""
    try:
        found.extend(ast.parse(textwrap.dedent(code.lstrip("\n"))).body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def extract_facts(tree: ast.Module, path: Path) -> LegacyFacts:
    """Collect ids, tasks, classes and the family named anywhere in the module."""
    facts = LegacyFacts(family=family_from_filename(path))
    for node in tree.body:
        _read_registry(node, facts)
    for node in ast.walk(tree):
        # One dictionary lookup per node instead of a chain of isinstance checks: this
        # loop is most of a conversion's time.
        reader = _READERS.get(type(node))
        if reader is not None:
            reader(node, facts)
    for name in ("default_ids", "registry_ids", "loaded_ids", "tasks", "model_classes"):
        setattr(facts, name, _unique(getattr(facts, name)))
    return facts


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _strings(node: ast.AST | None) -> list[str]:
    """String constants an expression can evaluate to: `x or "a"`, `"a" if c else "b"`, `"a"`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _strings(value)]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _target_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _read_registry(node: ast.stmt, facts: LegacyFacts) -> None:
    """`BERT_MODELS_REGISTRY = {"id": {"class": ..., "task": ...}}` at module level."""
    if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)):
        return
    names = [target.id for target in node.targets if isinstance(target, ast.Name)]
    if not any(_REGISTRY_NAME.match(name) for name in names):
        return
    facts.registry_names.extend(names)
    for key, value in zip(node.value.keys, node.value.values, strict=True):
        ids = _strings(key)
        facts.registry_ids.extend(ids)
        if isinstance(value, ast.Dict):
            classes = _read_registry_entry(value, facts)
            for registry_id in ids:
                facts.registry_classes.setdefault(registry_id, []).extend(classes)


def _read_registry_entry(entry: ast.Dict, facts: LegacyFacts) -> list[str]:
    """Record the entry's task and classes; return the classes."""
    classes = []
    for key, value in zip(entry.keys, entry.values, strict=True):
        key_text = key.value if isinstance(key, ast.Constant) else None
        if key_text in _CLASS_KEYS:
            classes += _strings(value)
        elif key_text in _TASK_KEYS:
            facts.tasks.extend(_strings(value))
    facts.model_classes.extend(classes)
    return classes


def _read_class(node: ast.ClassDef, facts: LegacyFacts) -> None:
    facts.defined_classes.append(node.name)
    match = _TEST_MODELS_CLASS.match(node.name)
    if match:
        facts.test_class_families.append(match.group("family"))
        _read_init_defaults(node, facts)


def _read_init_defaults(node: ast.ClassDef, facts: LegacyFacts) -> None:
    """`def __init__(self, model_id="x")`: the default checkpoint as a parameter default."""
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            arguments = item.args.args[-len(item.args.defaults) :] if item.args.defaults else []
            for argument, default in zip(arguments, item.args.defaults, strict=True):
                if _MODEL_ID_NAME.match(argument.arg):
                    facts.default_ids.extend(_strings(default))


def _read_assignment(node: ast.Assign | ast.AnnAssign, facts: LegacyFacts) -> None:
    """`self.model_id = model_id or "x"` and `self.task = "fill-mask"`, wherever they are."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
        name = _target_name(target)
        if name is None:
            continue
        if _MODEL_ID_NAME.match(name):
            facts.default_ids.extend(_strings(node.value))
        elif _TASK_NAME.match(name):
            facts.tasks.extend(_strings(node.value))


def _read_call(node: ast.Call, facts: LegacyFacts) -> None:
    """`X.from_pretrained("id")` and `pipeline("task", model="id")`."""
    name = _target_name(node.func)
    keywords = {keyword.arg: keyword.value for keyword in node.keywords if keyword.arg}
    if name == "from_pretrained":
        facts.loading_calls += 1
        first = node.args[0] if node.args else keywords.get("pretrained_model_name_or_path")
        facts.loaded_ids.extend(_strings(first))
        owner = _target_name(node.func.value) if isinstance(node.func, ast.Attribute) else None
        if owner and not owner.startswith("Auto") and owner[:1].isupper():
            facts.model_classes.append(owner)
    elif name == "pipeline":
        facts.loading_calls += 1
        facts.tasks.extend(_strings(node.args[0] if node.args else keywords.get("task")))
        facts.loaded_ids.extend(_strings(keywords.get("model")))


def _read_kwargs_dict(node: ast.Dict, facts: LegacyFacts) -> None:
    """`pipeline_kwargs = {"task": "fill-mask", "model": "id"}`, later passed as `**kwargs`."""
    for key, value in zip(node.keys, node.values, strict=True):
        key_text = key.value if isinstance(key, ast.Constant) else None
        if key_text in ("model", "model_id", "model_name"):
            facts.loaded_ids.extend(_strings(value))
        elif key_text in _TASK_KEYS:
            facts.tasks.extend(_strings(value))


def _read_import(node: ast.Import | ast.ImportFrom, facts: LegacyFacts) -> None:
    if isinstance(node, ast.Import):
        modules = [alias.name for alias in node.names]
    else:
        modules = [node.module or ""]
    for module in modules:
        top = module.split(".")[0]
        if top in _NON_MODEL_IMPORTS and top not in facts.non_model_imports:
            facts.non_model_imports.append(top)


_READERS = {
    ast.ClassDef: _read_class,
    ast.Assign: _read_assignment,
    ast.AnnAssign: _read_assignment,
    ast.Call: _read_call,
    ast.Dict: _read_kwargs_dict,
    ast.Import: _read_import,
    ast.ImportFrom: _read_import,
}
