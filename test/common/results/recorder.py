"""Plugin: record every model run in the results database (test/common/results/db.py).

A run is recorded when model tests run (`--run-model-tests`) or `--results-db PATH`
is given; `--no-results-db` switches it off.  What is recorded:

- the run, inserted as *incomplete* when the session starts and marked complete
  (with pytest's exit status) when it ends, so a run that crashes half-way stays
  marked incomplete; outcomes are written every ``FLUSH_INTERVAL_S`` as well, so
  what ran before a crash is kept;
- one outcome per test: its check (the test function without ``test_``), its
  architecture and model class (the parametrized ``architecture`` / ``model_type``
  and ``model_class`` arguments, whatever the module), platform, modality, the
  weights it used, the outcome and the xfail, skip or failure reason in one line;
- per-architecture measurements that the battery hands over with
  :func:`measure_forward` (forward latency over a few calls on the subject already
  built, peak memory of one call, parameter count);
- per backend item (`test_backend[bert-onnx]`), the observation that
  test/common/plugins/backend_report.py's ``check_observation`` hands over: the
  backend's status, its measured difference from eager and its latency relative to
  eager.

Under pytest-xdist the controller writes: item facts travel in user_properties,
measurements and backend observations through test/common/plugins/worker_records.py,
so workers never open the database.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform as _platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from test.common import hardware
from test.common.plugins import gating, worker_records
from test.common.plugins.battery_report import phase_outcome
from test.common.plugins.model_source import weights_of
from test.common.results import db

RECORD_KIND = "measurement"
ITEM_PROPERTY = "results_item"
FLUSH_INTERVAL_S = 30.0
MODALITY_MARKERS = ("text", "vision", "audio", "multimodal", "time_series")
VERSIONED = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pytest", "duckdb")
REASON_LENGTH = 300


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model tests")
    group.addoption(
        "--results-db",
        metavar="PATH",
        default=None,
        help=f"record this run in the results database PATH (default for model runs: "
        f"{db.DEFAULT_PATH} under the repository; docs/RESULTS.md)",
    )
    group.addoption(
        "--no-results-db",
        action="store_true",
        default=False,
        help="do not record this run in the results database",
    )


def _duckdb_installed() -> bool:
    return importlib.util.find_spec("duckdb") is not None


def recording(config: pytest.Config) -> bool:
    """Asked for with --results-db (duckdb missing is then an error), or a model run
    where duckdb is installed (missing, one summary line says the run was not recorded)."""
    if config.getoption("--no-results-db") or config.option.collectonly:
        return False  # a --collect-only run runs nothing: no run to record
    if config.getoption("--results-db"):
        return True
    return bool(config.getoption("--run-model-tests")) and _duckdb_installed()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    model_run = config.getoption("--run-model-tests") and not config.getoption("--no-results-db")
    if model_run and not config.option.collectonly and not _duckdb_installed():
        terminalreporter.write_line(
            "results: not recorded: duckdb is not installed (pip install -c constraints.txt duckdb)"
        )


def database_path(config: pytest.Config) -> Path:
    return config.rootpath / (config.getoption("--results-db") or db.DEFAULT_PATH)


# ------------------------------------------------------------------ what a test is


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "__name__", None) or str(value)


def item_facts(item: pytest.Item) -> dict[str, Any]:
    """What an outcome row says about the test, read from its parameters and markers."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    markers = {marker.name for marker in item.iter_markers()}
    return {
        "module": item.nodeid.split("::")[0],
        "check_name": getattr(item, "originalname", item.name).removeprefix("test_"),
        "architecture": _name(params.get("architecture", params.get("model_type"))),
        "model_class": _name(params.get("model_class")),
        "platform": gating.platform_of(item),
        "modality": next((m for m in MODALITY_MARKERS if m in markers), None),
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not recording(config):
        return
    for item in items:
        item.user_properties.append((ITEM_PROPERTY, json.dumps(item_facts(item))))


def one_line_reason(report: Any) -> str:
    """The xfail, skip or failure reason of a report phase, on one line."""
    if getattr(report, "wasxfail", ""):
        text = report.wasxfail
    elif report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
        text = str(crash.message) if crash is not None else str(report.longrepr or "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else "")[:REASON_LENGTH]


def _verdict(phases: dict[str, Any]) -> tuple[str, Any]:
    """(outcome, the report that decided it) from an item's setup/call/teardown."""
    setup, call, teardown = (phases.get(when) for when in ("setup", "call", "teardown"))
    if setup is not None and setup.failed:
        return "error", setup
    crashed = next((report for report in phases.values() if report.failed), None)
    if call is None and crashed is not None:  # an xdist worker died: when == "???"
        return "failed", crashed
    if call is None:
        decisive = setup if setup is not None else teardown
        return phase_outcome(decisive) or "skipped", decisive
    outcome = phase_outcome(call) or "passed"
    if teardown is not None and teardown.failed and outcome == "passed":
        return "error", teardown
    return outcome, call


def outcome_row(phases: dict[str, Any], run_platform: str) -> dict:
    """The outcomes row of one test; a test of no torch platform gets the run's."""
    last = next(reversed(phases.values()))
    facts: dict[str, Any] = {}
    for name, value in last.user_properties:
        if name == ITEM_PROPERTY:
            facts = json.loads(value)
    outcome, decisive = _verdict(phases)
    return {
        "node_id": last.nodeid,
        **{key: facts.get(key) for key in ("module", "check_name", "architecture", "modality")},
        "model_class": facts.get("model_class"),
        "platform": facts.get("platform") or run_platform,
        "weights": weights_of(last),
        "outcome": outcome,
        "duration_s": sum(report.duration for report in phases.values()),
        "reason": one_line_reason(decisive) if outcome != "passed" else "",
    }


# ------------------------------------------------------------------ measurements


def timed_calls(forward: Callable[[], Any], device: str) -> list[float]:
    """Forward times in ms: db.MEASURE_CALLS calls, or fewer (not under db.MIN_CALLS) once
    db.MEASURE_BUDGET_S is spent, so that a slow model costs a few calls, not ten."""
    from test.common.performance.measurement import synchronize

    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < db.MEASURE_CALLS:
        synchronize(device)
        start = time.perf_counter_ns()
        forward()
        synchronize(device)
        samples.append((time.perf_counter_ns() - start) / 1e6)
        if len(samples) >= db.MIN_CALLS and time.perf_counter() - started > db.MEASURE_BUDGET_S:
            break
    return samples


def timed_with_peak_memory(forward: Callable[[], Any], device: str) -> tuple[list, int | None]:
    """(forward times in ms, peak memory in bytes) from the same calls: the device peak
    on accelerators; on the CPU the rise of the process's resident peak over what it
    held before (None where the peak cannot be reset)."""
    from test.common.performance import measurement

    if measurement.device_type(device) != "cpu":
        samples: list[float] = []
        stats = measurement.measure_memory_usage(
            lambda: samples.extend(timed_calls(forward, device)), device=device
        )
        return samples, stats.device_peak_bytes
    reset = measurement.reset_peak_rss()
    before = measurement.current_rss_bytes() or 0
    # One intra-op thread, as for the benchmarks: OpenMP threads spinning on a loaded
    # machine make the same forward take several times longer.
    with measurement.torch_threads(1):
        samples = timed_calls(forward, device)
    return samples, max(0, measurement.peak_rss_bytes() - before) if reset else None


def measure_forward(node: pytest.Item, model: Any, forward: Callable[[], Any], device: str) -> None:
    """Time `forward` (warm: the subject has run already), read its peak memory and the
    model's parameter count, and hand the record to the controller.  A no-op when the
    run is not recorded, so it costs nothing then."""
    if not recording(node.config):
        return
    samples, peak = timed_with_peak_memory(forward, device)
    median = statistics.median(samples)
    record = {
        "model_class": type(model).__name__,
        "latency_median_ms": median,
        "latency_spread_ms": statistics.median(abs(sample - median) for sample in samples),
        "latency_samples_ms": samples,
        "peak_memory_bytes": peak,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
    }
    worker_records.attach(node, RECORD_KIND, record)


# ------------------------------------------------------------------ the run


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def run_platform(config: pytest.Config) -> str:
    """The platform asked for; for `--device auto`, the platforms present."""
    return ",".join(gating.selected_platforms(config))


def run_fingerprint(config: pytest.Config, platform: str) -> dict[str, Any]:
    """What must match for two runs' timings to be compared (performance_baseline's
    fingerprint of the platform's device, the calls, the workers, OMP_NUM_THREADS)."""
    from test.common.performance.performance_baseline import machine_fingerprint

    workers = getattr(config.option, "numprocesses", None) or 0
    method = f"{db.MIN_CALLS}-{db.MEASURE_CALLS} calls, {workers} workers"
    device = hardware.torch_device_of(platform.split(",")[-1])
    try:
        fingerprint = machine_fingerprint(device, method=method)
    except (RuntimeError, AssertionError) as error:
        # torch says the device is there but cannot name it: the run goes on (the
        # model tests will say what is wrong), its fingerprint says so.
        fingerprint = machine_fingerprint("cpu", method=method)
        fingerprint["accelerator"] = f"{device}: not named ({error})"
    fingerprint["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS", "")
    return fingerprint


def run_facts(config: pytest.Config) -> dict[str, Any]:
    """The runs row: when, which code (commit, dirty), which versions, which machine."""
    platform = run_platform(config)
    fingerprint = run_fingerprint(config, platform)
    encoded = json.dumps(fingerprint, sort_keys=True)
    status = _git(config.rootpath, "status", "--porcelain", "--untracked-files=no")
    return {
        "run_id": uuid.uuid4().hex,
        "started_at": db.utc_now(),
        "git_commit": _git(config.rootpath, "rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": _platform.python_version(),
        "versions": {name: _version(name) for name in VERSIONED},
        "platform": platform,
        "fingerprint": fingerprint,
        "fingerprint_id": hashlib.sha256(encoded.encode()).hexdigest()[:16],
        "command_line": " ".join(["pytest", *config.invocation_params.args]),
    }


def _registry_specs() -> dict[str, Any]:
    """The registry, when this run has loaded it already (the battery's collection did);
    a run that never loaded it names no registry architecture, so nothing is lost."""
    registry = sys.modules.get("test.common.models.registry")
    return registry.load_registry() if registry is not None else {}


@dataclass(eq=False)  # a registered plugin: pluggy keeps plugins in sets (hash by identity)
class RunRecorder:
    """Gathers outcomes on the process that sees final reports; writes in batches."""

    config: pytest.Config
    path: Path
    run_id: str
    platform: str
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    #: (record kind, node id) already written: every report of an item carries its records.
    handed_over: set[tuple[str, str]] = field(default_factory=set)
    written: dict[str, int] = field(
        default_factory=lambda: {"outcomes": 0, "measurements": 0, "backends": 0}
    )
    last_flush: float = field(default_factory=time.monotonic)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.phases.setdefault(report.nodeid, {})[report.when] = report
        if report.when != "teardown":
            return
        self.pending.append(outcome_row(self.phases.pop(report.nodeid), self.platform))
        if time.monotonic() - self.last_flush > FLUSH_INTERVAL_S:
            self.flush()

    def _new_records(self, kind: str) -> list[dict[str, Any]]:
        """Records of `kind` of the tests whose outcome is about to be written, with
        the node id and the platform of their outcome row."""
        finished = {row["node_id"]: row for row in self.pending}
        found = []
        for entry, record in worker_records.collected(self.config, kind):
            row = finished.get(entry.nodeid)
            if row is None or (kind, entry.nodeid) in self.handed_over:
                continue
            self.handed_over.add((kind, entry.nodeid))
            found.append(
                {
                    "architecture": row["architecture"],
                    **record,
                    "node_id": entry.nodeid,
                    "platform": row["platform"],
                }
            )
        return found

    def _new_backend_results(self) -> list[dict[str, Any]]:
        # Imported here: importing a plugin module before pytest registers it would
        # keep pytest from rewriting its asserts (PytestAssertRewriteWarning).
        from test.common.plugins import backend_report

        # "difference" is the expectation files' rounded text; the database keeps the number.
        return [
            {**record, "difference": record.get("measured_difference")}
            for record in self._new_records(backend_report.RECORD_KIND)
        ]

    def flush(self, exit_status: int | None = None) -> None:
        specs = _registry_specs()
        measurements = self._new_records(RECORD_KIND)
        backends = self._new_backend_results()
        classes = {(m["architecture"], m["platform"]): m["model_class"] for m in measurements}
        for row in self.pending:
            spec = specs.get(row["architecture"])
            row["task"] = getattr(spec, "task", None)
            row["modality"] = getattr(spec, "modality", None) or row["modality"]
            key = (row["architecture"], row["platform"])
            row["model_class"] = row["model_class"] or classes.get(key)
        db.add_results(
            self.path,
            self.run_id,
            self.pending,
            measurements,
            backends=backends,
            exit_status=exit_status,
        )
        self.written["outcomes"] += len(self.pending)
        self.written["measurements"] += len(measurements)
        self.written["backends"] += len(backends)
        self.pending = []
        self.last_flush = time.monotonic()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # An item whose teardown never reported (an xdist worker that crashed in it)
        # is recorded from the phases that did.
        for phases in self.phases.values():
            self.pending.append(outcome_row(phases, self.platform))
        self.phases.clear()
        self.flush(exit_status=int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        backends = self.written["backends"]
        terminalreporter.write_line(
            f"results: run {self.run_id[:12]} recorded in {self.path} "
            f"({self.written['outcomes']} outcomes, {self.written['measurements']} "
            f"measurements{f', {backends} backend results' if backends else ''}); "
            "`python -m test.common.results history` says what changed"
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not recording(config) or worker_records.is_xdist_worker(config):
        return
    path = database_path(config)
    facts = run_facts(config)
    try:
        db.start_run(path, facts)
    except db.ResultsDatabaseError as error:
        raise pytest.UsageError(f"results database: {error}") from None
    recorder = RunRecorder(config, path, facts["run_id"], facts["platform"])
    config.pluginmanager.register(recorder, "results-recorder")
