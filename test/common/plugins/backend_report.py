"""Plugin: the backends' options, expectation updates and end-of-run line.

    backends: 8 architectures; export 8/8, compile 7/8, onnx 6/8, openvino 6/8, int8 8/8
    latency relative to eager (median): export 1.1x, compile 0.6x, ...

`--backends export,onnx` narrows the backends (`nox -s backend-<name>`),
`--backend-sample pr` the architectures to the pull-request sample
(test/common/backends/catalog.py), and `--update-expectations` rewrites
test/common/data/backends/<backend>.csv from what ran and prints what changed.

Each test_backend item attaches its observation as a worker record
(test/common/plugins/worker_records.py), so this works under xdist: the controller
counts and writes, workers only send.  An item whose xdist worker died (a native
crash in a backend: OpenVINO's converter raises SIGFPE on one model) gets a `crash`
record from xdist's report on the controller; once recorded, it is xfailed without
running (`recorded_crash`), since without xdist it would end the whole run.
"""

from __future__ import annotations

import collections
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from test.common.plugins import worker_records

RECORD_KIND = "backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backends", "backends (test/improved/test_backends.py)")
    group.addoption(
        "--backends",
        default=None,
        metavar="NAMES",
        help="comma-separated backends to run (all: every one); test_backends.py is "
        "collected only with this or --backend-sample, or when named (docs/BACKENDS.md)",
    )
    group.addoption(
        "--backend-sample",
        default=None,
        choices=("pr",),
        help="run the backends on a fixed sample of architectures (pr: the pull-request one)",
    )
    group.addoption(
        "--backend-expectations",
        default=None,
        metavar="DIR",
        help="the expectation files' folder (default test/common/data/backends)",
    )
    group.addoption(
        "--update-expectations",
        action="store_true",
        default=False,
        help="rewrite test/common/data/backends/*.csv from this run instead of comparing",
    )


#: The backends' test module: a sweep of its own (`nox -s backends`), not part of the
#: model suite, so a model run leaves it out unless the backends are asked for.
BACKENDS_MODULE = "test_backends.py"


def backends_requested(config: pytest.Config) -> bool:
    return bool(config.getoption("--backends") or config.getoption("--backend-sample"))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave test/improved/test_backends.py out of a run that names no backend (a file
    named on the command line is collected anyway)."""
    if collection_path.name == BACKENDS_MODULE and not backends_requested(config):
        return True
    return None


def pytest_configure(config: pytest.Config) -> None:
    from test.common.backends.catalog import select

    try:
        select(config.getoption("--backends"))
    except ValueError as error:
        raise pytest.UsageError(f"--backends: {error}") from error
    if not worker_records.is_xdist_worker(config):
        config.pluginmanager.register(BackendReporter(config), "backend-reporter")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Close this process's headless Chromium (the browser backends keep one for the
    whole session), if a browser backend started one."""
    browser = sys.modules.get("test.common.backends.browser")
    if browser is not None:
        browser.close_shared()


def expectations_dir(config: pytest.Config) -> Path:
    from test.common.backends.expectations import DATA_DIR

    chosen = config.getoption("--backend-expectations")
    return Path(chosen) if chosen else DATA_DIR


def _record(model_type: str, backend: str, status: str, reason: str, **measured: Any) -> dict:
    from test.common.backends import expectations

    difference = measured.get("difference")
    return {
        "architecture": model_type,
        "backend": backend,
        "status": status,
        "reason": reason,
        "difference": expectations.format_difference(difference),
        "measured_difference": difference,  # unrounded, for the results history
        "latency_ratio": measured.get("latency_ratio"),
    }


def recorded_crash(node: pytest.Item, model_type: str, backend: str) -> None:
    """xfail, before anything is built, an item recorded as `crash`: running it again
    would kill this process (the whole run, without xdist).  Delete its row to retry."""
    from test.common.backends import expectations

    expected = expectations.load(backend, expectations_dir(node.config)).get(model_type)
    if expected is None or expected.status != expectations.CRASH:
        return
    worker_records.attach(node, RECORD_KIND, _record(model_type, backend, "crash", expected.reason))
    pytest.xfail(f"crash (expected, not run): {expected.reason}")


def crash_record(report: pytest.TestReport) -> dict[str, Any] | None:
    """The `crash` record of a test_backend item whose xdist worker died running it
    (xdist reports such an item as failed in the phase "???"), or None."""
    if report.when != "???" or not report.failed:
        return None
    name, _, ident = report.nodeid.rpartition("::")[2].partition("[")
    if name != "test_backend" or not ident.endswith("]"):
        return None
    from test.common.backends.catalog import BACKENDS

    ident = ident[:-1]
    known = [b.name for b in BACKENDS if ident.endswith(f"-{b.name}")]
    backend = max(known, key=len) if known else ident.rpartition("-")[2]
    model_type = ident[: -len(backend) - 1]
    if not model_type:
        return None
    return _record(model_type, backend, "crash", "the process died running it (xdist worker)")


