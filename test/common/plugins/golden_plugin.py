"""Plugin: the battery's `golden` check, and recording goldens (`nox -s goldens`).

The `goldens` fixture hands the battery a :class:`GoldenBook`.  In a normal run its
`check()` compares an output's fingerprint (test/common/correctness/goldens.py) with the stored
golden and fails with how far the output moved and where.  With `--update-goldens`
it records instead: the fingerprint travels to the controller as a worker record
(test/common/plugins/worker_records.py), and at the end of the session the controller
alone merges every record into the files, once, atomically, and prints the table of
architectures added, changed (with the size of the change), unchanged and removed.
So `-n` loses nothing, and a corrupt goldens file stops the run before anything
runs, and is left as it was.

Goldens are recorded on the CPU.  Recording from another device is refused unless
`--goldens-on-device` is given: its numbers would then be every CPU run's
reference.
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from test.common.correctness import goldens
from test.common.plugins import worker_records

RECORD_KIND = "golden"
UPDATE = "--update-goldens"
ON_DEVICE = "--goldens-on-device"
CPU_FLEX = "--cpu-flex-attention"
DIRECTORY_INI = "goldens_dir"
DEFAULT_DIRECTORY = "test/common/data/goldens"
RECORD_HINT = "record it with `nox -s goldens`"


@dataclasses.dataclass
class GoldenState:
    stored: dict[str, dict[str, Any]] | None = None
    refresh: goldens.Refresh | None = None
    error: str | None = None


_STATE_KEY = pytest.StashKey[GoldenState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model tests")
    group.addoption(
        UPDATE,
        action="store_true",
        default=False,
        help="record the battery's golden outputs instead of comparing with them",
    )
    group.addoption(
        ON_DEVICE,
        action="store_true",
        default=False,
        help=f"allow {UPDATE} to record from a device other than the CPU",
    )
    group.addoption(
        CPU_FLEX,
        action="store_true",
        default=False,
        help="compare flex_attention on the CPU too (inductor compiles C++ per model: slow)",
    )
    parser.addini(DIRECTORY_INI, help=f"goldens folder (default: {DEFAULT_DIRECTORY})", default="")


def directory(config: pytest.Config) -> Path:
    return config.rootpath / (str(config.getini(DIRECTORY_INI)) or DEFAULT_DIRECTORY)


def recording(config: pytest.Config) -> bool:
    return bool(config.getoption(UPDATE))


#: Torch device types where flex_attention runs by default: it is compiled by
#: inductor, into Triton kernels on a GPU but into C++ per model on the CPU.
FLEX_DEVICES = frozenset({"cuda", "xpu"})


def compared_attention_paths(
    declared: tuple[str, ...], device: str, config: pytest.Config
) -> tuple[str, ...]:
    """The declared attention implementations the battery runs on `device`."""
    flex = device in FLEX_DEVICES or (device == "cpu" and bool(config.getoption(CPU_FLEX)))
    return tuple(path for path in declared if path != "flex_attention" or flex)


def check_recording_device(requested: str, *, updating: bool, on_device: bool) -> None:
    """Refuse to record goldens from `--device requested` unless `on_device`."""
    if updating and requested not in ("auto", "cpu") and not on_device:
        raise pytest.UsageError(
            f"{UPDATE} records goldens on the CPU; --device {requested} would make that "
            f"device's numbers every CPU run's reference. Add {ON_DEVICE} if you mean it."
        )


def pytest_configure(config: pytest.Config) -> None:
    check_recording_device(
        config.getoption("--device", "auto"),
        updating=recording(config),
        on_device=bool(config.getoption(ON_DEVICE)),
    )
    config.stash[_STATE_KEY] = GoldenState()


def stored_goldens(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """The goldens on disk, read once per process."""
    state = config.stash[_STATE_KEY]
    if state.stored is None:
        state.stored = goldens.read_all(directory(config))
    return state.stored


def pytest_sessionstart(session: pytest.Session) -> None:
    """A model run reads the goldens up front: a broken file stops it at once."""
    config = session.config
    wanted = config.getoption("--run-model-tests", False) or recording(config)
    if not wanted or worker_records.is_xdist_worker(config):
        return
    try:
        stored_goldens(config)
    except goldens.GoldenFileError as error:
        raise pytest.UsageError(str(error)) from None


class GoldenBook:
    """What a battery test needs: compare an output with its golden, or record it."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.config = item.config

    def check(self, architecture: str, output: Any, device: str) -> None:
        record = goldens.fingerprint(output)
        self.item.user_properties.append(("golden", architecture))
        if recording(self.config) and (device == "cpu" or self.config.getoption(ON_DEVICE)):
            worker_records.attach(
                self.item,
                RECORD_KIND,
                {"architecture": architecture, "device": device, "golden": record},
            )
            return
        stored = stored_goldens(self.config).get(architecture)
        if stored is None:
            pytest.fail(
                f"{architecture} has no golden output in {directory(self.config)}: {RECORD_HINT}"
            )
        tolerance = goldens.CPU_TOLERANCE if device == "cpu" else goldens.DEVICE_TOLERANCE
        moved = goldens.movement(stored, record)
        assert moved.distance <= tolerance, (
            f"the output of {architecture} on {device} is not its golden: {moved.describe()}; "
            f"tolerance {tolerance:g}. If the change is intended, {RECORD_HINT}"
        )


@pytest.fixture
def goldens_book(request: pytest.FixtureRequest) -> GoldenBook:
    """Compare a battery output with its golden (or record it under --update-goldens)."""
    return GoldenBook(request.node)


def _versions() -> dict[str, str]:
    found = {}
    for distribution in ("torch", "transformers"):
        try:
            found[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[distribution] = "absent"
    return found


def _records(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """architecture -> fingerprint; a device's record wins over the CPU's."""
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry, record in worker_records.collected(config, RECORD_KIND):
        if entry.outcome != "passed":
            continue
        name, device = record["architecture"], record["device"]
        if name not in chosen or chosen[name][0] == "cpu":
            chosen[name] = (device, record["golden"])
    return {name: golden for name, (_, golden) in chosen.items()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if worker_records.is_xdist_worker(config) or not recording(config):
        return
    records = _records(config)
    if not records:
        return
    from test.common.models.registry import load_registry

    modality_of = {name: spec.modality for name, spec in load_registry().items()}
    state = config.stash[_STATE_KEY]
    try:
        state.refresh = goldens.refresh(
            records, modality_of, _versions(), directory=directory(config)
        )
    except goldens.GoldenFileError as error:
        state.error = str(error)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE_KEY, None)
    if state is None or (state.refresh is None and state.error is None):
        return
    terminalreporter.write_sep("-", "goldens")
    if state.error:
        terminalreporter.write_line(f"ERROR (goldens): {state.error}", red=True, bold=True)
        return
    assert state.refresh is not None
    for line in state.refresh.table():
        terminalreporter.write_line(line)
    size = sum(path.stat().st_size for path in state.refresh.files if path.exists())
    terminalreporter.write_line(
        f"written: {len(state.refresh.files)} files in {directory(config)}, {size / 1024:.0f} KiB"
    )
