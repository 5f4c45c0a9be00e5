"""Timing, memory and leak measurement (test/common/performance/measurement.py).

The CPU paths need no torch, so most of these run in the fast default session;
the ones with a real torch model are marked slow (torch loads in seconds).
"""

from __future__ import annotations

import sys

import pytest

from test.common.performance import measurement
from test.common.performance.measurement import TimingStats

MIB = 1024 * 1024


def busy(iterations: int = 2000) -> int:
    return sum(range(iterations))


def test_time_callable_keeps_every_round_and_discards_warm_up() -> None:
    calls = []
    stats = measurement.time_callable(
        lambda: calls.append(busy()), warmup_rounds=2, rounds=7, best_of=3
    )
    assert len(calls) == 2 + 7 * 3
    assert len(stats.samples_ns) == 7
    assert stats.reference_ns == ()
    assert stats.min_ns <= stats.median_ns <= max(stats.samples_ns)
    assert stats.mad_ns >= 0
    assert stats.mean_ns > 0
    assert stats.median_ms == pytest.approx(stats.median_ns / 1e6)
    assert stats.relative == stats.samples_ns
    assert stats.throughput(4) == pytest.approx(4e9 / stats.median_ns)


def test_reference_is_timed_in_every_round() -> None:
    order = []
    stats = measurement.time_callable(
        lambda: order.append("f"),
        rounds=3,
        best_of=2,
        warmup_rounds=1,
        reference=lambda: order.append("r"),
    )
    assert order == ["f", "r"] + ["f", "f", "r", "r"] * 3
    assert len(stats.reference_ns) == 3
    record = stats.as_record()
    assert record["sample_count"] == 3
    assert len(record["reference_ns"]) == 3
    assert record["median_relative"] > 0
    assert record["best_of"] == 2
    assert record["warmup_rounds"] == 1


def test_best_of_keeps_the_fastest_call() -> None:
    delays = iter([5_000_000, 0, 5_000_000] * 2)

    def sometimes_slow() -> None:
        busy(next(delays) // 100)

    stats = measurement.time_callable(sometimes_slow, rounds=2, best_of=3, warmup_rounds=0)
    slow = measurement.time_callable(lambda: busy(50_000), rounds=2, best_of=1, warmup_rounds=0)
    assert max(stats.samples_ns) < min(slow.samples_ns)


@pytest.mark.parametrize("options", [{"rounds": 0}, {"best_of": 0}, {"warmup_rounds": -1}])
def test_time_callable_rejects_nonsense(options: dict) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        measurement.time_callable(busy, **options)


def test_relative_samples_divide_round_by_round() -> None:
    assert measurement.relative_samples([10, 20], [5, 5]) == (2.0, 4.0)
    assert measurement.relative_samples([10, 20], []) == (10, 20)
    with pytest.raises(ValueError, match="2 samples but 1 reference"):
        measurement.relative_samples([10, 20], [5])


def test_cpu_needs_no_synchronisation_and_no_torch() -> None:
    measurement.synchronize("cpu")
    assert measurement.device_type("cuda:1") == "cuda"
    assert measurement.device_type("cpu") == "cpu"


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_memory_usage_sees_python_allocations() -> None:
    stats = measurement.measure_memory_usage(lambda: b"x" * (32 * MIB), device="cpu")
    assert stats.tracemalloc_peak_bytes is not None
    assert stats.tracemalloc_peak_bytes >= 32 * MIB
    if sys.platform.startswith("linux"):
        assert stats.peak_rss_bytes is not None
        assert stats.peak_rss_bytes >= 32 * MIB
    assert stats.as_record()["device"] == "cpu"


def test_rss_helpers_report_this_process() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("RSS from /proc is Linux only")
    assert measurement.current_rss_bytes() > MIB
    assert measurement.peak_rss_bytes() >= measurement.current_rss_bytes() // 2


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_a_leaking_callable_is_caught() -> None:
    kept = []

    def leaking_model() -> None:
        kept.append(b"x" * MIB)  # keeps 1 MiB per call, as a cache without bound would

    report = measurement.check_for_leak(leaking_model, repeats=10)
    assert report.leaked
    assert report.growth_bytes["tracemalloc"] >= 10 * MIB
    with pytest.raises(AssertionError, match="leak over 10 calls on cpu"):
        measurement.assert_no_leak(leaking_model, repeats=10)


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_a_one_off_cache_is_not_a_leak() -> None:
    cache: dict[str, bytes] = {}

    def cached_model() -> bytes:
        return cache.setdefault("weights", b"x" * (16 * MIB))

    report = measurement.assert_no_leak(cached_model, repeats=10)
    assert not report.leaked
    assert "no leak" in report.describe()
    assert set(report.bounds_bytes) <= {"rss", "tracemalloc"}


@pytest.mark.slow  # samples memory: seconds
def test_a_one_off_step_inside_a_measured_window_is_not_a_leak() -> None:
    # What an allocator does now and then (a new arena; under coverage, 7-8 MiB of
    # RSS once): memory steps up in one window and stays. A leak steps up in each.
    kept: list[bytes] = []
    calls = iter(range(10_000))

    def model_with_a_late_cache() -> None:
        if next(calls) == 3 + 10 + 5:  # inside the first measured window
            kept.append(b"x" * (16 * MIB))

    report = measurement.check_for_leak(model_with_a_late_cache, repeats=10)
    assert not report.leaked, report.describe()
    first, second = report.window_growth_bytes["tracemalloc"]
    assert first >= 16 * MIB > second
    assert "windows: " in report.describe()


def test_timing_stats_record_keeps_every_sample() -> None:
    stats = TimingStats((3.0, 1.0, 2.0), "cpu", warmup_rounds=0, best_of=1)
    record = stats.as_record()
    assert record["samples_ns"] == [3, 1, 2]
    assert record["median_ns"] == 2
    assert record["min_ns"] == 1
    assert record["mad_ns"] == 1
    assert "reference_ns" not in record


@pytest.mark.slow
def test_a_leaking_torch_model_is_caught() -> None:
    torch = pytest.importorskip("torch")

    class LeakingModel(torch.nn.Module):
        """Keeps every output alive, like a forward hook that stores activations."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(256, 256)
            self.kept: list = []

        def forward(self, inputs):
            output = self.linear(inputs)
            self.kept.append(output.clone())
            return output

    model = LeakingModel().eval()
    inputs = (torch.randn(1024, 256),)  # 1 MiB of float32 output per call
    sound = torch.nn.Linear(256, 256).eval()
    with measurement.torch_threads(1):
        report = measurement.check_for_leak(measurement.forward_callable(model, inputs))
        fine = measurement.check_for_leak(measurement.forward_callable(sound, inputs))
    assert report.leaked, report.describe()
    assert report.growth_bytes["rss"] >= 16 * MIB
    assert not fine.leaked, fine.describe()


@pytest.mark.slow
def test_inference_timing_with_the_reference_workload() -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(32, 32).eval()
    with measurement.torch_threads(1) as threads:
        assert torch.get_num_threads() == threads == 1
        stats = measurement.measure_inference_time(
            model, (torch.randn(1, 8, 32),), device="cpu", rounds=12, warmup_rounds=1
        )
    assert len(stats.samples_ns) == len(stats.reference_ns) == 12
    assert all(value > 0 for value in stats.relative)
    memory = measurement.measure_memory_usage(
        measurement.forward_callable(model, {"input": torch.randn(4, 32)}), device="cpu"
    )
    assert memory.tracemalloc_peak_bytes is not None
