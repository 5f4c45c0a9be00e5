"""Hardware detection: one cached, side-effect-free description of every platform.

Nothing here touches the network or writes anything.  torch (and the optional
runtimes) are imported inside the probe functions, so importing this module is
free: the gated model tests can be collected without loading torch.

`python -m test.common.hardware [--json]` prints what this machine has.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import platform as _platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Every platform marker, in the order reports list them.
PLATFORMS: tuple[str, ...] = (
    "cpu",
    "cuda",
    "rocm",
    "mps",
    "xpu",
    "openvino",
    "onnx",
    "qualcomm",
    "webgpu",
    "webnn",
)

#: The platforms torch runs models on, and the torch device type each one's tests get
#: (the rest of PLATFORMS are runtimes or browser APIs).  A platform names the hardware
#: and build (what markers, skips, reports and expectations are keyed by); the device
#: type is only the string torch wants.  They differ once: ROCm builds of torch expose
#: AMD GPUs as the "cuda" device type, yet a ROCm run is not a CUDA run.
TORCH_DEVICE_OF_PLATFORM: dict[str, str] = {
    "cpu": "cpu",
    "cuda": "cuda",
    "rocm": "cuda",
    "mps": "mps",
    "xpu": "xpu",
}

#: CPU features that change numerics enough to key observations by
#: (test/common/models/expectations.py): `cpu+amx` is the CPU with AMX tiles, where
#: oneDNN runs bfloat16 convolutions through other kernels than on AVX-512 alone.
CPU_QUALIFIERS: dict[str, str] = {"amx": "amx_bf16"}


def torch_device_of(platform: str) -> str:
    """The torch device type a test on `platform` is given ('cuda' for 'rocm')."""
    try:
        return TORCH_DEVICE_OF_PLATFORM[platform]
    except KeyError:
        known = ", ".join(TORCH_DEVICE_OF_PLATFORM)
        raise ValueError(f"{platform!r} is not a torch platform; known: {known}") from None


@dataclass(frozen=True)
class DeviceInfo:
    """One accelerator: its index, name and, where known, capability and memory."""

    index: int
    name: str
    capability: str = ""
    total_memory_bytes: int = 0


@dataclass(frozen=True)
class PlatformInfo:
    """Whether a platform is usable, and in words what was checked to decide."""

    name: str
    available: bool
    checked: str
    version: str = ""
    devices: tuple[DeviceInfo, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HardwareReport:
    """The outcome of probing every platform in :data:`PLATFORMS`."""

    platforms: dict[str, PlatformInfo]

    def is_available(self, platform: str) -> bool:
        return self.platforms[platform].available

    def torch_platforms(self) -> list[str]:
        """Torch platforms present, CPU first (e.g. ['cpu', 'rocm']): what `--device auto`
        runs model tests on."""
        return [name for name in TORCH_DEVICE_OF_PLATFORM if self.platforms[name].available]

    def best_platform(self) -> str:
        """The accelerator platform to prefer, else 'cpu'."""
        return self.torch_platforms()[-1]

    def torch_devices(self) -> list[str]:
        """Distinct torch device types present, CPU first (e.g. ['cpu', 'cuda'])."""
        return list(dict.fromkeys(map(torch_device_of, self.torch_platforms())))

    def best_torch_device(self) -> str:
        """The torch device type of :meth:`best_platform`."""
        return torch_device_of(self.best_platform())

    def as_dict(self) -> dict[str, dict]:
        return {name: asdict(info) for name, info in self.platforms.items()}


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _distribution_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _torch():
    """The torch module, or None when it is not installed."""
    if not _module_present("torch"):
        return None
    import torch

    return torch


def _probe_cpu() -> PlatformInfo:
    torch = _torch()
    version = torch.__version__ if torch else ""
    processor = _platform.processor() or _platform.machine()
    return PlatformInfo("cpu", True, f"always present ({processor})", version)


def _cuda_devices(torch) -> tuple[DeviceInfo, ...]:
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            DeviceInfo(index, props.name, f"{props.major}.{props.minor}", props.total_memory)
        )
    return tuple(devices)


def _probe_cuda_family(want_hip: bool) -> PlatformInfo:
    name = "rocm" if want_hip else "cuda"
    torch = _torch()
    if torch is None:
        return PlatformInfo(name, False, "torch is not installed")
    hip = getattr(torch.version, "hip", None)
    if want_hip and not hip:
        return PlatformInfo(name, False, f"torch.version.hip is None (torch {torch.__version__})")
    if not want_hip and hip:
        return PlatformInfo(name, False, f"torch is a ROCm build (hip {hip}), not CUDA")
    if not torch.cuda.is_available():
        return PlatformInfo(
            name, False, f"torch.cuda.is_available() is False (torch {torch.__version__})"
        )
    version = hip if want_hip else (torch.version.cuda or "")
    return PlatformInfo(
        name, True, "torch.cuda.is_available() is True", version, _cuda_devices(torch)
    )


def _probe_cuda() -> PlatformInfo:
    return _probe_cuda_family(want_hip=False)


def _probe_rocm() -> PlatformInfo:
    return _probe_cuda_family(want_hip=True)


def _probe_mps() -> PlatformInfo:
    torch = _torch()
    if torch is None:
        return PlatformInfo("mps", False, "torch is not installed")
    if not torch.backends.mps.is_available():
        return PlatformInfo("mps", False, "torch.backends.mps.is_available() is False")
    # is_available() can be True on machines where allocation still fails (old
    # macOS, virtualised GPUs); only a real allocation proves the device works.
    try:
        torch.zeros(1, device="mps")
    except RuntimeError as error:
        return PlatformInfo("mps", False, f"allocating a tensor on mps failed: {error}")
    return PlatformInfo("mps", True, "allocated a tensor on mps", torch.__version__)


def _probe_xpu() -> PlatformInfo:
    torch = _torch()
    if torch is None:
        return PlatformInfo("xpu", False, "torch is not installed")
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        return PlatformInfo("xpu", False, "torch.xpu.is_available() is False")
    devices = tuple(
        DeviceInfo(index, xpu.get_device_name(index)) for index in range(xpu.device_count())
    )
    return PlatformInfo("xpu", True, "torch.xpu.is_available() is True", torch.__version__, devices)


def _probe_openvino() -> PlatformInfo:
    if not _module_present("openvino"):
        return PlatformInfo("openvino", False, "the openvino package is not installed")
    return PlatformInfo(
        "openvino", True, "the openvino package is installed", _distribution_version("openvino")
    )


def _onnxruntime_providers() -> list[str] | None:
    if not _module_present("onnxruntime"):
        return None
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _probe_onnx() -> PlatformInfo:
    providers = _onnxruntime_providers()
    if providers is None:
        return PlatformInfo("onnx", False, "the onnxruntime package is not installed")
    return PlatformInfo(
        "onnx",
        True,
        f"onnxruntime providers: {', '.join(providers)}",
        _distribution_version("onnxruntime"),
    )


def _probe_qualcomm() -> PlatformInfo:
    providers = _onnxruntime_providers()
    if providers is None:
        return PlatformInfo(
            "qualcomm", False, "onnxruntime (with QNNExecutionProvider) is not installed"
        )
    if "QNNExecutionProvider" in providers:  # onnxruntime-qnn 1.x: built into onnxruntime
        return PlatformInfo("qualcomm", True, "onnxruntime offers QNNExecutionProvider")
    # onnxruntime-qnn 2.x is a plugin, registered when used (loading it is a side
    # effect this probe does not have): its package is what is checked.
    if _module_present("onnxruntime_qnn"):
        return PlatformInfo(
            "qualcomm",
            True,
            "the onnxruntime-qnn package (plugin QNNExecutionProvider) is installed",
            _distribution_version("onnxruntime-qnn"),
        )
    return PlatformInfo(
        "qualcomm",
        False,
        "onnxruntime has no QNNExecutionProvider and the onnxruntime-qnn package is not installed",
    )


def _probe_browser_api(name: str) -> PlatformInfo:
    # WebGPU and WebNN are browser APIs: a Python process has no way to reach
    # them, so they are reported absent instead of guessed.
    return PlatformInfo(name, False, f"{name} is a browser API; no Python runtime exposes it")


_PROBES: dict[str, Callable[[], PlatformInfo]] = {
    "cpu": _probe_cpu,
    "cuda": _probe_cuda,
    "rocm": _probe_rocm,
    "mps": _probe_mps,
    "xpu": _probe_xpu,
    "openvino": _probe_openvino,
    "onnx": _probe_onnx,
    "qualcomm": _probe_qualcomm,
    "webgpu": lambda: _probe_browser_api("webgpu"),
    "webnn": lambda: _probe_browser_api("webnn"),
}


@functools.cache
def probe_platform(name: str) -> PlatformInfo:
    """Probe one platform, once per process (asking about WebGPU never loads torch)."""
    try:
        probe = _PROBES[name]
    except KeyError:
        raise ValueError(f"unknown platform {name!r}; known: {', '.join(PLATFORMS)}") from None
    return probe()


@functools.cache
def detect_hardware() -> HardwareReport:
    """Probe every platform once per process; later calls return the same report."""
    return HardwareReport({name: probe_platform(name) for name in PLATFORMS})


def format_report(report: HardwareReport) -> str:
    lines = [f"{'platform':<10} {'available':<9} checked"]
    for info in report.platforms.values():
        lines.append(f"{info.name:<10} {'yes' if info.available else 'no':<9} {info.checked}")
        lines.extend(
            f"{'':<10} {'':<9} device {d.index}: {d.name} {d.capability}".rstrip()
            for d in info.devices
        )
    return "\n".join(lines)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def observation_keys(platform: str, flags: frozenset[str] | None = None) -> tuple[str, ...]:
    """The keys observations on `platform` are looked up by, most specific first:
    ('cpu+amx', 'cpu') on a processor with AMX, ('cuda',) on an NVIDIA GPU."""
    flags = cpu_flags() if flags is None else flags
    qualified = [
        f"{platform}+{name}"
        for name, flag in CPU_QUALIFIERS.items()
        if platform == "cpu" and flag in flags
    ]
    return (*qualified, platform)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    report = detect_hardware()
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
