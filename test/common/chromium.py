"""Headless Chromium, in one place: where to find it and how to start it.

The results report's browser test (test/common/results/browser.py) and the browser
backend (test/common/backends/browser.py) both drive Debian's Chromium (`apt-get install
chromium`); GitHub's runners have Google Chrome instead.
"""

from __future__ import annotations

import shutil

#: Debian's package installs `chromium`; other distributions and runners name it otherwise.
BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Headless, no GPU, nothing fetched or updated behind the test's back: without the
#: background-networking flags Chromium keeps reaching for Google's hosts, which a
#: closed network refuses.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) binary on PATH, or None."""
    return next((path for path in map(shutil.which, BINARIES) if path), None)
