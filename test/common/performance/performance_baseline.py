"""Performance baselines: the file test/.performance_baselines.json and its manager.

The file is meant to be read in code review: sorted keys, indented, one entry per
benchmark key (architecture x device x dtype x batch x sequence length, the
parametrization id of the benchmark test).  Each entry keeps the median, the
median absolute deviation, the minimum, the sample count, every sample (the rank
test needs them), when it was recorded, and the fingerprint of what makes two
timings comparable.  An entry may carry a ``"tolerance"`` override, which a
refresh keeps.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``).  A
file that does not parse is an error naming the file and the line and column,
and is never overwritten: fix it (or delete it) by hand.

The seed's interface names are kept: :meth:`PerformanceBaselineManager.save_baseline`
and :meth:`PerformanceBaselineManager.compare_with_baseline`.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from test.common.performance.measurement import relative_samples
from test.common.performance.regression import Status, Verdict, decide, fingerprint_difference

FORMAT_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parents[2] / ".performance_baselines.json"
REFRESH_HINT = "refresh the baseline with `nox -s baselines`"
#: Fields an entry must have for a comparison to be made.
REQUIRED_ENTRY_FIELDS = ("fingerprint", "median_ns", "samples_ns")


#: The end of every message about an unusable file.
KEPT = "fix or delete the file by hand; it is never overwritten while broken"


class BaselineFileError(Exception):
    """The baseline file exists but cannot be used as it is."""


@functools.cache
def _cpu_model() -> str:
    """The CPU's model name (a stable string, unlike its current clock speed)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def _accelerator_name(device: str) -> str:
    kind = device.split(":", 1)[0]
    if kind == "cpu":
        return ""
    import torch

    if kind == "cuda":
        return torch.cuda.get_device_name(device)
    if kind == "xpu":
        return torch.xpu.get_device_name(device)
    return f"{kind} ({platform.machine()})"


def machine_fingerprint(
    device: str, torch_threads: int | None = None, method: str = ""
) -> dict[str, Any]:
    """What must match for two timings on `device` to be comparable.

    Only stable facts: hardware models, core count, library versions, thread
    count, how samples were taken (`method`: best of k, relative to which reference).
    Never drifting ones (clock speed, load, free memory, hostname).
    """
    return {
        "accelerator": _accelerator_name(device),
        "method": method,
        "cores": os.cpu_count() or 0,
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "python": ".".join(platform.python_version_tuple()[:2]),
        "system": platform.system(),
        "torch": _version("torch"),
        "torch_threads": torch_threads,
        "transformers": _version("transformers"),
    }


def _json_error(path: Path, text: str, error: json.JSONDecodeError) -> BaselineFileError:
    # json counts lines by "\n" alone; splitlines() would also split on "\r", "\x0b",
    # ... and drops a final empty line, so an error there had no line to quote.
    lines = text.split("\n")
    line = lines[error.lineno - 1] if 0 < error.lineno <= len(lines) else ""
    return BaselineFileError(
        f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}): {line.strip()!r}; "
        f"{KEPT}."
    )


def _positive_numbers(values: Any) -> bool:
    """A list of finite numbers > 0 (bool is an int to Python, not a timing)."""
    return isinstance(values, list) and all(
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
        for value in values
    )


def _validate(path: Path, document: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("entries"), dict):
        raise BaselineFileError(f"{path}: top level must be an object with an 'entries' object")
    if document.get("format") != FORMAT_VERSION:
        raise BaselineFileError(
            f"{path}: 'format' is {document.get('format')!r}, this code reads {FORMAT_VERSION}"
        )
    for key, entry in document["entries"].items():
        where = f"{path}: entries[{key!r}]"
        if not isinstance(entry, dict):
            raise BaselineFileError(f"{where} must be an object")
        missing = [name for name in REQUIRED_ENTRY_FIELDS if name not in entry]
        if missing:
            raise BaselineFileError(f"{where} lacks {', '.join(missing)}")
        if not isinstance(entry["fingerprint"], dict):
            raise BaselineFileError(f"{where}.fingerprint must be an object")
        samples = entry["samples_ns"]
        if not _positive_numbers(samples) or not samples:
            raise BaselineFileError(f"{where}.samples_ns must be a list of positive numbers")
        reference = entry.get("reference_ns", [])
        if not _positive_numbers(reference) or len(reference) not in (0, len(samples)):
            raise BaselineFileError(
                f"{where}.reference_ns must be positive numbers matching samples_ns in length"
            )
        tolerance = entry.get("tolerance", 0)
        if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
            raise BaselineFileError(f"{where}.tolerance must be a number >= 0")
    return document["entries"]


def load_entries(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of the baseline file; {} when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineFileError(f"{path}: cannot be read ({error}); {KEPT}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _json_error(path, text, error) from None
    except RecursionError:  # json's decoder recurses once per nested [ or {
        raise BaselineFileError(f"{path}: nested too deeply for a baseline file; {KEPT}") from None
    return _validate(path, document)


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by `text` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp creates 0600; a committed file should keep the usual 0644-style mode.
        os.chmod(temporary, _default_file_mode())
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PerformanceBaselineManager:
    """Reads, compares against and (atomically) writes the baseline file."""

    def __init__(self, path: Path | str = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = load_entries(self.path)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def save_baseline(
        self,
        key: str,
        timing: Mapping[str, Any],
        fingerprint: Mapping[str, Any],
        memory: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record `timing` (TimingStats.as_record()) as the baseline of `key`, in memory.

        A per-entry ``tolerance`` already in the file is kept.  Call :meth:`write`
        to persist.
        """
        entry: dict[str, Any] = {
            **dict(timing),
            "fingerprint": dict(fingerprint),
            "recorded_at": _now(),
        }
        if memory is not None:
            entry["memory"] = dict(memory)
        previous = self.entries.get(key, {})
        if "tolerance" in previous:
            entry["tolerance"] = previous["tolerance"]
        self.entries[key] = entry
        return entry

    def tolerance_for(self, key: str, default: float) -> float:
        entry = self.entries.get(key) or {}
        return float(entry.get("tolerance", default))

    def compare_with_baseline(
        self,
        key: str,
        timing: Mapping[str, Any],
        fingerprint: Mapping[str, Any],
        tolerance: float,
    ) -> Verdict:
        """The verdict for `timing` against the stored baseline of `key`."""
        entry = self.entries.get(key)
        if entry is None:
            return Verdict(Status.MISSING_BASELINE, detail="record it with --update-baselines")
        difference = fingerprint_difference(entry["fingerprint"], fingerprint)
        if difference:
            return Verdict(Status.NO_COMPARABLE_BASELINE, detail=difference)
        verdict = decide(
            relative_samples(entry["samples_ns"], entry.get("reference_ns", ())),
            relative_samples(timing["samples_ns"], timing.get("reference_ns", ())),
            self.tolerance_for(key, tolerance),
        )
        if verdict.status is Status.IMPROVEMENT:
            return Verdict(verdict.status, verdict.ratio, verdict.p_value, REFRESH_HINT)
        return verdict

    def render(self) -> str:
        document = {"entries": self.entries, "format": FORMAT_VERSION}
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def write(self) -> None:
        """Write every entry to the file, atomically."""
        write_atomically(self.path, self.render())
