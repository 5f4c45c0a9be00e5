"""Fixtures shared by the framework tests (the fast tests of test/common and scripts/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def suite_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester sandbox configured like this suite: our pytest.ini and root conftest.

    Tests written into it run under the real markers, options and plugins, so what
    they observe is what a user of the suite would see.
    """
    ini = (REPO_ROOT / "pytest.ini").read_text(encoding="utf-8")
    # The sandbox has no test/ folder: collect from its root instead.
    (pytester.path / "pytest.ini").write_text(ini.replace("testpaths = test", "testpaths = ."))
    shutil.copy(REPO_ROOT / "conftest.py", pytester.path / "conftest.py")
    pytester.syspathinsert(REPO_ROOT)
    return pytester
