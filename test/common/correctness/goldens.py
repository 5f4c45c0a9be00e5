"""Golden outputs: what each tiny architecture computes, pinned in small data files.

A golden is a *fingerprint* of an architecture's primary output on the battery's
fixed inputs (keyed weights, test/common/models/weights.py; fixed inputs,
test/common/models/model_inputs.py), small enough to review in a diff yet sensitive to a
change in any part of the output:

- `shape` and `dtype`;
- `norm`: the L2 norm of the whole output;
- `head` and `tail`: the first and last 4 values (flattened, C order);
- `axes`: for every axis, the norms of up to 8 contiguous slices along it (so a
  change is located: "axis 1, positions 4-5");
- `projections`: 4 inner products with fixed pseudo-random unit vectors, which move
  when any element moves (a permutation or a sign flip keeps the norms).

Integer outputs (a codec's codes) store `sha256` of the values instead: they match
exactly or not at all.

Every statistic is compared as a *relative* movement: norms and projections divided
by the stored norm, head and tail values divided by the stored root mean square.
The largest movement is the output's distance from its golden; a check fails above
its tolerance (`CPU_TOLERANCE` in float32 on the CPU, `DEVICE_TOLERANCE` elsewhere;
docs/GOLDENS.md says how they were measured).

The files (`test/common/data/goldens/<modality>.json`) hold one architecture per
line, sorted, so a refresh's diff shows one line per architecture that moved.  They
are read strictly: a file that does not parse, or an entry that misses a field, is a
`GoldenFileError` naming the file, and nothing is written over it.  Writes are
atomic.  `nox -s goldens` refreshes them (test/common/plugins/golden_plugin.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from test.common.models.weights import keyed_uniform

FORMAT_VERSION = 1
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
GOLDENS_DIR = DATA_DIR / "goldens"
EDGE_VALUES = 4
GROUPS_PER_AXIS = 8
PROJECTIONS = 4
SIGNIFICANT_DIGITS = 7
#: float32 on the CPU: re-runs are bit-identical; 1, 2 and 4 threads drift by at most
#: ~1e-6 (docs/GOLDENS.md).  A fault a release could ship moves outputs by >1e-3.
CPU_TOLERANCE = 1e-4
#: Another device against the CPU's golden (TF32 matmuls, other kernels): as the
#: battery's device tolerance, with room for values compared against the RMS.
DEVICE_TOLERANCE = 1e-2
ENTRY_FIELDS = frozenset({"shape", "dtype", "norm", "head", "tail", "axes", "projections"})
INTEGER_FIELDS = frozenset({"shape", "dtype", "sha256", "head", "tail"})


class GoldenFileError(Exception):
    """A goldens file exists but cannot be used as it is (it is never overwritten)."""


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _groups(length: int) -> list[tuple[int, int]]:
    """Up to GROUPS_PER_AXIS contiguous [start, stop) ranges covering 0..length."""
    count = min(length, GROUPS_PER_AXIS)
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def _projection_vector(index: int, shape: tuple[int, ...]) -> Any:
    import numpy as np

    vector = keyed_uniform(f"golden-projection-{index}", shape).reshape(-1)
    return vector / max(float(np.linalg.norm(vector)), 1e-300)


def as_array(output: Any) -> tuple[Any, str]:
    """A torch tensor (any device, any dtype) or an array-like: (NumPy array, dtype name)."""
    import numpy as np

    if hasattr(output, "detach"):
        values = output.detach().cpu()
        if values.is_floating_point():
            return values.double().numpy(), str(values.dtype).removeprefix("torch.")
        return values.long().numpy(), str(values.dtype).removeprefix("torch.")
    array = np.asarray(output)
    return array, str(array.dtype)


def fingerprint(output: Any) -> dict[str, Any]:
    """The golden record of `output` (a torch tensor, or a NumPy array)."""
    import numpy as np

    array, dtype = as_array(output)
    shape = list(array.shape)
    flat = array.reshape(-1)
    if not np.issubdtype(array.dtype, np.floating):
        return {
            "shape": shape,
            "dtype": dtype,
            "sha256": hashlib.sha256(flat.astype("<i8").tobytes()).hexdigest(),
            "head": [int(v) for v in flat[:EDGE_VALUES]],
            "tail": [int(v) for v in flat[-EDGE_VALUES:]] if flat.size else [],
        }
    flat = flat.astype(np.float64)
    axes = []
    for axis, length in enumerate(array.shape):
        moved = np.moveaxis(array.astype(np.float64), axis, 0).reshape(length, -1)
        axes.append([_round(float(np.linalg.norm(moved[a:b]))) for a, b in _groups(length)])
    return {
        "shape": shape,
        "dtype": dtype,
        "norm": _round(float(np.linalg.norm(flat))),
        "head": [_round(float(v)) for v in flat[:EDGE_VALUES]],
        "tail": [_round(float(v)) for v in flat[-EDGE_VALUES:]] if flat.size else [],
        "axes": axes,
        "projections": [
            _round(float(flat @ _projection_vector(k, tuple(shape)))) for k in range(PROJECTIONS)
        ],
    }


@dataclasses.dataclass(frozen=True)
class Movement:
    """How far an output moved from its golden: `distance` (relative), and where."""

    distance: float
    where: str
    detail: str = ""

    def describe(self) -> str:
        if math.isinf(self.distance):
            return f"{self.where}: {self.detail}"
        if self.distance == 0.0:
            return "unchanged"
        text = f"moved by {self.distance:.3g} (relative), largest at {self.where}"
        return text + (f": {self.detail}" if self.detail else "")


def _slice_name(axis: int, bounds: tuple[int, int]) -> str:
    start, stop = bounds
    span = f"{start}" if stop - start == 1 else f"{start}-{stop - 1}"
    return f"axis {axis} index {span}"


def _float_movement(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> Movement:
    norm = max(abs(float(expected["norm"])), 1e-30)
    count = max(1, math.prod(expected["shape"]))
    rms = norm / math.sqrt(count)
    candidates: list[Movement] = []

    def add(stored: float, now: float, scale: float, where: str) -> None:
        distance = abs(now - stored) / scale
        if math.isnan(now) or math.isnan(stored):
            distance = math.inf
        candidates.append(Movement(distance, where, f"{stored:.7g} -> {now:.7g}"))

    add(expected["norm"], actual["norm"], norm, "the norm of the whole output")
    for part in ("head", "tail"):
        for index, (stored, now) in enumerate(zip(expected[part], actual[part], strict=True)):
            add(stored, now, rms, f"{part} value {index}")
    for axis, (stored_axis, now_axis) in enumerate(
        zip(expected["axes"], actual["axes"], strict=True)
    ):
        groups = _groups(expected["shape"][axis])
        for bounds, stored, now in zip(groups, stored_axis, now_axis, strict=True):
            add(stored, now, norm, f"the norm of {_slice_name(axis, bounds)}")
    for index, (stored, now) in enumerate(
        zip(expected["projections"], actual["projections"], strict=True)
    ):
        add(stored, now, norm, f"projection {index}")
    return max(candidates, key=lambda movement: movement.distance)


def movement(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> Movement:
    """The distance of `actual` (a fingerprint) from `expected` (a stored golden)."""
    if list(expected["shape"]) != list(actual["shape"]):
        return Movement(math.inf, "shape", f"{expected['shape']} -> {actual['shape']}")
    if expected["dtype"] != actual["dtype"]:
        return Movement(math.inf, "dtype", f"{expected['dtype']} -> {actual['dtype']}")
    if "sha256" in expected or "sha256" in actual:
        same = expected.get("sha256") == actual.get("sha256")
        detail = f"head {expected['head']} -> {actual['head']}"
        return Movement(0.0, "values") if same else Movement(math.inf, "integer values", detail)
    return _float_movement(expected, actual)


# -- the files ---------------------------------------------------------------------------


def path_of(modality: str, directory: Path = GOLDENS_DIR) -> Path:
    return directory / f"{modality}.json"


def _check_entry(path: Path, name: str, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise GoldenFileError(f"{path}: golden of {name!r} must be an object, got {entry!r}")
    fields = INTEGER_FIELDS if "sha256" in entry else ENTRY_FIELDS
    missing = sorted(fields - set(entry))
    if missing:
        raise GoldenFileError(f"{path}: golden of {name!r} lacks {missing}")
    if not isinstance(entry["shape"], list) or len(entry.get("axes", entry["shape"])) != len(
        entry["shape"]
    ):
        raise GoldenFileError(f"{path}: golden of {name!r} has axes that do not match its shape")


def read_file(path: Path) -> dict[str, dict[str, Any]]:
    """The goldens of one file, by architecture; {} when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise GoldenFileError(f"{path}: cannot be read: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise GoldenFileError(
            f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "fix or delete it by hand, it is never overwritten"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise GoldenFileError(f"{path}: not a goldens file of format {FORMAT_VERSION}")
    architectures = data.get("architectures")
    if not isinstance(architectures, dict):
        raise GoldenFileError(f"{path}: 'architectures' must be an object")
    for name, entry in architectures.items():
        _check_entry(path, name, entry)
    return architectures


def read_all(directory: Path = GOLDENS_DIR) -> dict[str, dict[str, Any]]:
    """Every golden of every file in `directory`, by architecture."""
    goldens: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        for name, entry in read_file(path).items():
            if name in goldens:
                raise GoldenFileError(f"{path}: {name!r} has a golden in another file too")
            goldens[name] = entry
    return goldens


def render(entries: Mapping[str, Mapping[str, Any]], recorded_with: Mapping[str, str]) -> str:
    """The file's text: a header, then one sorted line per architecture."""
    lines = [
        "{",
        f'  "format": {FORMAT_VERSION},',
        f'  "recorded_with": {json.dumps(dict(sorted(recorded_with.items())))},',
        '  "architectures": {',
    ]
    names = sorted(entries)
    for index, name in enumerate(names):
        comma = "," if index < len(names) - 1 else ""
        lines.append(f"    {json.dumps(name)}: {json.dumps(entries[name], sort_keys=True)}{comma}")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8"
    ) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)  # a data file of the repository, not a private temp file
    os.replace(handle.name, path)


