"""The suite's pytest plugin: options, model-test gating, devices, offline guard.

Loaded by the root conftest.  Design notes live in docs/MODEL_TEST_GATING_GUIDE.md.
Nothing at import time loads torch or transformers: a plain `pytest` run (model
tests gated) must stay fast.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from test.common import hardware

RUN_MODEL_TESTS = "--run-model-tests"
RUN_SLOW = "--run-slow"


@dataclass(frozen=True)
class Gate:
    """A marker whose tests are skipped unless a flag is given."""

    marker: str
    flag: str
    noun: str  # "model test": used in the skip reason and the summary line

    @property
    def reason(self) -> str:
        return f"{self.noun}: pass {self.flag} to run it"


#: Checked in order: a slow model test is reported as a gated model test.
GATES = (
    Gate("model_test", RUN_MODEL_TESTS, "model test"),
    Gate("slow", RUN_SLOW, "slow test"),
)
GATE_REASON = GATES[0].reason
DEVICE_CHOICES = ("auto", "cpu", "cuda", "rocm", "mps", "xpu")
DEFAULT_BASELINE_TOLERANCE = 0.20

#: Set before transformers or huggingface_hub is imported, so nothing can try
#: (and hang on) a download: the suite is offline by construction.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


class NetworkBlockedError(OSError):
    """Raised when a model test tries to reach a host other than loopback."""


def tolerance_value(text: str) -> float:
    """argparse type for --baseline-tolerance: a non-negative float."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative number such as 0.2, got {text!r}"
        ) from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number >= 0 (a fraction, 0.2 = 20%), got {text!r}"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model tests")
    group.addoption(
        RUN_MODEL_TESTS,
        action="store_true",
        default=False,
        help="run tests marked model_test (skipped by default)",
    )
    group.addoption(
        RUN_SLOW,
        action="store_true",
        default=False,
        help="run tests marked slow (skipped by default so plain pytest stays fast)",
    )
    group.addoption(
        "--update-baselines",
        action="store_true",
        default=False,
        help="record performance measurements as the new baselines",
    )
    group.addoption(
        "--baseline-tolerance",
        type=tolerance_value,
        default=DEFAULT_BASELINE_TOLERANCE,
        metavar="FRACTION",
        help="allowed slowdown before a regression is considered (default: 0.20)",
    )
    group.addoption(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="device for model tests; 'auto' runs on every device present, and naming "
        "one that is absent is an error",
    )


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(OFFLINE_ENVIRONMENT)
    requested = config.getoption("--device")
    if requested not in ("auto", "cpu"):  # the CPU is always there: no torch import
        info = hardware.probe_platform(requested)
        if not info.available:
            raise pytest.UsageError(
                f"--device {requested} was requested, but {requested} is not available "
                f"on this machine: {info.checked}. Run `python -m test.common.hardware` "
                "to see what is present, or use --device auto."
            )


def model_tests_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption(RUN_MODEL_TESTS))


def selected_platforms(config: pytest.Config) -> list[str]:
    """The platforms (cpu, cuda, rocm, mps, xpu) model tests are parametrized over."""
    requested = config.getoption("--device")
    if requested != "auto":
        return [requested]
    if not model_tests_enabled(config):
        # Gated: avoid importing torch just to name platforms that will be skipped.
        return ["cpu"]
    return hardware.detect_hardware().torch_platforms()


def platform_of(item: pytest.Item) -> str | None:
    """The platform a model test runs on ('rocm' for a ROCm run, though its device is
    'cuda'), from its platform marker; None for a test of no torch platform."""
    for marker in item.iter_markers():
        if marker.name in hardware.TORCH_DEVICE_OF_PLATFORM:
            return marker.name
    return None


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every test that takes a `device` argument one instance per platform: the
    value is the torch device type, the id and marker are the platform (`[bert-rocm]`
    gets device 'cuda' and the `rocm` marker, so the ROCm probe decides its skip)."""
    if "device" not in metafunc.fixturenames:
        return
    params = [
        pytest.param(
            hardware.torch_device_of(platform), id=platform, marks=getattr(pytest.mark, platform)
        )
        for platform in selected_platforms(metafunc.config)
    ]
    metafunc.parametrize("device", params)


def _platform_skip_reason(item: pytest.Item) -> str | None:
    for platform in hardware.PLATFORMS:
        if platform == "cpu" or item.get_closest_marker(platform) is None:
            continue
        info = hardware.probe_platform(platform)
        if not info.available:
            return f"requires {platform}: {info.checked}"
    return None


_GATED_BY = pytest.StashKey[Gate]()
#: How many tests one gated item stands for: 1, or every parametrization of a test
#: function folded into one item (test/common/plugins/gate_folding.py).
GATED_TEST_COUNT = pytest.StashKey[int]()
#: The user property a gated item's setup report carries: (GATED_PROPERTY, (marker, count)).
GATED_PROPERTY = "gated"


def closed_gate(config: pytest.Config, item: pytest.Item) -> Gate | None:
    """The first gate that keeps this item from running, if any."""
    for gate in GATES:
        if item.get_closest_marker(gate.marker) and not config.getoption(gate.flag):
            return gate
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        gate = closed_gate(config, item)
        if gate is not None:
            item.add_marker(pytest.mark.skip(reason=gate.reason))
            item.stash[_GATED_BY] = gate
            continue
        reason = _platform_skip_reason(item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Exempt the collected tree from garbage collection for the rest of the run.

    It lives until the session ends anyway, and with the battery's thousands of
    items every automatic (and pytest's final) full collection traversed it again:
    about 15% of a plain run's CPU time.
    """
    gc.freeze()


