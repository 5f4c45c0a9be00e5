"""The golden plugin end to end, in a pytester sandbox configured like the suite.

The sandbox's "battery" hands NumPy outputs to the `goldens_book` fixture (no torch);
GOLDEN_SHIFT_<name> moves one architecture's output, so a change can be staged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test.common.correctness import goldens
from test.common.plugins import golden_plugin

pytestmark = pytest.mark.slow

BATTERY = """
import os

import numpy as np
import pytest

NAMES = os.environ.get("GOLDEN_NAMES", "bert,gpt2,vit").split(",")


@pytest.mark.parametrize("name", NAMES)
def test_golden(name, goldens_book):
    output = np.random.default_rng(len(name)).standard_normal((2, 4, 8))
    output[1, 2] += float(os.environ.get(f"GOLDEN_SHIFT_{name}", "0"))
    goldens_book.check(name, output, os.environ.get("GOLDEN_DEVICE", "cpu"))
"""


@pytest.fixture
def sandbox(suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("GOLDEN_NAMES", "GOLDEN_SHIFT_gpt2", "GOLDEN_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    suite_pytester.makepyfile(test_battery=BATTERY)
    return suite_pytester


def goldens_dir(sandbox: pytest.Pytester) -> Path:
    return sandbox.path / "test" / "common" / "data" / "goldens"


def test_recording_then_checking(sandbox: pytest.Pytester) -> None:
    recorded = sandbox.runpytest("--update-goldens")
    recorded.assert_outcomes(passed=3)
    recorded.stdout.fnmatch_lines(
        ["goldens: 3 added, 0 changed, 0 unchanged, 0 removed", "  added      bert", "written: *"]
    )
    assert sorted(goldens.read_all(goldens_dir(sandbox))) == ["bert", "gpt2", "vit"]
    sandbox.runpytest().assert_outcomes(passed=3)


def test_a_changed_output_fails_naming_the_architecture_and_the_change(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.runpytest("--update-goldens").assert_outcomes(passed=3)
    monkeypatch.setenv("GOLDEN_SHIFT_gpt2", "0.01")
    result = sandbox.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*the output of gpt2 on cpu is not its golden: moved by * (relative), largest at *"]
    )
    refreshed = sandbox.runpytest("--update-goldens")
    refreshed.stdout.fnmatch_lines(
        ["goldens: 0 added, 1 changed, 2 unchanged, 0 removed", "  changed    gpt2: moved by *"]
    )
    assert "bert" not in refreshed.stdout.str().split("goldens: ", 1)[1].split("written")[0]
    sandbox.runpytest().assert_outcomes(passed=3)


def test_a_missing_golden_fails_with_the_command_that_records_it(
    sandbox: pytest.Pytester,
) -> None:
    result = sandbox.runpytest()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        ["*bert has no golden output in *: record it with `nox -s goldens`"]
    )


def test_recording_under_xdist_loses_nothing(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["bert", "gpt2", "vit", "llama", "t5", "whisper", "clip", "resnet"]
    monkeypatch.setenv("GOLDEN_NAMES", ",".join(names))
    result = sandbox.runpytest("--update-goldens", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=len(names))
    result.stdout.fnmatch_lines([f"goldens: {len(names)} added, *"])
    assert sorted(goldens.read_all(goldens_dir(sandbox))) == sorted(names)


def test_a_corrupt_file_stops_the_run_and_is_kept(sandbox: pytest.Pytester) -> None:
    sandbox.runpytest("--update-goldens").assert_outcomes(passed=3)
    path = goldens_dir(sandbox) / "vision.json"
    path.write_text('{"broken": \n')
    for arguments in (["--run-model-tests"], ["--update-goldens"]):
        result = sandbox.runpytest(*arguments)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*vision.json: not valid JSON (line *"])
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert path.read_text() == '{"broken": \n'


def test_recording_from_another_device_is_refused_unless_asked(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOLDEN_DEVICE", "cuda")
    # --device auto: the CPU's items record, a device's items are only compared.
    result = sandbox.runpytest("--update-goldens")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*bert has no golden output*"])
    sandbox.runpytest("--update-goldens", "--goldens-on-device").assert_outcomes(passed=3)
    assert sorted(goldens.read_all(goldens_dir(sandbox))) == ["bert", "gpt2", "vit"]


@pytest.mark.parametrize("platform", ["cuda", "rocm", "mps", "xpu"])
def test_naming_a_device_for_recording_is_a_usage_error(platform: str) -> None:
    with pytest.raises(pytest.UsageError, match=r"records goldens on the CPU.*--goldens-on-device"):
        golden_plugin.check_recording_device(platform, updating=True, on_device=False)
    golden_plugin.check_recording_device(platform, updating=True, on_device=True)
    golden_plugin.check_recording_device(platform, updating=False, on_device=False)
    golden_plugin.check_recording_device("cpu", updating=True, on_device=False)
