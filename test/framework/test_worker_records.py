"""Per-test records handed from xdist workers to the controller
(test/common/plugins/worker_records.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from test.common.plugins import worker_records
from test.common.plugins.worker_records import PROPERTY_PREFIX, RecordCollector

#: A consumer of a new record kind, as a future plugin would write one.
CONSUMER = """
from test.common.plugins import worker_records

def pytest_terminal_summary(terminalreporter, config):
    records = worker_records.collected(config, "demo")
    if records:
        values = sorted(record["value"] for _, record in records)
        outcomes = ",".join(sorted({entry.outcome for entry, _ in records}))
        terminalreporter.write_line(f"demo records: {len(values)} sum={sum(values)} {outcomes}")
"""

PRODUCER = """
import pytest

from test.common.plugins import worker_records

@pytest.mark.parametrize("value", range(50))
def test_produces(value, request):
    worker_records.attach(request.node, "demo", {"value": value})
    worker_records.attach(request.node, "demo", {"value": 1000})

def test_no_records():
    assert True
"""


def report(when: str, outcome: str, properties: list) -> SimpleNamespace:
    return SimpleNamespace(nodeid="t.py::x", when=when, outcome=outcome, user_properties=properties)


def prop(kind: str, value: int) -> tuple[str, str]:
    return (PROPERTY_PREFIX + kind, json.dumps({"value": value}))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2", "-p", "xdist"]], ids=["serial", "xdist"])
def test_every_record_reaches_the_controller_once(
    suite_pytester: pytest.Pytester, workers: list[str]
) -> None:
    suite_pytester.makepyfile(demo_consumer=CONSUMER, test_producer=PRODUCER)
    suite_pytester.syspathinsert()
    result = suite_pytester.runpytest("-p", "demo_consumer", *workers)
    result.assert_outcomes(passed=51)
    total = sum(range(50)) + 50 * 1000
    result.stdout.fnmatch_lines([f"demo records: 100 sum={total} passed"])


def test_later_reports_replace_earlier_ones_without_duplicates() -> None:
    collector = RecordCollector()
    collector.add_report(report("setup", "passed", []))
    collector.add_report(report("call", "failed", [prop("demo", 1)]))
    collector.add_report(report("teardown", "passed", [prop("demo", 1), prop("demo", 2)]))
    records = collector.of_kind("demo")
    assert [record["value"] for _, record in records] == [1, 2]
    assert {entry.outcome for entry, _ in records} == {"failed"}
    assert collector.of_kind("other") == []


def test_a_setup_error_is_the_outcome() -> None:
    collector = RecordCollector()
    collector.add_report(report("setup", "failed", [prop("demo", 1)]))
    assert collector.of_kind("demo")[0][0].outcome == "failed"


def test_other_user_properties_are_left_alone() -> None:
    collector = RecordCollector()
    collector.add_report(report("call", "passed", [("architecture", "bert")]))
    assert collector.by_nodeid == {}


@pytest.mark.parametrize("kind", ["", "a:b"])
def test_a_kind_must_be_a_plain_name(kind: str) -> None:
    with pytest.raises(ValueError, match="record kind"):
        worker_records.attach(SimpleNamespace(user_properties=[]), kind, {})  # type: ignore[arg-type]
