"""Convert legacy `test_hf_*.py` model tests into this suite, without running them.

Usage: python scripts/convert_tests_bulk.py [SOURCE_DIR] [--dry-run] [--report PATH] ...

Every file is read with `ast` only (scripts/legacy_reader.py), mapped to a
model_type of the pinned transformers (scripts/legacy_mapping.py) and either
converted or reported with the precise reason it was not.  Converted families
become rows of test/common/models/converted_models.toml, which the registry merges;
where a family carries a task or checkpoint and has a PRIORITY_MODELS row, an
improved test file is rendered from test/common/models/model_test_template.py
(scripts/legacy_improved.py).  See docs/CONVERSION.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import tempfile
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as `python scripts/convert_tests_bulk.py`
    sys.path.insert(0, str(REPO_ROOT))

from scripts.legacy_improved import ImprovedPlan, plan_improved  # noqa: E402
from scripts.legacy_mapping import (  # noqa: E402
    Resolver,
    check_hub_id,
    most_common_task,
    transformers_version,
)
from scripts.legacy_reader import (  # noqa: E402
    DEFAULT_MAX_BYTES,
    BadInput,
    LegacyFacts,
    extract_facts,
    parse_source,
    read_source,
    salvage_statements,
)

OVERLAY = Path("test/common/models/converted_models.toml")
DEFAULT_PATTERN = "test_hf_*.py"
# Directories below SOURCE_DIR that hold this suite rather than legacy tests:
# converted output (improved), helpers (common), framework tests and their fixtures.
EXCLUDED_DIRS = frozenset({"improved", "common", "framework", "fixtures", "__pycache__"})
#: How many unconverted files the closing summary lists (all are in the report).
SHOWN_PROBLEMS = 20
#: Every outcome a file can end with; the summary counts each.
OUTCOMES = (
    "converted",
    "salvaged",
    "no_model",
    "unmapped",
    "outside_battery",
    "empty",
    "syntax_error",
    "not_utf8",
    "binary",
    "too_large",
    "unreadable",
)


class ConversionError(RuntimeError):
    """The run cannot proceed (a corrupted overlay, a bad option); the message says where."""


@dataclass
class FileResult:
    """One legacy file's outcome, as written to the JSON report."""

    path: str
    outcome: str
    reason: str
    model_type: str | None = None
    task: str | None = None
    checkpoints: list[str] = field(default_factory=list)
    rejected_ids: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """One registry row: a model_type and what its legacy files named."""

    checkpoints: list[str]
    task: str | None
    sources: list[str]

    def as_toml_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {"checkpoints": self.checkpoints}
        if self.task:
            fields["task"] = self.task
        fields["sources"] = self.sources
        return fields


def discover(source: Path, pattern: str = DEFAULT_PATTERN, recursive: bool = True) -> list[Path]:
    """Legacy files under `source`, sorted, skipping this suite's own directories."""
    if source.is_file():
        return [source]
    found = []
    for directory, subdirs, files in os.walk(source):
        subdirs[:] = sorted(d for d in subdirs if d not in EXCLUDED_DIRS and not d.startswith("."))
        if not recursive:
            subdirs.clear()
        found += [Path(directory) / f for f in files if fnmatch.fnmatchcase(f, pattern)]
    return sorted(found)


def display_path(path: Path, source: Path, output_root: Path) -> str:
    """The path recorded in sources: relative to the output root, else to SOURCE_DIR's parent."""
    absolute = path.absolute()
    for base in (output_root.absolute(), source.absolute().parent):
        if absolute.is_relative_to(base):
            return absolute.relative_to(base).as_posix()
    return absolute.as_posix()


def _read_facts(path: Path, shown: str, max_bytes: int) -> tuple[LegacyFacts, str]:
    """The file's facts, and '' or why they come from the statements that parse alone."""
    text = read_source(path, max_bytes)
    try:
        return extract_facts(parse_source(text, shown), path), ""
    except BadInput as bad:
        if bad.outcome != "syntax_error":
            raise
        facts = extract_facts(salvage_statements(text), path)
        if not facts.tests_a_model:
            raise
        return facts, f"salvaged: does not parse ({bad.reason}), read from what does; "


