"""Benchmarks of a handful of tiny text models, compared with stored baselines.

Each case is one baseline key: architecture x dtype x batch x sequence length,
with the device appended by the gating plugin, e.g. ``bert-float32-b1-s8-cpu``
(the test id and the key in test/.performance_baselines.json are the same
string).  The timing is handed to ``baseline_recorder``; the benchmark plugin
compares it with the baseline at session end (or records it with
``--update-baselines``).  Run them serially: ``nox -s benchmarks``.

torch and transformers are imported inside the tests (collection must not load them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from test.common.performance import measurement

pytestmark = [pytest.mark.model_test, pytest.mark.benchmark, pytest.mark.model, pytest.mark.text]

#: Intra-op threads while measuring (see measurement.torch_threads for why one).
BENCHMARK_THREADS = 1


@dataclass(frozen=True)
class BenchmarkCase:
    architecture: str
    dtype: str
    batch: int
    sequence_length: int

    @property
    def key(self) -> str:
        return f"{self.architecture}-{self.dtype}-b{self.batch}-s{self.sequence_length}"


CASES = [
    BenchmarkCase("bert", "float32", 1, 8),
    BenchmarkCase("bert", "float32", 4, 32),
    BenchmarkCase("bert", "bfloat16", 1, 8),
    BenchmarkCase("gpt2", "float32", 1, 8),
    BenchmarkCase("gpt2", "float32", 4, 32),
    BenchmarkCase("llama", "float32", 1, 8),
]
LEAK_CASES = [case for case in CASES if case.batch == 1 and case.dtype == "float32"]


def prepared(case: BenchmarkCase, device: str) -> tuple[Any, dict[str, Any]]:
    """The tiny model of `case` (test/common/models/tiny_models.py) on `device` in its dtype,
    in eval mode, and seeded random token ids for it."""
    import torch

    from test.common.models.tiny_models import build_tiny_model

    model = build_tiny_model(case.architecture).model.to(device, getattr(torch, case.dtype))
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(
        0, model.config.vocab_size, (case.batch, case.sequence_length), generator=generator
    )
    return model, {"input_ids": input_ids.to(device)}


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_inference_latency(case: BenchmarkCase, device: str, baseline_recorder: Any) -> None:
    import torch

    model, inputs = prepared(case, device)
    forward = measurement.forward_callable(model, inputs)
    hidden = forward().last_hidden_state
    assert hidden.shape == (case.batch, case.sequence_length, model.config.hidden_size)
    assert torch.isfinite(hidden.float()).all(), f"{case.key}: output has NaN or inf"

    with measurement.torch_threads(BENCHMARK_THREADS):
        timing = measurement.measure_inference_time(model, inputs, device=device)
        memory = measurement.measure_memory_usage(forward, device=device)

    assert len(timing.samples_ns) == measurement.DEFAULT_ROUNDS
    assert timing.min_ns > 0
    assert timing.throughput(case.batch) > 0
    peak = memory.device_peak_bytes if device != "cpu" else memory.peak_rss_bytes
    assert peak is None or peak > 0, f"{case.key}: no memory measured on {device}"
    key = baseline_recorder.record(timing, memory=memory, torch_threads=BENCHMARK_THREADS)
    assert key == f"{case.key}-{device}"


@pytest.mark.parametrize("case", LEAK_CASES, ids=[case.key for case in LEAK_CASES])
def test_repeated_inference_does_not_leak(case: BenchmarkCase, device: str) -> None:
    model, inputs = prepared(case, device)
    with measurement.torch_threads(BENCHMARK_THREADS):
        report = measurement.assert_no_leak(
            measurement.forward_callable(model, inputs), device=device, repeats=30
        )
    assert report.repeats == 30
