"""Measuring models: inference time, throughput, memory, and leaks.

The seed's ModelTestUtils / PerformanceTestUtils roles, rebuilt so the numbers
can feed a statistical comparison (test/common/performance/regression.py):

- time: warm-up rounds are run and discarded; every call is timed with
  ``time.perf_counter_ns`` and the device is synchronised before the clock
  starts and before it stops (CUDA, MPS and XPU run asynchronously: without the
  sync we would time the kernel *launch*).  A round keeps the fastest of a few
  calls, and times a fixed reference workload right after it: a shared machine
  that is busier now slows both, so their quotient (the *relative* time) is
  what baselines are compared on.  Every round is kept, so the median, a
  robust spread and a rank test can be computed from them.
- memory on the CPU: peak RSS of the process during the call (Linux resets the
  high-water mark through /proc/self/clear_refs; elsewhere the lifetime peak is
  reported and flagged as such) and the tracemalloc peak of Python allocations;
  on GPUs ``max_memory_allocated`` after ``reset_peak_memory_stats``.
- leaks: after warm-up, the same call repeated N times, three times; memory that
  grows beyond a bound in both the second and the third window is a leak (a
  one-off cache filled on first use grows only the first window, an allocator's
  one-off step only one window).

torch is imported lazily, so that the CPU paths (and the framework tests of
this module) work without it.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_WARMUP_ROUNDS = 5
DEFAULT_ROUNDS = 20
#: Each round keeps the fastest of this many calls (see docs/PERFORMANCE_BASELINES.md:
#: best of 1, 2, 3 measured on a loaded machine, each step halving the noise).
DEFAULT_BEST_OF = 5
#: A leak must grow memory by more than this in each of LEAK_WINDOWS windows of repeats.
LEAK_WINDOWS = 2
DEFAULT_RSS_LEAK_BOUND = 8 * 1024 * 1024
DEFAULT_TRACEMALLOC_LEAK_BOUND = 256 * 1024
DEFAULT_DEVICE_LEAK_BOUND = 64 * 1024

_PROC_STATUS = Path("/proc/self/status")
_PROC_STATM = Path("/proc/self/statm")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def device_type(device: str) -> str:
    """'cuda' for 'cuda:1', 'cpu' for 'cpu'."""
    return str(device).split(":", 1)[0]


def synchronize(device: str) -> None:
    """Wait until every queued kernel on `device` has finished (no-op on the CPU)."""
    kind = device_type(device)
    if kind == "cpu":
        return
    import torch

    backend = {"cuda": torch.cuda, "mps": torch.mps, "xpu": getattr(torch, "xpu", None)}.get(kind)
    if backend is None:
        raise ValueError(f"do not know how to synchronise device {device!r}")
    backend.synchronize()


def _median_absolute_deviation(values: list[float], center: float) -> float:
    return statistics.median(abs(value - center) for value in values)


#: Names the reference workload; part of the fingerprint, so changing the workload
#: makes old baselines "not comparable" instead of silently wrong.
REFERENCE_WORKLOAD_ID = "torch-mlp-4x(32-64-32)-layernorm-softmax-b1-s8-v1"


@dataclass(frozen=True)
class TimingStats:
    """Per-round times, in nanoseconds, of the measured call and of the reference.

    ``samples_ns[i]`` is the fastest of ``best_of`` calls in round i;
    ``reference_ns[i]`` the fastest of ``best_of`` runs of the reference workload
    in the same round (empty when measured without one).  Their quotient, the
    *relative* time, is what baselines are compared on: a machine that is busier
    today slows both, a slower model only the first.
    """

    samples_ns: tuple[float, ...]
    device: str
    warmup_rounds: int
    best_of: int
    reference_ns: tuple[float, ...] = ()

    @property
    def median_ns(self) -> float:
        return statistics.median(self.samples_ns)

    @property
    def mad_ns(self) -> float:
        """Median absolute deviation: a spread that one outlier cannot inflate."""
        return _median_absolute_deviation(list(self.samples_ns), self.median_ns)

    @property
    def min_ns(self) -> float:
        return min(self.samples_ns)

    @property
    def mean_ns(self) -> float:
        return statistics.fmean(self.samples_ns)

    @property
    def median_ms(self) -> float:
        return self.median_ns / 1e6

    @property
    def relative(self) -> tuple[float, ...]:
        """Each round's time in units of the reference workload's time."""
        return relative_samples(self.samples_ns, self.reference_ns)

    def throughput(self, items_per_call: int) -> float:
        """Items (sequences, samples) per second at the median call time."""
        return items_per_call * 1e9 / self.median_ns

    def as_record(self) -> dict[str, Any]:
        """A JSON-ready summary that keeps every sample (for the rank test)."""
        record: dict[str, Any] = {
            "device": self.device,
            "median_ns": round(self.median_ns),
            "mad_ns": round(self.mad_ns),
            "min_ns": round(self.min_ns),
            "sample_count": len(self.samples_ns),
            "samples_ns": [round(sample) for sample in self.samples_ns],
            "warmup_rounds": self.warmup_rounds,
            "best_of": self.best_of,
        }
        if self.reference_ns:
            record["reference_ns"] = [round(sample) for sample in self.reference_ns]
            record["median_relative"] = round(statistics.median(self.relative), 4)
        return record


def relative_samples(samples: Sequence[float], reference: Sequence[float]) -> tuple[float, ...]:
    """samples / reference, round by round; the samples themselves without a reference."""
    if not reference:
        return tuple(samples)
    if len(reference) != len(samples):
        raise ValueError(f"{len(samples)} samples but {len(reference)} reference times")
    return tuple(sample / ref for sample, ref in zip(samples, reference, strict=True))


def _fastest_call_ns(function: Callable[[], Any], device: str, calls: int) -> int:
    fastest = None
    for _ in range(calls):
        synchronize(device)
        start = time.perf_counter_ns()
        function()
        synchronize(device)
        elapsed = time.perf_counter_ns() - start
        fastest = elapsed if fastest is None else min(fastest, elapsed)
    assert fastest is not None
    return fastest


def time_callable(
    function: Callable[[], Any],
    *,
    device: str = "cpu",
    warmup_rounds: int = DEFAULT_WARMUP_ROUNDS,
    rounds: int = DEFAULT_ROUNDS,
    best_of: int = DEFAULT_BEST_OF,
    reference: Callable[[], Any] | None = None,
) -> TimingStats:
    """Time `function`: warm-up rounds discarded, then `rounds` timed rounds.

    Each call is timed on its own, with the device synchronised before the clock
    starts and before it stops.  A round keeps the fastest of `best_of` calls (a
    call preempted by another process only adds time), then, when given, times
    the `reference` workload the same way, so both see the same machine load.
    """
    if rounds < 1 or best_of < 1 or warmup_rounds < 0:
        raise ValueError("rounds and best_of must be >= 1, warmup_rounds >= 0")
    for _ in range(warmup_rounds):
        function()
        if reference is not None:
            reference()
    samples, references = [], []
    for _ in range(rounds):
        samples.append(_fastest_call_ns(function, device, best_of))
        if reference is not None:
            references.append(_fastest_call_ns(reference, device, best_of))
    return TimingStats(tuple(samples), str(device), warmup_rounds, best_of, tuple(references))


def reference_workload(device: str) -> Callable[[], Any]:
    """A fixed tiny torch workload (see REFERENCE_WORKLOAD_ID) on `device`.

    It stands for "how fast is this machine right now at small torch ops"; it
    never changes with the code under test.
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(4):
        layers += [torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32)]
        layers.append(torch.nn.LayerNorm(32))
    network = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    network = network.to(device)
    inputs = torch.randn(1, 8, 32, generator=generator).to(device)

    def run() -> Any:
        with torch.inference_mode():
            return network(inputs).softmax(-1)

    return run