# -- refreshing --------------------------------------------------------------------------


@dataclasses.dataclass
class Refresh:
    """What a recording run changes: per architecture, added / changed / unchanged."""

    added: list[str] = dataclasses.field(default_factory=list)
    changed: list[tuple[str, Movement]] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(default_factory=list)
    files: list[Path] = dataclasses.field(default_factory=list)

    def table(self) -> list[str]:
        rows = [
            f"goldens: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed"
            + (f", {len(self.kept)} not recorded in this run (kept)" if self.kept else "")
        ]
        rows += [f"  added      {name}" for name in self.added]
        rows += [f"  changed    {name}: {move.describe()}" for name, move in self.changed]
        rows += [f"  removed    {name}" for name in self.removed]
        return rows


def refresh(
    recorded: Mapping[str, Mapping[str, Any]],
    modality_of: Mapping[str, str],
    recorded_with: Mapping[str, str],
    *,
    tolerance: float = CPU_TOLERANCE,
    directory: Path = GOLDENS_DIR,
) -> Refresh:
    """Merge this run's fingerprints (`recorded`) into the files and write them.

    An entry within `tolerance` of its golden is left as it was (no diff noise); an
    entry of an architecture that is no longer registered (absent from
    `modality_of`) is removed; entries not recorded in this run are kept.  Every
    file is read before any is written, so a corrupt one stops the refresh whole."""
    old = read_all(directory)  # raises on a corrupt file, before anything is written
    result = Refresh()
    merged: dict[str, dict[str, Any]] = {}
    for name in sorted(set(old) | set(recorded)):
        if name not in modality_of:
            result.removed.append(name)
        elif name not in recorded:
            merged[name] = old[name]
            result.kept.append(name)
        elif name not in old:
            merged[name] = dict(recorded[name])
            result.added.append(name)
        elif (move := movement(old[name], recorded[name])).distance > tolerance:
            merged[name] = dict(recorded[name])
            result.changed.append((name, move))
        else:
            merged[name] = old[name]
            result.unchanged.append(name)
    for modality, names in sorted(_by_modality(merged, modality_of).items()):
        path = path_of(modality, directory)
        write_atomically(path, render({n: merged[n] for n in names}, recorded_with))
        result.files.append(path)
    for stale in sorted(set(directory.glob("*.json")) - set(result.files)):
        write_atomically(stale, render({}, recorded_with))
        result.files.append(stale)
    return result


def _by_modality(names: Iterable[str], modality_of: Mapping[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(modality_of[name], []).append(name)
    return groups
