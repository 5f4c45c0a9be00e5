"""Compare two folders of golden outputs: which architectures moved, and by how much.

    python scripts/compare_goldens.py BEFORE_DIR AFTER_DIR [--top 20]

Reads both folders as the battery does (test/common/correctness/goldens.py; a corrupt file is
an error) and prints every architecture's movement from BEFORE to AFTER, largest
first, then the count above the CPU tolerance.  Used to measure the drift between
thread counts or machines, and to review a refresh before committing it
(docs/GOLDENS.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from test.common.correctness import goldens  # noqa: E402


def compare(before: Path, after: Path) -> tuple[list[tuple[str, goldens.Movement]], list[str]]:
    """(movements of the architectures in both, largest first; those in only one)."""
    old, new = goldens.read_all(before), goldens.read_all(after)
    moves = [(name, goldens.movement(old[name], new[name])) for name in sorted(set(old) & set(new))]
    moves.sort(key=lambda pair: pair[1].distance, reverse=True)
    return moves, sorted(set(old) ^ set(new))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--top", type=int, default=20, help="how many movements to print")
    options = parser.parse_args(argv)
    try:
        moves, unmatched = compare(options.before, options.after)
    except goldens.GoldenFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, move in moves[: options.top]:
        print(f"{move.distance:10.3g}  {name}: {move.describe()}")
    identical = sum(1 for _, move in moves if move.distance == 0.0)
    above = sum(1 for _, move in moves if move.distance > goldens.CPU_TOLERANCE)
    largest = moves[0][1].distance if moves else 0.0
    print(
        f"{len(moves)} architectures in both: {identical} identical, largest movement "
        f"{largest:.3g}, {above} above the CPU tolerance {goldens.CPU_TOLERANCE:g}; "
        f"{len(unmatched)} in only one folder"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
