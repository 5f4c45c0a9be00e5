"""The gating plugin (test/common/plugins/gating.py), observed through real pytest runs."""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common import hardware
from test.common.plugins import gating
from test.framework.conftest import REPO_ROOT

MODEL_TEST = """
import pytest

@pytest.mark.model_test
def test_needs_a_model():
    assert 1 + 1 == 2
"""


def test_model_tests_are_gated_by_default(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_gated=MODEL_TEST)
    result = suite_pytester.runpytest("-rs")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes()  # gated: neither run nor counted among the skips
    result.stdout.fnmatch_lines(["model tests gated: 1 (pass --run-model-tests to run them)"])
    result.stdout.no_fnmatch_line("SKIPPED*")


def test_flag_runs_model_tests(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_gated=MODEL_TEST)
    result = suite_pytester.runpytest("--run-model-tests")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*model tests gated*")


def test_unknown_marker_is_an_error(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.modeltest
        def test_x():
            pass
        """
    )
    result = suite_pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'modeltest' not found in `markers` configuration option*"])


def test_platform_marked_test_skips_naming_platform(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(
        test_webgpu="""
        import pytest

        @pytest.mark.webgpu
        def test_x():
            pass
        """
    )
    result = suite_pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*requires webgpu: webgpu is a browser API*"])


def _absent_torch_platform() -> str:
    report = hardware.detect_hardware()
    return next(p for p in ("mps", "xpu", "rocm", "cuda") if not report.is_available(p))


@pytest.mark.slow
def test_explicit_absent_device_is_an_error(suite_pytester: pytest.Pytester) -> None:
    platform = _absent_torch_platform()
    suite_pytester.makepyfile(test_gated=MODEL_TEST)
    result = suite_pytester.runpytest("--run-model-tests", f"--device={platform}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--device {platform} was requested, but {platform} is not*"])


# One run per kind of mistake; tolerance_value itself is checked exhaustively below.
@pytest.mark.parametrize("value", ["-0.1", "abc"])
def test_bad_tolerance_is_a_usage_error(suite_pytester: pytest.Pytester, value: str) -> None:
    result = suite_pytester.runpytest(f"--baseline-tolerance={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --baseline-tolerance:*"])


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_tolerance_accepts_non_negative_numbers(value: float) -> None:
    assert gating.tolerance_value(repr(value)) == value


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@given(st.floats(max_value=-1e-9) | st.text().filter(lambda t: not _parses_as_float(t)))
def test_tolerance_rejects_negatives_and_text(value: float | str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        gating.tolerance_value(str(value))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_tolerance_rejects_non_finite(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        gating.tolerance_value(value)


def test_device_argument_is_parametrized_per_device(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(
        test_dev="""
        import pytest

        @pytest.mark.parametrize("arch", ["bert"])
        def test_forward(arch, device):
            assert device == "cpu"
        """
    )
    result = suite_pytester.runpytest("-v", "--device=cpu")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_forward[[]bert-cpu[]] PASSED*"])


PLATFORM_PROBE = """
import pytest

from test.common.plugins.gating import platform_of

@pytest.mark.model_test
def test_forward(device, request):
    assert device == "cuda"  # what torch calls a ROCm GPU
    assert platform_of(request.node) == "rocm"
"""


@pytest.fixture
def rocm_build_of_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed torch, answering the probe as a ROCm build with a GPU would.

    Only the probe's inputs are faked (torch.version.hip, cuda.is_available and the
    device count); nothing torch computes is.
    """
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.version, "hip", "6.4.43482")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    hardware.probe_platform.cache_clear()
    hardware.detect_hardware.cache_clear()
    yield
    hardware.probe_platform.cache_clear()
    hardware.detect_hardware.cache_clear()


@pytest.mark.slow  # imports torch
@pytest.mark.parametrize("device_option", ["--device=rocm", "--device=auto"])
def test_model_tests_run_on_a_rocm_build(
    suite_pytester: pytest.Pytester, rocm_build_of_torch: None, device_option: str
) -> None:
    suite_pytester.makepyfile(test_probe=PLATFORM_PROBE)
    result = suite_pytester.runpytest("-v", "--run-model-tests", device_option, "-k", "rocm")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_forward[[]rocm[]] PASSED*"])


