"""Expected failures keyed by platform (test/common/models/expectations.py and the plugin
test/common/plugins/expectations.py): an observation applies only where it was seen, a
missing package is a skip naming it, and the checks a row may name are the test
functions themselves."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from test.common import hardware
from test.common.models import expectations
from test.common.models.heads import load_heads
from test.common.models.registry import ArchitectureSpec, load_registry
from test.common.plugins import expectations as plugin

OBSERVED_ON_CPU = ArchitectureSpec(
    "alpha", "text-encoder", expected_failures={"cpu": {"reduced_precision": "fft rejects bf16"}}
)


def test_an_observation_on_the_cpu_is_a_strict_xfail_there() -> None:
    (mark,) = plugin.expectation_marks(OBSERVED_ON_CPU, "reduced_precision", "cpu")
    assert mark.name == "xfail"
    assert mark.kwargs == {"reason": "observed on cpu: fft rejects bf16", "strict": True}


@pytest.mark.parametrize("platform", ["cuda", "rocm", "mps", "xpu"])
def test_an_observation_on_the_cpu_does_not_apply_elsewhere(platform: str) -> None:
    assert plugin.expectation_marks(OBSERVED_ON_CPU, "reduced_precision", platform) == []


def test_other_checks_are_not_affected() -> None:
    assert plugin.expectation_marks(OBSERVED_ON_CPU, "forward", "cpu") == []


def test_a_missing_package_is_a_skip_naming_it_not_an_xfail() -> None:
    spec = ArchitectureSpec("alpha", "vision", requires=("no_such_package_here", "json"))
    (mark,) = plugin.expectation_marks(spec, "forward", "cpu")
    assert mark.name == "skip"
    assert mark.kwargs["reason"] == "needs no_such_package_here, which is not installed"


def test_an_installed_requirement_runs() -> None:
    spec = ArchitectureSpec("alpha", "vision", requires=("json",))
    assert plugin.expectation_marks(spec, "forward", "cpu") == []


def test_amx_observations_apply_only_on_processors_with_amx() -> None:
    assert hardware.observation_keys("cpu", frozenset({"avx512_bf16", "amx_bf16"})) == (
        "cpu+amx",
        "cpu",
    )
    assert hardware.observation_keys("cpu", frozenset({"avx512_bf16"})) == ("cpu",)
    assert hardware.observation_keys("cuda", frozenset({"amx_bf16"})) == ("cuda",)


def test_a_platform_without_observations_says_every_check_must_pass() -> None:
    counts = collections.Counter({"cpu": 3})
    (cuda,) = plugin.summary_lines(["cuda"], counts)
    assert "none recorded for this platform, so every check runs and must pass" in cuda
    assert "expected_failures.cuda" in cuda
    (cpu,) = plugin.summary_lines(["cpu"], counts)
    assert cpu.startswith("expectations on cpu: 3 observed on cpu")


def test_every_platform_key_in_the_data_is_known_and_every_check_exists() -> None:
    rows = [*load_registry().values(), *load_heads().values()]
    assert plugin.observation_counts()["cpu"] > 0
    for spec in rows:
        assert set(spec.expected_failures) <= set(expectations.PLATFORM_KEYS)


def test_checks_are_read_from_the_test_functions(tmp_path: Path) -> None:
    module = tmp_path / "test_checks.py"
    module.write_text(
        "def test_forward(architecture, device): ...\n"
        "def test_helper_only(device): ...\n"
        "def helper(architecture): ...\n"
        "def test_golden(architecture): ...\n"
    )
    assert expectations.checks_in(module, "architecture") == ("forward", "golden")
    assert "reduced_precision" in expectations.checks_of("architecture")
    assert "train_step" in expectations.checks_of("model_class")


SANDBOX_TEST = """
import pytest

pytestmark = pytest.mark.model_test


@pytest.mark.parametrize("architecture", ["fnet", "timm_wrapper", "bert", "not-a-row"])
def test_reduced_precision(architecture, device):
    assert architecture != "fnet", "torch.fft.fftn rejects bfloat16"
"""


@pytest.mark.slow
def test_in_a_run_observations_xfail_and_missing_packages_skip(
    suite_pytester: pytest.Pytester,
) -> None:
    if not expectations.missing_packages(["timm"]):
        pytest.skip("timm is installed here: timm_wrapper runs instead of skipping")
    suite_pytester.makepyfile(test_sandbox=SANDBOX_TEST)
    result = suite_pytester.runpytest("--run-model-tests", "--device=cpu", "-rsx")
    result.assert_outcomes(passed=2, xfailed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "expectations on cpu: * observed on cpu*",
            "*SKIPPED*needs timm, which is not installed*",
            "*XFAIL*fnet*observed on cpu: its Fourier token mixing*",
        ]
    )
