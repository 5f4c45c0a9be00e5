"""Expected status per backend and architecture, like PyTorch's ci_expected_accuracy.

One CSV file per backend, test/common/data/backends/<backend>.csv, sorted by
architecture:

    architecture,status,difference,reason
    bert,pass,9.5e-07,
    mamba,fail,,build: Unsupported: ...

`status` is pass, fail, "not reached" (the backend it is built from built nothing) or
crash (the process running it died: an xdist worker crashed; such an item is not run
again, it would end a run without xdist: delete the row to retry it);
`difference` is the measured max |backend - eager| (1 - cosine for int8), two
significant digits so that a rewrite changes a line only when the result changed.
A missing-package skip is never written.  An architecture without a row is expected
to pass.  A run fails on a new failure and on an unexpected pass, and says how to
update: `nox -s backend-<name> -- --update-expectations` rewrites the rows of the
architectures that ran (the others are kept) and prints what changed.

`python -m test.common.backends.expectations` prints each file's statuses and the
quantiles of its measured differences (docs/BACKENDS.md quotes them).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "backends"
COLUMNS = ("architecture", "status", "difference", "reason")
STATUSES = ("pass", "fail", "not reached", "crash")
#: The status of an item whose process died running it (recorded from xdist's report).
CRASH = "crash"


class CorruptExpectations(ValueError):
    """An expectation file that cannot be read; it is reported and kept, never replaced."""


@dataclasses.dataclass(frozen=True)
class Expectation:
    """One row: what a backend is expected to do with one architecture."""

    status: str
    reason: str = ""
    difference: str = ""


def path_of(backend: str, directory: Path = DATA_DIR) -> Path:
    return directory / f"{backend}.csv"


def load(backend: str, directory: Path = DATA_DIR) -> dict[str, Expectation]:
    """The backend's expectations by architecture; empty when it has no file yet."""
    path = path_of(backend, directory)
    if not path.exists():
        return {}
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptExpectations(f"{path}: {error}; fix or delete it") from error


def parse(text: str) -> dict[str, Expectation]:
    """Rows of an expectation file; a wrong header, status or duplicate is an error."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if tuple(header or ()) != COLUMNS:
        raise ValueError(f"header {header!r}, expected {','.join(COLUMNS)}")
    rows: dict[str, Expectation] = {}
    for number, row in enumerate(reader, start=2):
        if len(row) != len(COLUMNS):
            raise ValueError(f"line {number}: {len(row)} fields, expected {len(COLUMNS)}")
        architecture, status, difference, reason = row
        if status not in STATUSES:
            raise ValueError(f"line {number}: status {status!r} is not one of {STATUSES}")
        if architecture in rows:
            raise ValueError(f"line {number}: {architecture} appears twice")
        rows[architecture] = Expectation(status, reason, difference)
    return rows


def render(rows: Mapping[str, Expectation]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for architecture in sorted(rows):
        row = rows[architecture]
        writer.writerow((architecture, row.status, row.difference, row.reason))
    return buffer.getvalue()


def format_difference(difference: float | None) -> str:
    return "" if difference is None else f"{difference:.2g}"


def update_command(backend: str, architecture: str | None = None) -> str:
    selection = f" -k {architecture}-{backend}" if architecture else ""
    return f"nox -s backend-{backend} -- --update-expectations{selection}"


def judge(expected: Expectation | None, status: str, reason: str) -> tuple[str, str]:
    """(outcome, message) of an observation against its expectation.

    outcome is "pass" (as expected, passing), "xfail" (as expected, not passing),
    "new failure" or "unexpected pass" (the run fails) or "changed" (fail <-> not
    reached, the run fails too: the reason moved)."""
    expected_status = expected.status if expected else "pass"
    if status == expected_status:
        return ("pass", "") if status == "pass" else ("xfail", f"{status} (expected): {reason}")
    if status == "pass":
        return "unexpected pass", f"passes, but is expected to be {expected_status}"
    if expected_status == "pass":
        return "new failure", f"{status}: {reason}"
    return "changed", f"{status} ({reason}), but is expected to be {expected_status}"


def merge(
    current: Mapping[str, Expectation], observed: Mapping[str, Expectation]
) -> tuple[dict[str, Expectation], list[str]]:
    """The rows after an update and one line per row that changed status or appeared."""
    merged = dict(current)
    changes = []
    for architecture in sorted(observed):
        new, old = observed[architecture], current.get(architecture)
        merged[architecture] = new
        if old is None:
            changes.append(f"  + {architecture}: {new.status}")
        elif old.status != new.status or old.reason != new.reason:
            changes.append(
                f"  ~ {architecture}: {old.status} -> {new.status} {new.reason}".rstrip()
            )
    return merged, changes


def write(backend: str, rows: Mapping[str, Expectation], directory: Path = DATA_DIR) -> bool:
    """Write the backend's file atomically; False when its content would not change."""
    path = path_of(backend, directory)
    text = render(rows)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{backend}.", suffix=".csv", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
        stream.write(text)
    os.replace(temporary, path)
    return True


QUANTILES = (0.5, 0.9, 0.99, 1.0)


def difference_quantiles(rows: Mapping[str, Expectation]) -> tuple[int, list[float]]:
    """(how many passing rows have a difference, its quantiles QUANTILES by nearest rank)."""
    values = sorted(
        float(r.difference) for r in rows.values() if r.status == "pass" and r.difference
    )
    if not values:
        return 0, []
    ranks = [min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1)) for q in QUANTILES]
    return len(values), [values[rank] for rank in ranks]


def describe(directory: Path = DATA_DIR) -> list[str]:
    """One line per expectation file: statuses, the quantiles of the passes' differences
    and the differences of the failed comparisons (where the tolerance must fall between)."""
    lines = []
    for path in sorted(directory.glob("*.csv")):
        rows = load(path.stem, directory)
        counts = {status: sum(row.status == status for row in rows.values()) for status in STATUSES}
        statuses = ", ".join(
            f"{count} {status}" for status, count in counts.items() if count or status != CRASH
        )
        count, values = difference_quantiles(rows)
        spread = ", ".join(f"q{q:g} {v:.2g}" for q, v in zip(QUANTILES, values, strict=True))
        failed = sorted(
            (float(row.difference), name)
            for name, row in rows.items()
            if row.status == "fail" and row.difference
        )
        lines.append(
            f"{path.stem}: {len(rows)} architectures ({statuses}); "
            f"difference over {count} passes: {spread or '-'}; failed comparisons: "
            + (", ".join(f"{name} {value:.2g}" for value, name in failed) or "-")
        )
    return lines


def update(
    backend: str, observed: Iterable[tuple[str, Expectation]], directory: Path = DATA_DIR
) -> list[str]:
    """Merge the observed rows into the backend's file; the lines saying what changed.

    A corrupt file raises CorruptExpectations and is left as it is."""
    merged, changes = merge(load(backend, directory), dict(observed))
    written = write(backend, merged, directory)
    return changes if written else []


if __name__ == "__main__":
    print("\n".join(describe()))