@pytest.mark.slow  # imports torch
def test_a_rocm_build_is_not_cuda(
    suite_pytester: pytest.Pytester, rocm_build_of_torch: None
) -> None:
    result = suite_pytester.runpytest("--run-model-tests", "--device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cuda is not available*torch is a ROCm build (hip 6.4*"])


@pytest.mark.slow
def test_gated_collection_imports_neither_torch_nor_transformers(tmp_path) -> None:
    """Collecting and skipping the real model tests must not load the heavy stack."""
    (tmp_path / "heavy_import_probe.py").write_text(
        textwrap.dedent(
            """
            import sys

            def pytest_sessionfinish(session):
                heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
                print(f"HEAVY-MODULES-LOADED={heavy}")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    command = [sys.executable, "-m", "pytest", "test/improved", "-p", "heavy_import_probe", "-q"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY-MODULES-LOADED=[]" in result.stdout, result.stdout
    assert "model tests gated:" in result.stdout


NETWORK_TEST = """
import socket
import pytest
from test.common.plugins.gating import NetworkBlockedError

@pytest.mark.model_test
def test_download_is_blocked():
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed; the guard refuses
    # before any packet could leave.
    with pytest.raises(NetworkBlockedError, match="offline"):
        socket.create_connection(("192.0.2.1", 443), timeout=1)

@pytest.mark.model_test
def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=1):
            pass

@pytest.mark.model_test
def test_offline_environment():
    import os
    assert os.environ["HF_HUB_OFFLINE"] == "1"
"""


def test_model_tests_are_offline(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_net=NETWORK_TEST)
    result = suite_pytester.runpytest("--run-model-tests")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("example.org", False),
        ("fe80::1%eth0", False),
    ],
)
def test_loopback_detection(host: str, expected: bool) -> None:
    assert gating._is_loopback(host) is expected


SLOW_TESTS = """
import pytest

@pytest.mark.slow
def test_slow():
    assert True

@pytest.mark.slow
@pytest.mark.model_test
def test_slow_model():
    assert True
"""


def test_slow_tests_are_gated_by_their_own_flag(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_slow=SLOW_TESTS)
    result = suite_pytester.runpytest("-rs")
    result.assert_outcomes()
    result.stdout.fnmatch_lines(
        [
            "model tests gated: 1 (pass --run-model-tests to run them)",
            "slow tests gated: 1 (pass --run-slow to run them)",
        ]
    )
    suite_pytester.runpytest("--run-slow").assert_outcomes(passed=1)
    suite_pytester.runpytest("--run-slow", "--run-model-tests").assert_outcomes(passed=2)


def test_every_sandboxed_pytest_run_is_gated_as_slow(request: pytest.FixtureRequest) -> None:
    """A plain `pytest` stays an inner loop: a framework test that runs a whole pytest
    in a sandbox (about 0.1-0.4 s of CPU each, dozens of them) is marked slow by
    test/framework/conftest.py, whatever its module forgot to mark."""
    from test.framework.conftest import SANDBOX_FIXTURES

    sandboxed = [
        item
        for item in request.session.items
        if SANDBOX_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    ]
    if not sandboxed:
        pytest.skip("no test of this run uses a pytester sandbox (a narrow selection)")
    unmarked = [item.nodeid for item in sandboxed if item.get_closest_marker("slow") is None]
    assert not unmarked


@pytest.mark.slow
def test_gated_reports_travel_through_xdist(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_slow=SLOW_TESTS)
    result = suite_pytester.runpytest("-n", "2", "-p", "xdist")
    result.assert_outcomes()
    result.stdout.fnmatch_lines(
        [
            "model tests gated: 1 (pass --run-model-tests to run them)",
            "slow tests gated: 1 (pass --run-slow to run them)",
        ]
    )


def test_fixtures_are_torn_down_across_gated_tests(suite_pytester: pytest.Pytester) -> None:
    """A gated test between two modules must still let the first module's fixtures go."""
    suite_pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.fixture(scope="module")
        def resource():
            yield "a"
            print("TORN-DOWN-A")

        def test_uses(resource):
            assert resource == "a"

        @pytest.mark.model_test
        def test_gated():
            pass
        """,
        test_b="""
        import pytest

        @pytest.fixture(scope="module")
        def resource():
            return "b"

        def test_uses(resource):
            assert resource == "b"
        """,
    )
    result = suite_pytester.runpytest("-s", "test_a.py", "test_b.py")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*TORN-DOWN-A*"])


def test_a_failing_finalizer_before_a_gated_test_is_an_error(
    suite_pytester: pytest.Pytester,
) -> None:
    suite_pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.fixture(scope="module")
        def resource():
            yield "a"
            raise RuntimeError("finalizer broke")

        def test_uses(resource):
            pass

        @pytest.mark.model_test
        def test_gated():
            pass
        """
    )
    result = suite_pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_gated*", "*finalizer broke*"])


