"""Fixtures shared by the framework tests (the fast tests of test/common and scripts/)."""

from __future__ import annotations

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
    }
)


def _keeps_heavy_modules(self: pytest.Pytester) -> pytester_module.SysModulesSnapshot:
    def preserve(name: str) -> bool:
        return name.split(".")[0] in KEEP_IMPORTED or name.startswith(("zope", "readline"))

    return pytester_module.SysModulesSnapshot(preserve=preserve)


@pytest.fixture(autouse=True, scope="session")
def _pytester_keeps_extension_modules() -> Iterator[None]:
    """Let in-process pytester runs import torch without breaking later imports.

    pytester offers no option for this; its snapshot method is private, and
    pytest is pinned exactly, so the patch is checked whenever pytest changes.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            pytester_module.Pytester, "_Pytester__take_sys_modules_snapshot", _keeps_heavy_modules
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
