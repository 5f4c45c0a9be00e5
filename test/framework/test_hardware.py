"""Hardware detection: always reports the CPU, never lies, and stays import-cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from test.common import hardware
from test.framework.conftest import REPO_ROOT


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_cpu_is_always_available() -> None:
    report = hardware.detect_hardware()
    assert report.is_available("cpu")
    assert report.torch_devices()[0] == "cpu"


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_report_covers_every_platform_with_a_reason() -> None:
    report = hardware.detect_hardware()
    assert tuple(report.platforms) == hardware.PLATFORMS
    for name, info in report.platforms.items():
        assert info.name == name
        assert info.checked, f"{name} gives no account of what was checked"


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_detection_is_cached() -> None:
    assert hardware.detect_hardware() is hardware.detect_hardware()


def test_best_device_is_the_last_accelerator_found() -> None:
    cpu_only = {
        name: hardware.PlatformInfo(name, name == "cpu", "fixture") for name in hardware.PLATFORMS
    }
    report = hardware.HardwareReport(cpu_only)
    assert report.best_torch_device() == "cpu"
    with_gpu = {**cpu_only, "cuda": hardware.PlatformInfo("cuda", True, "fixture")}
    assert hardware.HardwareReport(with_gpu).torch_devices() == ["cpu", "cuda"]
    assert hardware.HardwareReport(with_gpu).best_torch_device() == "cuda"


def test_a_rocm_platform_keeps_its_name_and_gets_the_cuda_device_type() -> None:
    with_rocm = {
        name: hardware.PlatformInfo(name, name in ("cpu", "rocm"), "fixture")
        for name in hardware.PLATFORMS
    }
    report = hardware.HardwareReport(with_rocm)
    assert report.torch_platforms() == ["cpu", "rocm"]
    assert report.best_platform() == "rocm"
    assert report.torch_devices() == ["cpu", "cuda"]
    assert report.best_torch_device() == "cuda"
    assert hardware.torch_device_of("rocm") == "cuda"
    with pytest.raises(ValueError, match="'webgpu' is not a torch platform"):
        hardware.torch_device_of("webgpu")


def test_unknown_platform_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown platform 'tpu'"):
        hardware.probe_platform("tpu")


def test_browser_apis_are_absent_without_loading_torch() -> None:
    info = hardware.probe_platform("webnn")
    assert not info.available
    assert "browser API" in info.checked


def _run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )


def test_importing_detection_does_not_import_torch() -> None:
    code = "import sys, test.common.hardware; print('torch' in sys.modules)"
    assert _run_module("-c", code).stdout.strip() == "False"


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_main_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert hardware.main(["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["cpu"]["available"] is True
    assert set(printed) == set(hardware.PLATFORMS)


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_main_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert hardware.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["platform", "available"]
    assert any(line.startswith("cpu") and " yes " in line for line in lines)


@pytest.mark.parametrize("platform", ["cuda", "rocm", "mps", "xpu"])
def test_without_torch_accelerators_are_absent(
    monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    monkeypatch.setattr(hardware, "_torch", lambda: None)
    info = hardware._PROBES[platform]()
    assert not info.available
    assert info.checked == "torch is not installed"


def test_without_torch_the_cpu_is_still_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "_torch", lambda: None)
    info = hardware._PROBES["cpu"]()
    assert info.available
    assert info.version == ""


def test_missing_runtimes_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "_module_present", lambda name: False)
    assert "openvino package is not installed" in hardware._PROBES["openvino"]().checked
    assert "onnxruntime package is not installed" in hardware._PROBES["onnx"]().checked
    assert "QNNExecutionProvider" in hardware._PROBES["qualcomm"]().checked


def test_the_qualcomm_platform_is_the_plugin_package_or_the_built_in_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hardware, "_onnxruntime_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(hardware, "_module_present", lambda name: name == "onnxruntime_qnn")
    assert hardware._probe_qualcomm().available
    monkeypatch.setattr(hardware, "_module_present", lambda name: False)
    absent = hardware._probe_qualcomm()
    assert not absent.available
    assert "onnxruntime-qnn package is not installed" in absent.checked
    monkeypatch.setattr(hardware, "_onnxruntime_providers", lambda: ["QNNExecutionProvider"])
    assert hardware._probe_qualcomm().available  # onnxruntime-qnn 1.x: built in


def test_module_presence_and_versions_of_absent_packages() -> None:
    assert hardware._module_present("pytest")
    assert not hardware._module_present("surely_not_an_installed_module_xyz")
    assert not hardware._module_present("..relative")
    assert hardware._distribution_version("surely-not-installed-xyz") == ""
    assert hardware._distribution_version("pytest") == pytest.__version__