def test_collected_tree_is_exempt_from_garbage_collection(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_gated=MODEL_TEST)
    gc.unfreeze()  # this session froze its own tree already
    suite_pytester.runpytest().assert_outcomes()
    assert gc.get_freeze_count() > 0


def test_gated_locations_are_the_ones_pytest_computes(pytester: pytest.Pytester) -> None:
    items = pytester.getitems(
        """
        import pytest

        class TestBattery:
            @pytest.mark.parametrize("architecture", ["bert", "gpt2"])
            def test_forward(self, architecture):
                pass

        def test_plain():
            pass
        """
    )
    assert len(items) == 3
    for item in items:
        expected = type(item).location.func(item)
        item.__dict__.pop("location", None)
        path, line = gating._function_source(item)
        assert item.__dict__["location"] == expected
        assert (Path(path).name, line) == (Path(expected[0]).name, expected[1])


BATTERY_LIKE = """
import pytest

pytestmark = pytest.mark.model_test

ARCHITECTURES = [f"arch{index}" for index in range(50)]


def pytest_generate_tests(metafunc):
    if "architecture" in metafunc.fixturenames:
        metafunc.parametrize("architecture", ARCHITECTURES)


def test_forward(architecture, device):
    pass


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dtype(architecture, device, dtype):
    pass
"""
NOT_MODEL_TESTS = """
import pytest

@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 2])
def test_slow_framework(size):
    pass


@pytest.mark.skip(reason="a reason that means something")
def test_other():
    pass
"""


def test_a_gated_function_is_one_item_that_counts_its_parametrizations(
    suite_pytester: pytest.Pytester,
) -> None:
    suite_pytester.makepyfile(test_battery=BATTERY_LIKE, test_other=NOT_MODEL_TESTS)
    result = suite_pytester.runpytest("-rs", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_battery.py::test_forward GATED*",
            "*test_battery.py::test_dtype GATED*",
            "*test_other.py::test_slow_framework GATED*",
            "model tests gated: 150 (pass --run-model-tests to run them)",
            "slow tests gated: 2 (pass --run-slow to run them)",
            "SKIPPED [[]1[]] test_other.py:*: a reason that means something",
        ]
    )
    result.stdout.no_fnmatch_line("*pass --run-model-tests to run it*")
    # Other skips keep their reasons and their place in the final counts.
    result.assert_outcomes(skipped=1)
    assert "collected 4 items" in result.stdout.str()


GATED_LINE = "model tests gated: {} (pass --run-model-tests to run them)"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (["--collect-only"], "150 tests collected*"),
        (["-k", "arch7"], GATED_LINE.format(3)),
        (["-m", "model_test"], GATED_LINE.format(150)),
        (["test_battery.py::test_forward"], GATED_LINE.format(50)),
    ],
    ids=["collect-only", "keyword", "marker", "node-id"],
)
def test_listing_or_selecting_tests_sees_every_item(
    suite_pytester: pytest.Pytester, selection: list[str], expected: str
) -> None:
    suite_pytester.makepyfile(test_battery=BATTERY_LIKE)
    result = suite_pytester.runpytest("-q", *selection)
    result.stdout.fnmatch_lines([expected])


@pytest.mark.slow  # collects the real model tests twice
def test_folded_count_of_the_real_model_tests_is_what_collect_only_lists() -> None:
    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    listed = run("--run-model-tests", "--collect-only", "--device=cpu", "test/improved")
    gated = run("test/improved")
    collected = int(listed.strip().splitlines()[-1].split()[0])
    assert f"model tests gated: {collected} (pass --run-model-tests to run them)" in gated
    assert collected > 1000