def check_observation(node: pytest.Item, model_type: str, backend: str, observation: Any) -> None:
    """Hand the observation to the controller and judge it against its expectation:
    return when as expected and passing, xfail when as expected and not passing, fail
    on a new failure or an unexpected pass (with the command that updates the file)."""
    from test.common.backends import expectations

    if observation.status == "skip":  # a missing package: never recorded
        pytest.skip(f"{backend}: {observation.reason}")
    record = _record(
        model_type,
        backend,
        observation.status,
        observation.reason,
        difference=observation.difference,
        latency_ratio=observation.latency_ratio,
    )
    worker_records.attach(node, RECORD_KIND, record)
    # Also as plain properties, for --junitxml and the results history.
    node.user_properties.append(("backend_difference", record["difference"]))
    if observation.latency_ratio is not None:
        node.user_properties.append(("latency_ratio", f"{observation.latency_ratio:.3g}"))
    if node.config.getoption("--update-expectations"):
        if observation.status != "pass":
            pytest.xfail(f"{observation.status}: {observation.reason} (recorded)")
        return
    expected = expectations.load(backend, expectations_dir(node.config)).get(model_type)
    outcome, message = expectations.judge(expected, observation.status, observation.reason)
    if outcome == "xfail":
        pytest.xfail(message)
    if outcome != "pass":
        pytest.fail(
            f"{outcome}: {backend} on {model_type}: {message}\n"
            "if this is the new normal, update the expectation: "
            f"{expectations.update_command(backend, model_type)}",
            pytrace=False,
        )


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """The end-of-run lines for the observations of one run."""
    from test.common.backends.catalog import BACKENDS

    architectures = {record["architecture"] for record in records}
    by_backend: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in records:
        by_backend[record["backend"]].append(record)
    known = [backend.name for backend in BACKENDS]
    order = [name for name in known if name in by_backend]
    order += sorted(name for name in by_backend if name not in known)
    counts, latencies = [], []
    for backend in order:
        observed = by_backend[backend]
        passed = sum(record["status"] == "pass" for record in observed)
        counts.append(f"{backend} {passed}/{len(observed)}")
        ratios = [r["latency_ratio"] for r in observed if r.get("latency_ratio") is not None]
        if ratios:
            latencies.append(f"{backend} {statistics.median(ratios):.2g}x")
    lines = [f"backends: {len(architectures)} architectures; {', '.join(counts)}"]
    if latencies:
        lines.append(f"latency relative to eager (median): {', '.join(latencies)}")
    return lines


class BackendReporter:
    """Counts backend observations on the controller, writes expectations when asked."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.changes: list[str] = []
        self.errors: list[str] = []
        self.crashes: list[str] = []

    @pytest.hookimpl(tryfirst=True)  # before worker_records' collector reads the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = crash_record(report)
        if record is None:
            return
        worker_records.attach_to_report(report, RECORD_KIND, record)
        if not self.config.getoption("--update-expectations"):
            from test.common.backends import expectations

            self.crashes.append(
                f"crash: {record['backend']} on {record['architecture']} killed its worker; "
                "to record it (with -n 1 or more): "
                + expectations.update_command(record["backend"], record["architecture"])
            )

    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in worker_records.collected(self.config, RECORD_KIND)]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.config.getoption("--update-expectations"):
            return
        from test.common.backends import expectations

        directory = expectations_dir(self.config)
        observed: dict[str, list[tuple[str, expectations.Expectation]]] = {}
        for record in self.records():
            row = expectations.Expectation(record["status"], record["reason"], record["difference"])
            observed.setdefault(record["backend"], []).append((record["architecture"], row))
        for backend in sorted(observed):
            try:
                changed = expectations.update(backend, observed[backend], directory)
            except expectations.CorruptExpectations as error:
                self.errors.append(str(error))
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
                continue
            path = expectations.path_of(backend, directory)
            self.changes.append(f"{path.name}: {len(changed)} changed or added")
            self.changes.extend(changed)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        records = self.records()
        if not records:
            return
        terminalreporter.write_sep("-", "backends")
        for line in summary_lines(records):
            terminalreporter.write_line(line)
        for line in self.changes:
            terminalreporter.write_line(line)
        for line in self.crashes:
            terminalreporter.write_line(line, red=True)
        for error in self.errors:
            terminalreporter.write_line(f"ERROR (file kept as it is): {error}", red=True)