def convert_file(path: Path, shown: str, resolver: Resolver, max_bytes: int) -> FileResult:
    """Read, parse, and map one file; never raises for bad input."""
    try:
        facts, salvaged = _read_facts(path, shown, max_bytes)
    except BadInput as bad:
        return FileResult(shown, bad.outcome, bad.reason)
    if not facts.tests_a_model:
        return FileResult(shown, "no_model", _no_model_reason(facts))
    resolution = resolver.resolve(facts)
    result = FileResult(
        shown, "unmapped", salvaged + resolution.reason, warnings=resolution.warnings
    )
    for candidate in facts.candidate_ids():
        kept, why = check_hub_id(candidate)
        problem = (
            kept
            and resolution.model_type
            and resolver.checkpoint_problem(kept, candidate, resolution.model_type, facts)
        )
        if kept and not problem:
            result.checkpoints.append(kept)
        else:
            result.rejected_ids.append({"id": candidate, "reason": problem or why})
    result.checkpoints = sorted(set(result.checkpoints))
    if resolution.model_type:
        result.model_type, result.task = resolution.model_type, resolution.task
        result.outcome = "salvaged" if salvaged else "converted"
        if resolution.model_type not in resolver.catalog.base_model_classes:
            # The registry (and so the battery) holds AutoModel architectures only.
            result.outcome = "outside_battery"
            result.reason += (
                f", which has no AutoModel class in transformers {transformers_version()}: "
                "the battery cannot build it, so no registry row is written"
            )
    return result


def _no_model_reason(facts) -> str:
    reason = (
        "tests no model: no *_MODELS_REGISTRY dict, no Test<Name>Models class and "
        "no from_pretrained()/pipeline() call"
    )
    clues = []
    if facts.defined_classes:
        clues.append(f"defines {', '.join(facts.defined_classes[:3])}")
    if facts.non_model_imports:
        clues.append(f"imports {', '.join(facts.non_model_imports)}")
    return reason + (f"; {'; '.join(clues)}" if clues else "")


def collect_entries(results: list[FileResult]) -> tuple[dict[str, Entry], list[str]]:
    """Collapse the converted files of each model_type (variants) into one row."""
    grouped: dict[str, list[FileResult]] = {}
    for result in results:
        if result.outcome in ("converted", "salvaged") and result.model_type:
            grouped.setdefault(result.model_type, []).append(result)
    entries, notes = {}, []
    for model_type, members in sorted(grouped.items()):
        task, others = most_common_task([m.task for m in members if m.task])
        if others:
            notes.append(
                f"{model_type}: variants disagree on the task; kept {task!r} over {others}"
            )
        entries[model_type] = Entry(
            checkpoints=sorted({c for m in members for c in m.checkpoints}),
            task=task,
            sources=sorted(m.path for m in members),
        )
    return entries, notes


# --- the registry overlay -------------------------------------------------------------


def read_overlay(path: Path) -> dict[str, Entry]:
    """The overlay's rows; a corrupted file is an error naming it, never silently replaced."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: corrupted TOML ({error}); fix or delete it") from None
    entries = {}
    for model_type, row in data.items():
        if not isinstance(row, dict):
            raise ConversionError(f"{path}: [{model_type}] is not a table")
        entries[model_type] = Entry(
            list(row.get("checkpoints", [])), row.get("task"), list(row.get("sources", []))
        )
    return entries


def merge_entries(old: dict[str, Entry], new: dict[str, Entry]) -> dict[str, Entry]:
    """Union of both runs' rows, so re-running (or widening --limit) never loses a row."""
    merged = dict(old)
    for model_type, entry in new.items():
        previous = merged.get(model_type)
        if previous is None:
            merged[model_type] = entry
            continue
        merged[model_type] = Entry(
            sorted(set(previous.checkpoints) | set(entry.checkpoints)),
            entry.task or previous.task,
            sorted(set(previous.sources) | set(entry.sources)),
        )
    return dict(sorted(merged.items()))


def _toml_value(value: object) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(item) for item in value) + "]"
    return json.dumps(value)


