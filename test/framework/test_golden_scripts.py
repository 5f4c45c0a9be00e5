"""scripts/compare_goldens.py and the parsing of scripts/inject_faults.py (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scripts import compare_goldens, inject_faults
from test.common.correctness import goldens


def _write(directory: Path, outputs: dict[str, np.ndarray]) -> Path:
    entries = {name: goldens.fingerprint(array) for name, array in outputs.items()}
    goldens.write_atomically(directory / "vision.json", goldens.render(entries, {}))
    return directory


def test_compare_lists_the_largest_movement_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = np.random.default_rng(0).standard_normal((2, 4, 8))
    before = _write(tmp_path / "a", {"bert": base, "vit": base + 1, "gone": base})
    after = _write(tmp_path / "b", {"bert": base * 1.01, "vit": base + 1, "new": base})
    assert compare_goldens.main([str(before), str(after)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[1] == "bert:"
    assert "vit" in lines[1]
    assert lines[-1].startswith("2 architectures in both: 1 identical")
    assert "1 above the CPU tolerance" in lines[-1]
    assert lines[-1].endswith("2 in only one folder")


def test_compare_reports_a_corrupt_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vision.json").write_text("{")
    assert compare_goldens.main([str(tmp_path), str(tmp_path)]) == 2
    assert "vision.json" in capsys.readouterr().err


def test_failed_checks_are_read_from_the_short_summary() -> None:
    output = "\n".join(
        [
            "FAILED test/improved/test_architecture_battery.py::test_golden[bert-cpu] - moved",
            "FAILED test/improved/test_architecture_battery.py::test_golden[deberta-v2-cpu]",
            "FAILED test/improved/test_architecture_battery.py::test_batch_consistency[gpt2-cpu]",
            "XFAIL test/improved/test_architecture_battery.py::test_golden[vit-cpu] - known",
        ]
    )
    failures = inject_faults.failed_checks(output)
    assert failures == [
        ("golden", "bert"),
        ("golden", "deberta-v2"),
        ("batch_consistency", "gpt2"),
    ]
    outcome = inject_faults.Outcome("gelu-tanh", 1, failures)
    assert outcome.caught
    assert outcome.by_check() == "batch_consistency 1, golden 2"
    assert inject_faults.Outcome("none", 0, []).by_check() == "-"
