"""`--dist loadgroup` with a crashed xdist worker: the run ends, the crashed item is
failed once, every other item runs (test/common/plugins/crashed_workers.py).

With pytest-xdist 3.8.0's own group scheduler each of these runs hangs (the crashed
item is run again by the replacement worker, or the replacement waits forever).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # xdist workers die and are replaced

GROUPS = """
import os

import pytest

CRASH = {crash!r}


@pytest.mark.parametrize(
    "group, index",
    [pytest.param(g, i, marks=pytest.mark.xdist_group(g)) for g, i in {items!r}],
)
def test_item(group, index):
    if (group, index) in CRASH:
        os._exit(3)
"""


@pytest.mark.parametrize(
    ("items", "crash", "workers"),
    [
        # the crash in the middle of a group that other groups follow
        ([("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1)], [("a", 1)], 1),
        # the crash as the last item of the only group
        ([("a", 0), ("a", 1)], [("a", 1)], 1),
        # two groups of one item each crash, one group between them passes
        ([("a", 0), ("b", 0), ("c", 0)], [("a", 0), ("c", 0)], 1),
        ([("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)], [("a", 1)], 2),
    ],
)
def test_a_crashed_worker_fails_its_item_once_and_the_run_ends(
    pytester: pytest.Pytester, items: list, crash: list, workers: int
) -> None:
    pytester.makepyfile(test_groups=GROUPS.format(items=items, crash=crash))
    pytester.makeconftest('pytest_plugins = ["test.common.plugins.crashed_workers"]')
    result = pytester.runpytest(
        "-p", "xdist", "-n", str(workers), "--dist", "loadgroup", "--timeout", "120"
    )
    result.assert_outcomes(failed=len(crash), passed=len(items) - len(crash))
    for group, index in crash:
        result.stdout.fnmatch_lines([f"*crashed while running*test_item?{group}-{index}?'*"])
