"""Measure the whole CPU model run (battery and task heads): wall time and peak memory.

    python scripts/measure_battery.py [--workers 2] [--output result.json] [-- PYTEST_ARGS]

Runs the architecture battery (test/improved/test_architecture_battery.py) and the task
heads (test/improved/test_task_heads.py) together with pytest-xdist and
samples the resident memory of the whole process tree (the controller and every
worker, summed) while it runs.  Targets on the 2-core development machine: under 15
minutes and under 6 GB.  This is a measurement, not a timed test: nothing fails on a
slow machine; the exit status is pytest's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATTERY = "test/improved/test_architecture_battery.py"
HEADS = "test/improved/test_task_heads.py"
SAMPLE_SECONDS = 0.5
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclasses.dataclass(frozen=True)
class Measurement:
    command: list[str]
    wall_seconds: float
    peak_rss_bytes: int
    returncode: int

    def describe(self) -> str:
        return (
            f"wall time {self.wall_seconds / 60:.1f} min ({self.wall_seconds:.0f} s), "
            f"peak RSS of the process tree {self.peak_rss_bytes / 2**30:.2f} GiB, "
            f"pytest exit status {self.returncode}"
        )


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0  # the process ended between listing and reading


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (Linux /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += _rss(current)
        pending.extend(_children(current))
    return total


def measure(command: Sequence[str], *, cwd: Path = ROOT) -> Measurement:
    """Run `command`, sampling its process tree's memory until it exits."""
    start = time.perf_counter()
    process = subprocess.Popen(list(command), cwd=cwd)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - start
    return Measurement(list(command), wall, peak, process.returncode)


def battery_command(workers: int, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        BATTERY,
        HEADS,
        "--run-model-tests",
        "--device=cpu",
        f"-n={workers}",
        "--dist=loadgroup",
        "-q",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (-n)")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON here")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    options = parser.parse_args(argv)
    result = measure(battery_command(options.workers, options.pytest_args))
    print(f"battery and heads: {result.describe()}")
    if options.output:
        write_atomically(options.output, json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
