"""Draft the registry rows that record what a model run saw fail, keyed by its platform.

    pytest --run-model-tests --device cuda test/improved --junitxml=run.xml
    python scripts/observed_failures.py run.xml

prints, for every failed or erroring model item that its row does not already expect
to fail there, a TOML table to paste into test/common/models/architectures.toml (battery
items, `[arch-platform]` ids) or test/common/models/heads.toml (task heads): the check,
the platform from the test id, and the observed message as the reason to review.  An
item that failed in its setup on every check of a row is a build failure: one
`expected_failure` line for that row instead.  Nothing is written: observations are
reviewed before they are recorded (docs/ADDING_A_MODEL.md).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

ITEM_ID = re.compile(r"^test_(?P<check>\w+)\[(?P<row>[\w.-]+)-(?P<platform>[a-z]+)\]$")
MAX_REASON = 300


def _reason(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "failed without a message"
    first = re.sub(r'^failed on setup with "(.*)"?$', r"building it fails: \1", first)
    return first.rstrip('"')[:MAX_REASON].replace("\\", "\\\\").replace('"', "'")


def observed(junit: Path) -> dict[tuple[str, str], dict[str, tuple[str, str]]]:
    """(row, platform) -> {check: (kind, reason)} for every failed or erroring item."""
    found: dict[tuple[str, str], dict[str, tuple[str, str]]] = collections.defaultdict(dict)
    for case in ElementTree.parse(junit).iter("testcase"):
        match = ITEM_ID.match(case.get("name", ""))
        if match is None:
            continue
        for kind in ("failure", "error"):
            element = case.find(kind)
            if element is not None:
                key = (match["row"], match["platform"])
                found[key][match["check"]] = (kind, _reason(element.get("message") or ""))
    return found


def rows_toml(found: dict[tuple[str, str], dict[str, tuple[str, str]]]) -> str:
    """The TOML tables for `found`: one build failure, or one table of checks per row."""
    lines: list[str] = []
    for (row, platform), checks in sorted(found.items()):
        reasons = {reason for _, reason in checks.values()}
        errors = all(kind == "error" for kind, _ in checks.values())
        if errors and len(reasons) == 1 and reasons.pop().startswith("building it fails"):
            (reason,) = {reason for _, reason in checks.values()}
            lines += [f"[{row}]", f'expected_failure = "{reason}"', ""]
            continue
        passed = sorted(
            check for check, (_, reason) in checks.items() if reason.startswith("[XPASS")
        )
        lines += [f"# {row}: {check} passes on {platform}: remove its row" for check in passed]
        failed = {check: reason for check, (_, reason) in checks.items() if check not in passed}
        if failed:
            lines.append(f"[{row}.expected_failures.{platform}]")
            lines += [f'{check} = "{reason}"' for check, reason in sorted(failed.items())]
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", type=Path, help="the --junitxml file of a model run")
    options = parser.parse_args(argv)
    if not options.junit.is_file():
        parser.error(f"{options.junit} does not exist")
    try:
        found = observed(options.junit)
    except ElementTree.ParseError as error:
        parser.error(f"{options.junit} is not a JUnit XML file: {error}")
    print(rows_toml(found), end="")
    count = sum(len(checks) for checks in found.values())
    print(f"# {count} failing items in {len(found)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
