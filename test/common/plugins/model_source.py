"""Plugin: where model tests get their weights, and an honest count of what ran.

`--model-source tiny` (default): tiny random models built from configs, offline.
`--model-source hub`: the priority files load real hub checkpoints (real ids such as
google-bert/bert-base-uncased), but ONLY from the local Hugging Face cache.  The
lookup reads the cache directory and nothing else (huggingface_hub's
`try_to_load_from_cache`, no HTTP call), so an id that is not cached is skipped at
once with a reason naming it; it cannot wait on a network.

Every model test records the user property `model_weights` = "real" | "tiny"
(`record_model_weights`).  At the end of the run the summary counts the model tests
that ran by that record, and those without one as "unrecorded", so a run can never
look as if it tested real weights when it did not.  The tally reads
`report.user_properties` in `pytest_runtest_logreport`, which on an xdist controller
receives every worker's reports.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

OPTION = "--model-source"
SOURCES = ("tiny", "hub")
WEIGHTS_PROPERTY = "model_weights"
REAL = "real"
TINY = "tiny"
UNRECORDED = "unrecorded"
#: Start of the skip reason of a checkpoint missing from the cache (counted in the summary).
NOT_CACHED = "hub checkpoint not in the local Hugging Face cache"

_TALLY_KEY = pytest.StashKey["WeightsTally"]()


class WeightsTally:
    """Model tests that reached their call phase, by recorded weights, plus cache misses."""

    def __init__(self) -> None:
        self.ran: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.not_cached = 0

    def add(self, report: pytest.TestReport) -> None:
        if report.skipped and NOT_CACHED in _skip_reason(report):
            self.not_cached += 1
            return
        ran = report.when == "call" and (not report.skipped or hasattr(report, "wasxfail"))
        if not ran or "model_test" not in report.keywords:
            return
        kind = weights_of(report)
        self.ran[kind] += 1
        if report.failed:
            self.failed[kind] += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Under xdist this runs on the controller with every worker's reports.
        self.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        line = self.summary()
        if line:
            terminalreporter.write_line(line)

    def summary(self) -> str | None:
        if not self.ran and not self.not_cached:
            return None
        parts = []
        for kind, label in ((REAL, "real weights"), (TINY, "tiny random"), (UNRECORDED, None)):
            count = self.ran[kind]
            if kind == UNRECORDED and not count:
                continue
            failed = f" ({self.failed[kind]} failed)" if self.failed[kind] else ""
            parts.append(f"{count} {label or kind}{failed}")
        line = "model weights of the model tests that ran: " + ", ".join(parts)
        if self.not_cached:
            line += f"; {self.not_cached} skipped: {NOT_CACHED}"
        return line


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[-1]) if isinstance(longrepr, tuple) else str(longrepr or "")


def weights_of(report: pytest.TestReport) -> str:
    """The recorded `model_weights` of a report (the last one wins), else "unrecorded"."""
    found = UNRECORDED
    for name, value in report.user_properties:
        if name == WEIGHTS_PROPERTY and value in (REAL, TINY):
            found = value
    return found


def record_model_weights(node: pytest.Item, kind: str) -> None:
    """Say what the running test uses: REAL (trained checkpoint) or TINY (random)."""
    if kind not in (REAL, TINY):
        raise ValueError(f"model_weights must be {REAL!r} or {TINY!r}, got {kind!r}")
    node.user_properties[:] = [p for p in node.user_properties if p[0] != WEIGHTS_PROPERTY]
    node.user_properties.append((WEIGHTS_PROPERTY, kind))


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it, read from the environment now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def cached_checkpoint(repo_id: str, *, cache_dir: Path | None = None) -> Path:
    """The cached snapshot folder of `repo_id`, or skip the test naming the id.

    Only files on disk are consulted: no request is made, so this returns (or skips)
    in milliseconds whatever the network does.
    """
    from huggingface_hub import try_to_load_from_cache

    cache = cache_dir or hub_cache_dir()
    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(cache))
    if not isinstance(found, str):
        pytest.skip(
            f"{NOT_CACHED}: {repo_id} (looked in {cache}); download it beforehand with "
            f"`hf download {repo_id}` on a machine with network access"
        )
    return Path(found).parent


def model_source_of(config: pytest.Config) -> str:
    return str(config.getoption(OPTION))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("model tests").addoption(
        OPTION,
        choices=SOURCES,
        default="tiny",
        help="weights for the priority model files: 'tiny' random models built offline "
        "(default) or 'hub' checkpoints from the local Hugging Face cache only",
    )


def pytest_configure(config: pytest.Config) -> None:
    tally = WeightsTally()
    config.stash[_TALLY_KEY] = tally
    # A registered object's hooks run per config (pytester sessions included).
    config.pluginmanager.register(tally, "model-weights-tally")


def tally_of(config: pytest.Config) -> WeightsTally:
    return config.stash[_TALLY_KEY]


@pytest.fixture
def model_source(request: pytest.FixtureRequest) -> str:
    """'tiny' or 'hub', from --model-source."""
    return model_source_of(request.config)