_SOURCES = pytest.StashKey[dict[Any, tuple[str, int | None, str]]]()


def _function_source(item: pytest.Item) -> tuple[str, int | None]:
    """(file, line) of a gated item's test function, found once per function.

    Finding it (pytest stats the file, then makes it relative) is most of what
    reporting a skip costs, and the battery's 605 parametrizations of one function
    share it.  The item's `location` (a cached property) is filled from it the way
    pytest computes it.
    """
    function = getattr(item, "function", None)
    sources = item.session.stash.setdefault(_SOURCES, {})
    if function is None:
        path, line = item.reportinfo()[:2]
        return os.fspath(path), line
    if function not in sources:
        path, line = item.reportinfo()[:2]
        relative = item.session._node_location_to_relpath(Path(path))
        sources[function] = (os.fspath(path), line, relative)
    path, line, relative = sources[function]
    if "location" not in item.__dict__:
        item.__dict__["location"] = (relative, line, item.getmodpath())
    return path, line


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Report a gated model test as skipped without running its setup machinery.

    A plain run skips thousands of battery tests; the full protocol (fixture
    setup, raising and catching Skipped, teardown) would cost seconds for
    nothing.  The reports are the ones the skip marker would have produced.
    """
    gate = item.stash.get(_GATED_BY, None)
    if gate is None:
        return None
    hooks = item.ihook
    path, line = _function_source(item)
    hooks.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    skipped = (path, (line or 0) + 1, f"Skipped: {gate.reason}")
    count = item.stash.get(GATED_TEST_COUNT, 1)
    setup = pytest.TestReport(
        item.nodeid,
        item.location,
        {},
        "skipped",
        skipped,
        "setup",
        duration=0.0,
        user_properties=[(GATED_PROPERTY, (gate.marker, count))],
    )
    hooks.pytest_runtest_logreport(report=setup)
    # What pytest's own teardown phase does: finalize whatever the previous test
    # left set up that `nextitem` does not share (module and class fixtures).
    # The full teardown hook cannot be called: other plugins' teardown hooks
    # expect state their setup hooks stored, and setup never ran.  _setupstate
    # is private, but pytest is pinned and test_gating.py covers this path.
    teardown = pytest.CallInfo.from_call(
        lambda: item.session._setupstate.teardown_exact(nextitem), when="teardown"
    )
    if teardown.excinfo is None:  # the common case, reported as pytest would
        report = pytest.TestReport(item.nodeid, item.location, {}, "passed", None, "teardown")
    else:  # a finalizer of an earlier test failed: let pytest describe it
        report = hooks.pytest_runtest_makereport(item=item, call=teardown)
    hooks.pytest_runtest_logreport(report=report)
    hooks.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _is_loopback(host: Any) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(original):
    def guarded(sock: socket.socket, address: Any, *args: Any):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise NetworkBlockedError(
                f"model tests run offline: connection to {address!r} was blocked "
                "(load models from local files; see docs/MODEL_TEST_GATING_GUIDE.md)"
            )
        return original(sock, address, *args)

    return guarded


@pytest.fixture(autouse=True)
def _block_network_for_model_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Model tests may only talk to loopback: a download attempt fails at once."""
    if request.node.get_closest_marker("model_test") is not None:
        monkeypatch.setattr(socket.socket, "connect", _guard(socket.socket.connect))
        monkeypatch.setattr(socket.socket, "connect_ex", _guard(socket.socket.connect_ex))
    return


def _gated_by(report: pytest.TestReport) -> tuple[str, int] | None:
    """(marker, number of tests) of a gated item's setup report, else None."""
    if report.when != "setup" or not report.skipped:
        return None
    for name, value in report.user_properties:
        if name == GATED_PROPERTY:
            marker, count = value
            return marker, count
    return None


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """A gated test is counted in one summary line per gate, not in the skips:
    its empty category keeps it out of `-rs` and the final counts, since the
    thousands of gated model tests would bury the skips that mean something."""
    if _gated_by(report) is not None:
        return "", "s", "GATED"
    return None


def count_gated(terminalreporter: Any) -> dict[str, int]:
    """Gated tests per gate marker, from the reports (works on an xdist controller)."""
    totals: dict[str, int] = {}
    for report in terminalreporter.stats.get("", []):
        gated = _gated_by(report)
        if gated is not None:
            totals[gated[0]] = totals.get(gated[0], 0) + gated[1]
    return totals


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    totals = count_gated(terminalreporter)
    for gate in GATES:
        if totals.get(gate.marker):
            terminalreporter.write_line(
                f"{gate.noun}s gated: {totals[gate.marker]} (pass {gate.flag} to run them)"
            )
