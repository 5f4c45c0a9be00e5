"""scripts/measure_battery.py: wall time and process-tree memory of a command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from scripts import measure_battery

HOLD_MEMORY = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import time; b = bytearray(64 * 2**20); time.sleep(0.6)']); "
    "time.sleep(0.6); child.wait()"
)


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_peak_memory_includes_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure_battery, "SAMPLE_SECONDS", 0.05)
    result = measure_battery.measure([sys.executable, "-c", HOLD_MEMORY])
    assert result.returncode == 0
    assert result.peak_rss_bytes >= 64 * 2**20
    assert result.wall_seconds >= 0.5
    assert "GiB" in result.describe()


def test_tree_rss_of_this_process_is_positive() -> None:
    assert measure_battery.tree_rss(os.getpid()) > 0
    assert measure_battery.tree_rss(2**22 + 12345) == 0  # no such process


def test_battery_command_runs_the_battery_on_cpu() -> None:
    command = measure_battery.battery_command(2, ["-k", "bert"])
    assert measure_battery.BATTERY in command
    assert measure_battery.HEADS in command
    assert {"--run-model-tests", "--device=cpu", "-n=2", "--dist=loadgroup"} <= set(command)
    assert command[-2:] == ["-k", "bert"]


@pytest.mark.slow  # imports torch or samples memory: seconds
def test_main_writes_json_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        measure_battery, "battery_command", lambda workers, extra: [sys.executable, "-c", "pass"]
    )
    output = tmp_path / "out" / "battery.json"
    assert measure_battery.main(["--output", str(output)]) == 0
    figures = json.loads(output.read_text())
    assert figures["returncode"] == 0
    assert figures["peak_rss_bytes"] >= 0
    assert not list(output.parent.glob("*.tmp"))
