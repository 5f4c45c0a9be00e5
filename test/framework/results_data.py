"""Small recorded databases for the framework tests of test/common/results."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from test.common.results import db

START = datetime.datetime(2026, 1, 1, 12, 0, 0)
CHECKS = ("loads", "forward", "golden")
MODULE = "test/improved/test_architecture_battery.py"


def record_run(
    path: Path,
    index: int,
    outcomes: Mapping[tuple[str, str], str],
    latency_ms: Mapping[str, float] | None = None,
    *,
    fingerprint_id: str = "fp",
    platform: str = "cpu",
    complete: bool = True,
    backends: Mapping[tuple[str, str], tuple[str, float | None]] | None = None,
) -> str:
    """Record run number `index`: outcomes by (architecture, check), latencies by
    architecture (ten samples around the value), backend results by (architecture,
    backend) as (status, latency ratio).  Returns its run id."""
    run_id = f"run{index:04d}"
    db.start_run(
        path,
        {
            "run_id": run_id,
            "started_at": START + datetime.timedelta(hours=index),
            "git_commit": f"{index:040d}",
            "git_dirty": False,
            "python": "3.11",
            "versions": {"torch": "2.13.0", "transformers": "5.23.0"},
            "platform": platform,
            "fingerprint": {"cpu": "test"},
            "fingerprint_id": fingerprint_id,
            "command_line": "pytest",
        },
    )
    rows = [
        outcome_row(architecture, check, outcome, platform)
        for (architecture, check), outcome in outcomes.items()
    ]
    measured = [
        measurement_row(architecture, value, platform)
        for architecture, value in (latency_ms or {}).items()
    ]
    observed = [
        backend_row(architecture, backend, status, ratio, platform)
        for (architecture, backend), (status, ratio) in (backends or {}).items()
    ]
    db.add_results(
        path, run_id, rows, measured, backends=observed, exit_status=0 if complete else None
    )
    return run_id


def backend_row(
    architecture: str, backend: str, status: str, ratio: float | None, platform: str = "cpu"
) -> dict[str, Any]:
    reasons = {"fail": "max difference 0.3 (allowed 0.001)", "not reached": "export built nothing"}
    return {
        "node_id": f"test/improved/test_backends.py::test_backend[{architecture}-{backend}]",
        "architecture": architecture,
        "backend": backend,
        "platform": platform,
        "status": status,
        "difference": 0.3 if status == "fail" else (None if status == "not reached" else 1e-5),
        "latency_ratio": ratio,
        "reason": reasons.get(status, ""),
    }


def outcome_row(
    architecture: str, check: str, outcome: str, platform: str = "cpu"
) -> dict[str, Any]:
    reasons = {
        "failed": f"{check} of {architecture}: max difference 0.3 > 0.0001",
        "error": "building the tiny model raised ValueError",
        "xfailed": "No module named 'timm'",
        "skipped": "flex_attention is not compared on cpu",
    }
    return {
        "node_id": f"{MODULE}::test_{check}[{architecture}-{platform}]",
        "module": MODULE,
        "check_name": check,
        "architecture": architecture,
        "model_class": architecture.title() + "Model",
        "modality": "vision" if architecture.startswith("vi") else "text-encoder",
        "task": None,
        "platform": platform,
        "weights": "tiny",
        "outcome": outcome,
        "duration_s": 0.1,
        "reason": reasons.get(outcome, ""),
    }


def measurement_row(architecture: str, latency_ms: float, platform: str = "cpu") -> dict[str, Any]:
    # Ten samples within +-2% of the value: steady, as a quiet machine gives.
    samples = [latency_ms * (1 + (step - 5) * 0.004) for step in range(10)]
    return {
        "node_id": f"{MODULE}::test_forward[{architecture}-{platform}]",
        "architecture": architecture,
        "model_class": architecture.title() + "Model",
        "platform": platform,
        "latency_median_ms": latency_ms,
        "latency_spread_ms": latency_ms * 0.01,
        "latency_samples_ms": samples,
        "peak_memory_bytes": 1 << 20,
        "parameters": 1000,
    }


def all_passing(architectures: Iterable[str]) -> dict[tuple[str, str], str]:
    return {(architecture, check): "passed" for architecture in architectures for check in CHECKS}


ARCHITECTURES = ("bert", "gpt2", "vit")


#: The backends of the last run of `recorded`: (architecture, backend) -> (status, ratio).
BACKENDS = {
    ("bert", "export"): ("pass", 1.2),
    ("bert", "onnx"): ("fail", 0.5),
    ("gpt2", "export"): ("fail", None),
    ("gpt2", "onnx"): ("not reached", None),
}


def recorded(path: Path) -> Path:
    """Three runs: gpt2 slowed in the last, bert's golden failing, vit's forward xfailed;
    the last also ran BACKENDS."""
    steady = {"bert": 2.0, "gpt2": 3.0, "vit": 4.0}
    outcomes = {
        **all_passing(ARCHITECTURES),
        ("bert", "golden"): "failed",
        ("vit", "forward"): "xfailed",
    }
    record_run(path, 1, all_passing(ARCHITECTURES), steady)
    record_run(path, 2, all_passing(ARCHITECTURES), steady)
    record_run(path, 3, outcomes, {**steady, "gpt2": 9.0}, backends=BACKENDS)
    return path
