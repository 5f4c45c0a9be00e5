"""`python -m test.common.results history|report`: read the results database.

python -m test.common.results history [--db PATH] [--run ID]
python -m test.common.results report [--db PATH] --output FILE
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from test.common.results import db

REPOSITORY = Path(__file__).resolve().parents[3]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m test.common.results", description=__doc__)
    parser.add_argument(
        "--db",
        type=Path,
        default=REPOSITORY / db.DEFAULT_PATH,
        help=f"the results database (default: {db.DEFAULT_PATH} in the repository)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    history = commands.add_parser("history", help="what changed since the previous comparable run")
    history.add_argument("--run", help="a run id (or its start); default: the latest complete run")
    report = commands.add_parser("report", help="write the self-contained HTML report")
    report.add_argument("--output", type=Path, required=True, help="the HTML file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        if options.command == "history":
            from test.common.results.history import history

            with db.connect(options.db) as connection:
                lines = history(connection, options.run).lines()
            print("\n".join(lines))
            return 0
        from test.common.results.report import write_report

        started = time.perf_counter()
        size = write_report(options.db, options.output)
        elapsed = time.perf_counter() - started
        print(f"wrote {options.output} ({size / 1e6:.1f} MB) in {elapsed:.1f} s")
        return 0
    except db.ResultsDatabaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
