"""The browser backends' one headless Chromium per process, and the probe of its APIs.

The slow tests drive Debian's `chromium` with onnxruntime-web (`npm ci`); without them
they skip, naming what is absent.  The browser is a fresh `BrowserHost` per test, not
the process's shared one, so that its starts and restarts are this test's own.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test.common.backends import browser
from test.common.backends.browser import BrowserHost, BrowserLost, BrowserRestarted, absence
from test.common.backends.catalog import BACKENDS_BY_NAME

REPO_ROOT = browser.REPO_ROOT


@pytest.mark.parametrize(
    ("provider", "found", "reason"),
    [
        ("wasm", {}, None),
        ("webgpu", {}, "this Chromium exposes no navigator.gpu"),
        ("webgpu", {"gpu": True, "adapter": None}, "requestAdapter() gives no adapter"),
        (
            "webgpu",
            {"gpu": True, "adapterError": "TypeError: x"},
            "requestAdapter() fails: TypeError",
        ),
        ("webgpu", {"gpu": True, "adapter": {"architecture": "swiftshader"}}, None),
        ("webnn", {"gpu": True}, "this Chromium exposes no navigator.ml"),
        (
            "webnn",
            {"ml": True, "contextError": "NotSupportedError: no"},
            "fails: NotSupportedError",
        ),
        ("webnn", {"ml": True, "context": True}, None),
    ],
)
def test_the_probe_names_the_api_a_provider_lacks(
    provider: str, found: dict[str, Any], reason: str | None
) -> None:
    named = absence(provider, found)
    assert named == reason if reason is None else reason in named


@pytest.mark.slow
def test_an_api_the_browser_lacks_is_a_skip_naming_it(
    suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chromium, onnxruntime-web, and the packages of the onnx file it runs.
    absent = BACKENDS_BY_NAME["browser-webnn"].missing_packages_with_needs()
    if absent:
        pytest.skip(f"the browser backends need {', '.join(absent)}")
    # What the probe of a Chromium without WebNN answers (asked once per process).
    monkeypatch.setattr(browser, "_OFFERS", {"gpu": True, "ml": False})
    module = (REPO_ROOT / "test" / "improved" / "test_backends.py").read_text(encoding="utf-8")
    suite_pytester.makepyfile(test_backends=module)
    result = suite_pytester.runpytest(
        "--run-model-tests", "--backends=browser-webnn", "--backend-sample=pr", "-k", "bert"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*browser-webnn: this Chromium exposes no navigator.ml*"])


@pytest.fixture
def host() -> Iterator[BrowserHost]:
    absent = browser.missing()
    if absent:
        pytest.skip(f"the browser backends need {', '.join(absent)}")
    started = BrowserHost()
    yield started
    started.close()
    assert started.process is None


def _onnx_model(tmp_path: Any, width: int) -> tuple[Any, tuple[Any, ...], Any]:
    """A one-layer ONNX model, its input and what eager torch computes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    torch.manual_seed(width)
    model = torch.nn.Sequential(torch.nn.Linear(width, 3), torch.nn.Tanh()).eval()
    args = (torch.randn(2, width),)
    path = tmp_path / f"model{width}.onnx"
    torch.onnx.export(model, args, dynamo=True, verbose=False).save(str(path))
    with torch.no_grad():
        return path, args, model(*args)


def _agrees(actual: Any, expected: Any) -> bool:
    return actual.shape == expected.shape and (actual - expected).abs().max().item() < 1e-5


@pytest.mark.slow
def test_one_browser_serves_several_models(host: BrowserHost, tmp_path: Any) -> None:
    models = [_onnx_model(tmp_path, width) for width in (4, 8, 4)]
    pids = set()
    for path, args, expected in models:
        assert _agrees(browser.run_in_browser(path, args, host=host), expected)
        assert host.process is not None
        pids.add(host.process.pid)
    assert (host.starts, host.restarts, len(pids)) == (1, [], 1)
    process = host.process
    host.close()
    assert process.poll() is not None  # closed with the host, not left behind


@pytest.mark.slow
def test_a_lost_browser_is_restarted_once_and_reported(host: BrowserHost, tmp_path: Any) -> None:
    path, args, expected = _onnx_model(tmp_path, 4)
    assert _agrees(browser.run_in_browser(path, args, host=host), expected)
    assert host.process is not None
    os.killpg(host.process.pid, signal.SIGKILL)  # as a crash would
    host.process.wait()  # between two models (a loss during one: the next test)
    with pytest.warns(BrowserRestarted, match="Chromium had exited"):
        assert _agrees(browser.run_in_browser(path, args, host=host), expected)
    assert host.starts == 2
    assert len(host.restarts) == 1


@pytest.mark.slow
def test_a_silent_page_is_tried_once_more_then_fails_its_job(host: BrowserHost) -> None:
    host.timeout = 0  # no page answers in no time
    silent = pytest.raises(TimeoutError, match=r"sent nothing back in 0 s, twice \(the second")
    with pytest.warns(BrowserRestarted, match="sent nothing back in 0 s"), silent:
        host.call({"kind": "probe"}, {})
    assert (host.starts, len(host.restarts), host.alive()) == (2, 1, False)
    host.timeout = browser.PAGE_TIMEOUT
    assert "gpu" in json.loads(host.call({"kind": "probe"}, {})["body"])
    assert host.starts == 3  # the next job starts a fresh browser


def test_a_browser_that_cannot_stay_up_fails_the_job_after_one_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Chromium that dies as it starts (a broken install, missing libraries).
    dying = tmp_path / "chromium"
    dying.write_text("#!/bin/sh\nexit 3\n")
    dying.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    host = BrowserHost()
    try:
        lost_twice = pytest.raises(BrowserLost, match="lost twice on one job")
        with pytest.warns(BrowserRestarted, match="status 3"), lost_twice:
            host.call({"kind": "probe"}, {})
        assert (host.starts, host.process) == (2, None)  # stopped: the next job starts one
    finally:
        host.close()


@pytest.mark.slow
def test_the_probe_reports_what_this_chromium_offers(host: BrowserHost) -> None:
    found = json.loads(host.call({"kind": "probe"}, {})["body"])
    assert isinstance(found["gpu"], bool)
    assert isinstance(found["ml"], bool)
    for provider, api in (("webgpu", "navigator.gpu"), ("webnn", "navigator.ml")):
        reason = absence(provider, found)
        assert reason is None or api in reason
