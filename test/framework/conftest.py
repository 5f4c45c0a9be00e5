"""Fixtures shared by the framework tests (the fast tests of test/common and scripts/)."""

from __future__ import annotations

import functools
import importlib.metadata
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest import pytester as pytester_module

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Extension modules that cannot be imported twice in one process.  pytester's
#: in-process runs delete every module imported during the run; a later
#: `import torch` then crashes (SystemError "bad call flags", or a segfault).
#: Re-importing hypothesis is merely slow (seconds per run).
KEEP_IMPORTED = frozenset(
    {
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "numpy",
        "scipy",
        "PIL",
        "sklearn",
        "hypothesis",
        "huggingface_hub",
        "duckdb",
    }
)


def _keeps_heavy_modules(self: pytest.Pytester) -> pytester_module.SysModulesSnapshot:
    def preserve(name: str) -> bool:
        return name.split(".")[0] in KEEP_IMPORTED or name.startswith(("zope", "readline"))

    return pytester_module.SysModulesSnapshot(preserve=preserve)


@functools.cache
def _entry_point_names(group: str) -> frozenset[str]:
    return frozenset(entry.name for entry in importlib.metadata.entry_points(group=group))


_load_entry_points = pytest.PytestPluginManager.load_setuptools_entrypoints


def _skips_names_that_are_not_entry_points(
    self: pytest.PytestPluginManager, group: str, name: str | None = None
) -> int:
    if name is not None and name not in _entry_point_names(group):
        return 0
    return _load_entry_points(self, group, name)


@pytest.fixture(autouse=True, scope="session")
def _pytester_keeps_extension_modules() -> Iterator[None]:
    """Let in-process pytester runs import torch without breaking later imports.

    pytester offers no option for this; its snapshot method is private, and
    pytest is pinned exactly, so the patch is checked whenever pytest changes.

    Also: every plugin a conftest names made pytest read the entry points of every
    installed distribution, looking for that name (~10 scans per sandbox run, most
    of its start-up).  Names that are no entry point are answered from one scan.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            pytester_module.Pytester, "_Pytester__take_sys_modules_snapshot", _keeps_heavy_modules
        )
        patch.setattr(
            pytest.PytestPluginManager,
            "load_setuptools_entrypoints",
            _skips_names_that_are_not_entry_points,
        )
        yield


#: The installed plugins the suite's pytest.ini and plugins rely on.  A sandbox
#: loads these by name instead of scanning every installed distribution's entry
#: points, which took most of each in-process run.
SANDBOX_PLUGINS = ("pytest_timeout", "pytest_benchmark.plugin", "_hypothesis_pytestplugin")


@pytest.fixture
def suite_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester sandbox configured like this suite: our pytest.ini and root conftest.

    Tests written into it run under the real markers, options and plugins, so what
    they observe is what a user of the suite would see.  Other installed plugins
    (anyio, pytest-cov, xdist unless a test asks for it with `-p xdist`) stay out.
    """
    ini = (REPO_ROOT / "pytest.ini").read_text(encoding="utf-8")
    # The sandbox has no test/ folder: collect from its root instead.
    ini = ini.replace("testpaths = test", "testpaths = .")
    explicit = " ".join(f"-p {name}" for name in SANDBOX_PLUGINS)
    ini = ini.replace("addopts = ", f"addopts = {explicit} ", 1)
    (pytester.path / "pytest.ini").write_text(ini)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    shutil.copy(REPO_ROOT / "conftest.py", pytester.path / "conftest.py")
    pytester.syspathinsert(REPO_ROOT)
    return pytester


#: Fixtures that run a whole pytest inside the test (a sandbox).  Each run costs a
#: pytest start-up, a collection and the suite's plugins (~0.1-0.4 s of CPU), and
#: there are dozens, most of a plain run's time; so a test that uses one is marked
#: `slow`: a plain `pytest` counts them in one line ("slow tests gated: N"), and every
#: nox session, CI included, runs them (`--run-slow`).
SANDBOX_FIXTURES = frozenset({"pytester", "suite_pytester"})


@pytest.hookimpl(tryfirst=True)  # before the gating plugin reads the `slow` marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SANDBOX_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