def forward_callable(model: Any, inputs: Mapping[str, Any] | tuple) -> Callable[[], Any]:
    """A no-argument callable running one inference forward without autograd."""
    import torch

    def forward() -> Any:
        with torch.inference_mode():
            if isinstance(inputs, Mapping):
                return model(**inputs)
            return model(*inputs)

    return forward


def measure_inference_time(
    model: Any,
    inputs: Mapping[str, Any] | tuple,
    *,
    device: str,
    warmup_rounds: int = DEFAULT_WARMUP_ROUNDS,
    rounds: int = DEFAULT_ROUNDS,
    best_of: int = DEFAULT_BEST_OF,
    calibrate: bool = True,
) -> TimingStats:
    """Inference time of `model` on `inputs` (already on `device`).

    With `calibrate` (the default), every round also times the reference
    workload, so that the result can be compared across machine load.
    """
    return time_callable(
        forward_callable(model, inputs),
        device=device,
        warmup_rounds=warmup_rounds,
        rounds=rounds,
        best_of=best_of,
        reference=reference_workload(device) if calibrate else None,
    )


# --------------------------------------------------------------------------- memory


def _status_field_bytes(name: str) -> int | None:
    """A 'kB' field of /proc/self/status (VmHWM, VmRSS) in bytes; None off Linux."""
    try:
        text = _PROC_STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return None


