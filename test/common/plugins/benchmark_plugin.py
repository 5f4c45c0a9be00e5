"""pytest plugin for benchmark-marked tests: record, compare, report, and write baselines.

A benchmark test measures with test/common/performance/measurement.py and hands the timing to
the ``baseline_recorder`` fixture.  The record travels to the controller through
test/common/plugins/worker_records.py; at session end the controller alone

- with ``--update-baselines``: stores every record and writes the baseline file
  ONCE, atomically (no entry of any worker lost, entries not re-measured kept);
- otherwise: compares each record with its baseline (test/common/performance/regression.py)
  and reports regressions as a warning in the terminal summary, or as a failure
  with ``--fail-on-regression``.  A missing baseline is a warning; a baseline of
  another fingerprint is "no comparable baseline"; a run whose records share no
  key at all with a non-empty baseline file fails (a renamed key would otherwise
  switch checking off without anyone noticing).

Timings need a quiet machine, so under pytest-xdist (``-n``) benchmark tests are
deselected, with one summary line.  The exception is ``--update-baselines``: then
they run, but every benchmark test holds an inter-process lock while it runs, so
two workers never measure at the same time (``nox -s baselines -- -n 2`` measures
serially and loses nothing).  See docs/PERFORMANCE_BASELINES.md.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from test.common.performance.measurement import REFERENCE_WORKLOAD_ID
from test.common.performance.performance_baseline import (
    BaselineFileError,
    PerformanceBaselineManager,
    machine_fingerprint,
)
from test.common.performance.regression import Status, Verdict
from test.common.plugins import worker_records

RECORD_KIND = "performance"
BASELINE_PATH_INI = "performance_baselines"
DEFAULT_BASELINE_PATH = "test/.performance_baselines.json"
FAIL_ON_REGRESSION = "--fail-on-regression"
DESELECTED_COUNT = "benchmarks_deselected"
SERIAL_HINT = "timings need a quiet machine; run them serially with `nox -s benchmarks`"

try:  # POSIX: serialise benchmark tests across xdist workers with flock.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass
class BenchmarkState:
    """What the controller learns during the run, for the summary."""

    manager: PerformanceBaselineManager | None = None
    deselected: int = 0
    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_STATE_KEY = pytest.StashKey[BenchmarkState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model tests")
    group.addoption(
        FAIL_ON_REGRESSION,
        action="store_true",
        default=False,
        help="fail the run when a benchmark regressed (default: warn in the summary)",
    )
    parser.addini(
        BASELINE_PATH_INI,
        help=f"baseline file, relative to the rootdir (default: {DEFAULT_BASELINE_PATH})",
        default=DEFAULT_BASELINE_PATH,
    )


def baseline_path(config: pytest.Config) -> Path:
    return config.rootpath / str(config.getini(BASELINE_PATH_INI))


def _updating(config: pytest.Config) -> bool:
    return bool(config.getoption("--update-baselines"))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE_KEY] = BenchmarkState()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Read the baseline file up front: a broken file stops the run at once."""
    config = session.config
    if worker_records.is_xdist_worker(config):
        return
    try:
        config.stash[_STATE_KEY].manager = PerformanceBaselineManager(baseline_path(config))
    except BaselineFileError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, deselect benchmarks unless baselines are being recorded."""
    if not worker_records.is_xdist_worker(config) or _updating(config):
        return
    benchmarks = [item for item in items if item.get_closest_marker("benchmark")]
    if not benchmarks:
        return
    items[:] = [item for item in items if not item.get_closest_marker("benchmark")]
    config.hook.pytest_deselected(items=benchmarks)
    config.workeroutput[DESELECTED_COUNT] = len(benchmarks)  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: every worker collected the same items, so take the largest count."""
    state = node.config.stash[_STATE_KEY]
    output = getattr(node, "workeroutput", None) or {}
    state.deselected = max(state.deselected, int(output.get(DESELECTED_COUNT, 0)))


@contextlib.contextmanager
def _exclusive(config: pytest.Config) -> Iterator[None]:
    """Hold the run's benchmark lock (xdist workers only; elsewhere a no-op)."""
    if fcntl is None or not worker_records.is_xdist_worker(config):
        yield
        return
    run_id = config.workerinput.get("testrunuid", "run")  # type: ignore[attr-defined]
    lock_path = Path(tempfile.gettempdir()) / f"pytest-benchmarks-{run_id}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    if item.get_closest_marker("benchmark") is None:
        return (yield)
    with _exclusive(item.config):
        return (yield)


def benchmark_key(item: pytest.Item) -> str:
    """A benchmark's baseline key: its parametrization id, e.g. 'bert-float32-b1-s8-cpu'."""
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else item.name


def _method(timing: Any) -> str:
    """How the samples were taken: best-of-k times are only comparable with the same k."""
    reference = REFERENCE_WORKLOAD_ID if timing.reference_ns else "no reference"
    return f"best of {timing.best_of}, relative to {reference}"


