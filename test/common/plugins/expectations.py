"""Plugin: expected failures per platform, and skips for packages that are missing.

Every model item parametrized by `architecture` (the battery) or `model_class` (the
task heads) and by `device` gets, at collection:
- a skip naming the package, where its row `requires` one that is not installed here;
- a strict xfail with the reason, where its row records the check as failing on the
  item's platform (test/common/models/expectations.py).  An observation made on the
  CPU never applies on a GPU: there the check runs and must pass.

The header says, per platform of the run, which observations apply, and, for a
platform with none, that every check there runs and must pass.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest

from test.common import hardware
from test.common.models import expectations
from test.common.plugins.gating import model_tests_enabled, platform_of, selected_platforms


def _spec_lookups() -> dict[str, Callable[[str], Any]]:
    from test.common.models.heads import load_heads
    from test.common.models.registry import load_registry

    return {
        "architecture": lambda name: load_registry().get(name),
        "model_class": lambda name: load_heads().get(name),
    }


def expectation_marks(spec: Any, check: str, platform: str) -> list[Any]:
    """The marks an item of `check` on `platform` gets from its row `spec`."""
    missing = expectations.missing_packages(getattr(spec, "requires", ()))
    if missing:
        return [pytest.mark.skip(reason=f"needs {', '.join(missing)}, which is not installed")]
    reason = spec.expected_failure_of(check, hardware.observation_keys(platform))
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not model_tests_enabled(config):
        return
    lookups = _spec_lookups()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kind = next((name for name in lookups if name in params), None)
        if kind is None or "device" not in params:
            continue
        platform = platform_of(item) or params["device"]
        check = getattr(item, "originalname", item.name).removeprefix("test_")
        spec = lookups[kind](params[kind])
        if spec is None:
            continue  # not a row of the registry (a test of the suite itself): nothing expected
        for mark in expectation_marks(spec, check, platform):
            item.add_marker(mark)


def observation_counts() -> collections.Counter[str]:
    """How many (row, check) observations each platform key records."""
    from test.common.models.heads import load_heads
    from test.common.models.registry import load_registry

    counts: collections.Counter[str] = collections.Counter()
    for spec in [*load_registry().values(), *load_heads().values()]:
        for key, checks in spec.expected_failures.items():
            counts[key] += len(checks)
    return counts


def summary_lines(platforms: list[str], counts: collections.Counter[str]) -> list[str]:
    """One line per platform of the run: which observations apply, or that none do."""
    lines = []
    for platform in platforms:
        keys = hardware.observation_keys(platform)
        recorded = {key: counts[key] for key in keys if counts[key]}
        if recorded:
            listed = ", ".join(f"{count} observed on {key}" for key, count in recorded.items())
            lines.append(f"expectations on {platform}: {listed} (strict xfails)")
        else:
            lines.append(
                f"expectations on {platform}: none recorded for this platform, so every check "
                "runs and must pass, except where a model cannot be built or run at all; "
                f"record what fails here as expected_failures.{platform} rows"
            )
    return lines


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not model_tests_enabled(config):
        return []
    return summary_lines(selected_platforms(config), observation_counts())