def current_rss_bytes() -> int | None:
    """Resident set size now; None where the platform does not tell."""
    try:
        resident_pages = int(_PROC_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return _status_field_bytes("VmRSS")
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark; False where that is impossible."""
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """Peak RSS: since the last reset on Linux, else the process lifetime peak."""
    peak = _status_field_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS, in kilobytes on Linux and the BSDs.
    return max_rss if sys.platform == "darwin" else max_rss * 1024


@dataclass(frozen=True)
class MemoryStats:
    """Memory used while running one call."""

    device: str
    peak_rss_bytes: int | None = None
    #: False when the RSS peak could not be reset: it is then the lifetime peak.
    rss_peak_is_per_call: bool = False
    tracemalloc_peak_bytes: int | None = None
    device_peak_bytes: int | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rss_peak_is_per_call": self.rss_peak_is_per_call,
            "tracemalloc_peak_bytes": self.tracemalloc_peak_bytes,
            "device_peak_bytes": self.device_peak_bytes,
        }


def _accelerator_memory(device: str) -> tuple[Callable[[], None], Callable[[], int]]:
    """(reset peak, read peak) for an accelerator's caching allocator."""
    import torch

    kind = device_type(device)
    if kind in ("cuda", "xpu"):
        backend = torch.cuda if kind == "cuda" else torch.xpu
        return (lambda: backend.reset_peak_memory_stats(device)), (
            lambda: int(backend.max_memory_allocated(device))
        )
    if kind == "mps":
        # MPS keeps no peak counter: what is allocated right after the call.
        return (lambda: None), (lambda: int(torch.mps.current_allocated_memory()))
    raise ValueError(f"no memory statistics for device {device!r}")


def measure_memory_usage(function: Callable[[], Any], *, device: str = "cpu") -> MemoryStats:
    """Run `function` once and report the memory it needed on `device`."""
    gc.collect()
    if device_type(device) != "cpu":
        reset, read_peak = _accelerator_memory(device)
        synchronize(device)
        reset()
        function()
        synchronize(device)
        return MemoryStats(str(device), device_peak_bytes=read_peak())
    per_call = reset_peak_rss()
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        function()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        if not already_tracing:
            tracemalloc.stop()
    return MemoryStats(
        str(device),
        peak_rss_bytes=peak_rss_bytes(),
        rss_peak_is_per_call=per_call,
        tracemalloc_peak_bytes=traced_peak,
    )


# ---------------------------------------------------------------------------- leaks


@dataclass(frozen=True)
class LeakReport:
    """Memory growth sustained over two windows of repeated calls, per probe."""

    device: str
    repeats: int
    #: probe name -> bytes grown in each window of `repeats` calls, the smaller of
    #: the two windows: a leak grows memory in both, a one-off step in one.
    growth_bytes: dict[str, int]
    #: probe name -> largest growth tolerated.
    bounds_bytes: dict[str, int]
    #: probe name -> the growth of each window, in order.
    window_growth_bytes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def leaking_probes(self) -> list[str]:
        return [
            name for name, grown in self.growth_bytes.items() if grown > self.bounds_bytes[name]
        ]

    @property
    def leaked(self) -> bool:
        return bool(self.leaking_probes)

    def describe(self) -> str:
        parts = []
        for name, grown in self.growth_bytes.items():
            windows = self.window_growth_bytes.get(name, ())
            each = " and ".join(f"{window / 1024:.0f}" for window in windows)
            per_window = f" (windows: {each} KiB)" if windows else ""
            parts.append(
                f"{name} grew {grown / 1024:.0f} KiB{per_window}"
                f" (bound {self.bounds_bytes[name] / 1024:.0f} KiB)"
            )
        verdict = "leak" if self.leaked else "no leak"
        return f"{verdict} over {self.repeats} calls on {self.device}: " + "; ".join(parts)


def _memory_probes(device: str) -> dict[str, Callable[[], int]]:
    if device_type(device) == "cpu":
        # tracemalloc traces only while on: started right before the measured
        # window, what it holds at the end is exactly what the window kept alive.
        probes: dict[str, Callable[[], int]] = {
            "tracemalloc": lambda: tracemalloc.get_traced_memory()[0]
        }
        if current_rss_bytes() is not None:
            probes["rss"] = lambda: current_rss_bytes() or 0
        return probes
    import torch

    if device_type(device) == "mps":
        return {"device": lambda: int(torch.mps.current_allocated_memory())}
    backend = torch.cuda if device_type(device) == "cuda" else torch.xpu
    return {"device": lambda: int(backend.memory_allocated(device))}


def _read_probes(probes: Mapping[str, Callable[[], int]], device: str) -> dict[str, int]:
    gc.collect()
    synchronize(device)
    return {name: probe() for name, probe in probes.items()}


@contextlib.contextmanager
def _tracing_if(enabled: bool) -> Iterator[None]:
    """Trace Python allocations inside the block (unless already tracing)."""
    start = enabled and not tracemalloc.is_tracing()
    if start:
        tracemalloc.start()
    try:
        yield
    finally:
        if start:
            tracemalloc.stop()


def check_for_leak(
    function: Callable[[], Any],
    *,
    device: str = "cpu",
    warmup_calls: int = 3,
    repeats: int = 20,
    bounds_bytes: Mapping[str, int] | None = None,
) -> LeakReport:
    """Call `function` after warm-up in windows of `repeats` calls; report sustained growth.

    The first window lets lazily filled caches settle. A leak then grows memory in
    each of the next two windows; an allocator's one-off step (a new arena, a heap
    that grows once under coverage's tracing) lands in one of them. So the growth
    judged is the smaller of the two.
    """
    bounds = {
        "rss": DEFAULT_RSS_LEAK_BOUND,
        "tracemalloc": DEFAULT_TRACEMALLOC_LEAK_BOUND,
        "device": DEFAULT_DEVICE_LEAK_BOUND,
        **(bounds_bytes or {}),
    }
    probes = _memory_probes(device)
    for _ in range(warmup_calls + repeats):
        function()
    readings = []
    with _tracing_if(device_type(device) == "cpu"):
        readings.append(_read_probes(probes, device))
        for _window in range(LEAK_WINDOWS):
            for _ in range(repeats):
                function()
            readings.append(_read_probes(probes, device))
    windows = {
        name: tuple(later[name] - earlier[name] for earlier, later in itertools.pairwise(readings))
        for name in probes
    }
    growth = {name: min(grown) for name, grown in windows.items()}
    return LeakReport(
        str(device), repeats, growth, {name: bounds[name] for name in probes}, windows
    )


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """Run the block with `count` intra-op torch threads, then restore the old count.

    CPU benchmarks use one: tiny models gain nothing from more, and OpenMP threads
    spin-waiting on a loaded machine make the same forward 1 ms or 30 ms.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


def assert_no_leak(
    function: Callable[[], Any], *, device: str = "cpu", **options: Any
) -> LeakReport:
    """:func:`check_for_leak`, failing the test with the numbers when memory keeps growing."""
    report = check_for_leak(function, device=device, **options)
    assert not report.leaked, report.describe()
    return report