class BaselineRecorder:
    """Handed to benchmark tests: `record()` one timing per test."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item

    def record(
        self,
        timing: Any,
        *,
        memory: Any | None = None,
        torch_threads: int | None = None,
        key: str | None = None,
    ) -> str:
        """Send `timing` (a measurement.TimingStats) for comparison or recording."""
        record = {
            "key": key or benchmark_key(self.item),
            "timing": timing.as_record(),
            "fingerprint": machine_fingerprint(timing.device, torch_threads, _method(timing)),
            "memory": memory.as_record() if memory is not None else None,
        }
        worker_records.attach(self.item, RECORD_KIND, record)
        return record["key"]


@pytest.fixture
def baseline_recorder(request: pytest.FixtureRequest) -> BaselineRecorder:
    """Record a benchmark's timing; compared (or stored) once the session ends."""
    if request.node.get_closest_marker("benchmark") is None:
        pytest.fail(f"{request.node.nodeid} uses baseline_recorder but is not marked benchmark")
    return BaselineRecorder(request.node)


def _passed_records(config: pytest.Config) -> list[tuple[str, dict[str, Any]]]:
    return [
        (entry.nodeid, record)
        for entry, record in worker_records.collected(config, RECORD_KIND)
        if entry.outcome == "passed"
    ]


def _duplicate_keys(records: list[tuple[str, dict[str, Any]]]) -> list[str]:
    owners: dict[str, list[str]] = {}
    for nodeid, record in records:
        owners.setdefault(record["key"], []).append(nodeid)
    return [
        f"key {key!r} recorded by {len(nodes)} tests: {', '.join(nodes)}"
        for key, nodes in sorted(owners.items())
        if len(nodes) > 1
    ]


def _update(state: BenchmarkState, records: list[tuple[str, dict[str, Any]]]) -> None:
    manager = state.manager
    assert manager is not None
    measured = set()
    for _, record in records:
        manager.save_baseline(
            record["key"], record["timing"], record["fingerprint"], record["memory"]
        )
        measured.add(record["key"])
    manager.write()
    state.written = sorted(measured)
    state.stale = sorted(set(manager.entries) - measured)


def _compare(
    state: BenchmarkState, records: list[tuple[str, dict[str, Any]]], tolerance: float
) -> None:
    manager = state.manager
    assert manager is not None
    for _, record in records:
        verdict = manager.compare_with_baseline(
            record["key"], record["timing"], record["fingerprint"], tolerance
        )
        state.verdicts.append((record["key"], verdict))
    shared = {record["key"] for _, record in records} & set(manager.entries)
    if manager.entries and not shared:
        state.errors.append(
            f"no benchmark of this run has an entry in {manager.path} "
            f"({len(manager.entries)} entries there): keys renamed? Record them with "
            "--update-baselines (`nox -s baselines`)"
        )


def _fails(config: pytest.Config, state: BenchmarkState) -> bool:
    regressed = any(verdict.is_regression for _, verdict in state.verdicts)
    return bool(state.errors) or (regressed and bool(config.getoption(FAIL_ON_REGRESSION)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash[_STATE_KEY]
    if worker_records.is_xdist_worker(config) or state.manager is None:
        return
    records = _passed_records(config)
    if not records:
        return
    duplicates = _duplicate_keys(records)
    if duplicates:
        state.errors.extend(duplicates)  # never write a file from ambiguous records
    elif _updating(config):
        _update(state, records)
    else:
        _compare(state, records, float(config.getoption("--baseline-tolerance")))
    if _fails(config, state) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _write_verdicts(
    terminal: Any, verdicts: list[tuple[str, Verdict]], fail: bool, verbose: bool
) -> None:
    regressions = [(key, v) for key, v in verdicts if v.is_regression]
    if regressions:
        mode = "failing the run" if fail else f"warning only; {FAIL_ON_REGRESSION} fails the run"
        terminal.write_sep("!", f"PERFORMANCE REGRESSIONS: {len(regressions)} ({mode})", red=fail)
        for key, verdict in regressions:
            terminal.write_line(f"REGRESSION {key}: {verdict.describe()}", yellow=True, bold=True)
    for key, verdict in verdicts:
        if verdict.status in (Status.MISSING_BASELINE, Status.NO_COMPARABLE_BASELINE):
            terminal.write_line(f"warning: {key}: {verdict.describe()}", yellow=True)
        elif verdict.status is Status.IMPROVEMENT:
            terminal.write_line(f"improved {key}: {verdict.describe()}", green=True)
        elif verbose and not verdict.is_regression:
            terminal.write_line(f"{key}: {verdict.describe()}")
    counts: dict[str, int] = {}
    for _, verdict in verdicts:
        counts[verdict.status.value] = counts.get(verdict.status.value, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    terminal.write_line(f"benchmarks compared with baselines: {summary}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE_KEY, None)
    if state is None or worker_records.is_xdist_worker(config):
        return
    if state.verdicts or state.written or state.errors:
        terminalreporter.write_sep("-", "performance baselines")
    if state.deselected:
        terminalreporter.write_line(
            f"benchmarks deselected under -n: {state.deselected} ({SERIAL_HINT})"
        )
    if state.verdicts:
        verbose = config.get_verbosity() > 0
        _write_verdicts(terminalreporter, state.verdicts, _fails(config, state), verbose)
    if state.written and state.manager is not None:
        terminalreporter.write_line(
            f"baselines written: {len(state.written)} entries to {state.manager.path}"
            + (f"; {len(state.stale)} entries not re-measured were kept" if state.stale else "")
        )
    for error in state.errors:
        terminalreporter.write_line(f"ERROR (benchmarks): {error}", red=True, bold=True)
