"""Per-test records that reach the controller, with or without pytest-xdist.

A test (or a fixture) calls :func:`attach` to add a JSON-serialisable record of
some *kind* to its item.  The record is stored in ``item.user_properties``, which
pytest copies into every TestReport of the item; under xdist those reports are
serialised to the controller, so the controller's ``pytest_runtest_logreport``
sees every record of every worker.  No files, no shared state between workers.

The collector runs only where reports are final (the controller, or the single
process of a run without -n); a consumer plugin reads :func:`collected` at
``pytest_sessionfinish``.  Any plugin can define its own kind: the benchmark
plugin uses ``"performance"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

#: Prefix of the user_properties names that carry records (the rest are left alone).
PROPERTY_PREFIX = "worker_record:"


@dataclass
class ItemRecords:
    """What one test item handed over: its records by kind, and its call outcome."""

    nodeid: str
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: "passed", "failed" or "skipped" once the call phase reported; None before.
    outcome: str | None = None


class RecordCollector:
    """Gathers records from reports on the process that sees the final reports."""

    def __init__(self) -> None:
        self.by_nodeid: dict[str, ItemRecords] = {}

    def add_report(self, report: pytest.TestReport) -> None:
        found: dict[str, list[dict[str, Any]]] = {}
        for name, value in report.user_properties:
            if isinstance(name, str) and name.startswith(PROPERTY_PREFIX):
                kind = name[len(PROPERTY_PREFIX) :]
                found.setdefault(kind, []).append(json.loads(value))
        entry = self.by_nodeid.get(report.nodeid)
        if entry is None and not found:
            return
        entry = entry or self.by_nodeid.setdefault(report.nodeid, ItemRecords(report.nodeid))
        # Every phase's report carries all records attached so far, so the
        # latest report holds a superset: replace, never append (no duplicates).
        if found:
            entry.records = found
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            entry.outcome = report.outcome

    def of_kind(self, kind: str) -> list[tuple[ItemRecords, dict[str, Any]]]:
        """Every record of `kind`, with the test that produced it, in report order."""
        return [
            (entry, record)
            for entry in self.by_nodeid.values()
            for record in entry.records.get(kind, [])
        ]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.add_report(report)


_COLLECTOR_KEY = pytest.StashKey[RecordCollector]()


def attach(node: pytest.Item, kind: str, record: Mapping[str, Any]) -> None:
    """Hand `record` (JSON-serialisable) of `kind` over to the controller."""
    if not kind or ":" in kind:
        raise ValueError(f"record kind must be a non-empty name without ':', got {kind!r}")
    node.user_properties.append((PROPERTY_PREFIX + kind, json.dumps(dict(record))))


def attach_to_report(report: pytest.TestReport, kind: str, record: Mapping[str, Any]) -> None:
    """Add a record to a report made without the item (xdist's report of a crashed
    worker's item, on the controller); a hook that runs before the collector's."""
    report.user_properties = [
        *report.user_properties,
        (PROPERTY_PREFIX + kind, json.dumps(dict(record))),
    ]


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def collected(config: pytest.Config, kind: str) -> list[tuple[ItemRecords, dict[str, Any]]]:
    """Records of `kind` gathered so far; empty on an xdist worker (it only sends)."""
    collector = config.stash.get(_COLLECTOR_KEY, None)
    return collector.of_kind(kind) if collector else []


def pytest_configure(config: pytest.Config) -> None:
    if is_xdist_worker(config):
        return
    collector = RecordCollector()
    config.stash[_COLLECTOR_KEY] = collector
    config.pluginmanager.register(collector, "worker-records-collector")