def render_overlay(entries: dict[str, Entry]) -> str:
    lines = [
        "# Written by scripts/convert_tests_bulk.py from legacy test files: do not edit by hand.",
        "# One table per model_type; merged into the registry (see docs/CONVERSION.md).",
    ]
    for model_type, entry in sorted(entries.items()):
        lines += ["", f"[{json.dumps(model_type)}]"]
        lines += [f"{key} = {_toml_value(v)}" for key, v in entry.as_toml_fields().items()]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> bool:
    """Write via a temporary file and os.replace; False when the content is unchanged."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


# --- the run ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=REPO_ROOT / "test")
    parser.add_argument("--output-root", type=Path, default=REPO_ROOT, help="the suite to write")
    parser.add_argument("--pattern", default=DEFAULT_PATTERN, help="file name glob")
    parser.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--limit", type=int, default=None, help="convert at most N files")
    parser.add_argument("--overwrite", action="store_true", help="replace improved files")
    parser.add_argument("--dry-run", action="store_true", help="write nothing but the report")
    parser.add_argument("--report", type=Path, default=None, help="JSON report path")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run(args: argparse.Namespace) -> dict[str, object]:
    """Convert everything the options select; returns the report written to --report."""
    if not args.source.exists():
        raise ConversionError(f"{args.source}: no such file or directory")
    if args.limit is not None and args.limit < 0:
        raise ConversionError("--limit must be 0 or more")
    files = discover(args.source, args.pattern, args.recursive)[: args.limit]
    resolver = Resolver()
    results = [
        convert_file(
            path, display_path(path, args.source, args.output_root), resolver, args.max_bytes
        )
        for path in _progress(files, args.no_progress)
    ]
    entries, notes = collect_entries(results)
    plans = plan_improved(entries, resolver)
    written = [] if args.dry_run else write_outputs(entries, plans, args)
    report = {
        "transformers": transformers_version(),
        "source": str(args.source),
        "dry_run": args.dry_run,
        "summary": summarize(results),
        "entries": {mt: e.as_toml_fields() for mt, e in entries.items()},
        "notes": notes,
        "written": written,
        "improved": [plan.as_report() for plan in plans],
        "files": [asdict(result) for result in results],
    }
    if args.report:
        write_atomically(args.report, json.dumps(report, indent=2) + "\n")
    return report


def _progress(files: list[Path], hidden: bool):
    from tqdm import tqdm

    return tqdm(files, desc="converting", unit="file", disable=hidden or None, file=sys.stderr)


def write_outputs(
    entries: dict[str, Entry], plans: list[ImprovedPlan], args: argparse.Namespace
) -> list[str]:
    """The overlay (merged, sorted, atomic) and the improved files; returns what changed."""
    overlay = args.output_root / OVERLAY
    merged = merge_entries(read_overlay(overlay), entries)
    written = []
    if entries and write_atomically(overlay, render_overlay(merged)):
        written.append(OVERLAY.as_posix())
    for plan in plans:
        if plan.text is not None and write_improved(plan, args.output_root, args.overwrite):
            written.append(plan.path)
    return written


def write_improved(plan: ImprovedPlan, output_root: Path, overwrite: bool) -> bool:
    """Write one rendered file; an existing file is kept unless --overwrite."""
    target = output_root / plan.path
    compile(plan.text, plan.path, "exec")  # a rendering bug must not land in the suite
    if target.exists() and not overwrite:
        plan.status, plan.reason = "exists", f"{plan.path} exists: kept (--overwrite replaces it)"
        return False
    changed = write_atomically(target, plan.text)
    plan.status = "written" if changed else "exists"
    return changed


def summarize(results: list[FileResult]) -> dict[str, int]:
    counts = Counter(result.outcome for result in results)
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES} | {"total": len(results)}


def print_summary(report: dict[str, object], stream: TextIO | None = None) -> None:
    """Counts per outcome, what was written, and the first files not converted, with reasons."""
    stream = stream or sys.stdout
    summary = report["summary"]
    entries = report["entries"]
    counts = ", ".join(f"{summary[o]} {o}" for o in OUTCOMES if summary[o]) or "none found"
    print(f"{summary['total']} files: {counts}; {len(entries)} model types", file=stream)
    for path in report["written"]:
        print(f"wrote {path}", file=stream)
    statuses = Counter(plan["status"] for plan in report["improved"])
    if statuses:
        shown = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        print(f"improved files: {shown} (reasons in the report)", file=stream)
    for note in report["notes"]:
        print(f"note: {note}", file=stream)
    not_converted = [f for f in report["files"] if f["outcome"] != "converted"]
    for result in not_converted[:SHOWN_PROBLEMS]:
        print(f"  {result['outcome']}: {result['path']}: {result['reason']}", file=stream)
    if len(not_converted) > SHOWN_PROBLEMS:
        hidden = len(not_converted) - SHOWN_PROBLEMS
        print(f"  ... and {hidden} more (every file and reason: --report PATH)", file=stream)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
