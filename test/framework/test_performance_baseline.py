"""The baseline file and its manager (test/common/performance/performance_baseline.py)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test.common.performance import performance_baseline
from test.common.performance.performance_baseline import (
    REFRESH_HINT,
    BaselineFileError,
    PerformanceBaselineManager,
    machine_fingerprint,
    write_atomically,
)
from test.common.performance.regression import Status

FINGERPRINT = {"cpu": "Test CPU", "cores": 2, "torch": "2.13.0"}


def timing(scale: float = 1.0, count: int = 20) -> dict:
    samples = [round((1000 + 10 * index) * scale) for index in range(count)]
    return {"samples_ns": samples, "median_ns": samples[count // 2], "sample_count": count}


@pytest.fixture
def manager(tmp_path: Path) -> PerformanceBaselineManager:
    manager = PerformanceBaselineManager(tmp_path / "baselines.json")
    manager.save_baseline("bert-float32-b1-s8-cpu", timing(), FINGERPRINT)
    manager.write()
    return PerformanceBaselineManager(manager.path)


def test_a_missing_file_is_an_empty_baseline(tmp_path: Path) -> None:
    assert PerformanceBaselineManager(tmp_path / "absent.json").entries == {}


def test_round_trip_is_sorted_and_indented(manager: PerformanceBaselineManager) -> None:
    entry = manager.get("bert-float32-b1-s8-cpu")
    assert entry is not None
    assert entry["samples_ns"] == timing()["samples_ns"]
    assert entry["fingerprint"] == FINGERPRINT
    assert entry["recorded_at"].endswith("Z")
    text = manager.path.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_written_file_is_readable_by_others(manager: PerformanceBaselineManager) -> None:
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(manager.path.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    manager: PerformanceBaselineManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = manager.path.read_text()

    def interrupted(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(performance_baseline.os, "replace", interrupted)
    manager.save_baseline("gpt2-float32-b1-s8-cpu", timing(), FINGERPRINT)
    with pytest.raises(OSError, match="disk full"):
        manager.write()
    assert manager.path.read_text() == before
    assert sorted(path.name for path in manager.path.parent.iterdir()) == ["baselines.json"]


def test_write_atomically_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    write_atomically(target, "{}\n")
    assert target.read_text() == "{}\n"


def test_broken_json_names_file_line_and_column(manager: PerformanceBaselineManager) -> None:
    lines = manager.path.read_text().splitlines()
    lines[3] = lines[3].replace('"', "", 1)  # break a key on line 4
    manager.path.write_text("\n".join(lines))
    broken = manager.path.read_text()
    with pytest.raises(BaselineFileError) as error:
        PerformanceBaselineManager(manager.path)
    assert str(error.value).startswith(f"{manager.path}:4:")
    assert "never overwritten" in str(error.value)
    assert manager.path.read_text() == broken


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "top level must be an object"),
        ({"format": 99, "entries": {}}, "'format' is 99"),
        ({"format": 1, "entries": {"k": 3}}, "entries['k'] must be an object"),
        ({"format": 1, "entries": {"k": {"median_ns": 1}}}, "lacks fingerprint, samples_ns"),
        (
            {"format": 1, "entries": {"k": {"fingerprint": {}, "median_ns": 1, "samples_ns": [0]}}},
            "samples_ns must be a list of positive numbers",
        ),
        (
            {
                "format": 1,
                "entries": {
                    "k": {"fingerprint": {}, "median_ns": 1, "samples_ns": [1], "tolerance": -1}
                },
            },
            "tolerance must be a number >= 0",
        ),
        (
            {
                "format": 1,
                "entries": {
                    "k": {
                        "fingerprint": {},
                        "median_ns": 1,
                        "samples_ns": [1, 2],
                        "reference_ns": [1],
                    }
                },
            },
            "reference_ns must be positive numbers matching samples_ns",
        ),
    ],
)
def test_hand_broken_structure_is_named(tmp_path: Path, document: object, message: str) -> None:
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps(document))
    with pytest.raises(BaselineFileError, match=re.escape(message)) as error:
        PerformanceBaselineManager(path)
    assert str(error.value).startswith(str(path))


def test_unchanged_timing_is_unchanged(manager: PerformanceBaselineManager) -> None:
    verdict = manager.compare_with_baseline("bert-float32-b1-s8-cpu", timing(), FINGERPRINT, 0.2)
    assert verdict.status is Status.UNCHANGED


def test_slower_timing_is_a_regression(manager: PerformanceBaselineManager) -> None:
    verdict = manager.compare_with_baseline("bert-float32-b1-s8-cpu", timing(1.5), FINGERPRINT, 0.2)
    assert verdict.status is Status.REGRESSION


def test_improvement_carries_the_refresh_hint(manager: PerformanceBaselineManager) -> None:
    verdict = manager.compare_with_baseline("bert-float32-b1-s8-cpu", timing(0.5), FINGERPRINT, 0.2)
    assert verdict.status is Status.IMPROVEMENT
    assert REFRESH_HINT in verdict.describe()


def test_another_fingerprint_is_not_comparable(manager: PerformanceBaselineManager) -> None:
    other = {**FINGERPRINT, "cpu": "Other CPU"}
    verdict = manager.compare_with_baseline("bert-float32-b1-s8-cpu", timing(3.0), other, 0.2)
    assert verdict.status is Status.NO_COMPARABLE_BASELINE
    assert "cpu: 'Test CPU' -> 'Other CPU'" in verdict.detail


def test_missing_key_is_a_missing_baseline(manager: PerformanceBaselineManager) -> None:
    verdict = manager.compare_with_baseline("renamed-key", timing(), FINGERPRINT, 0.2)
    assert verdict.status is Status.MISSING_BASELINE


def test_per_entry_tolerance_overrides_and_survives_a_refresh(
    manager: PerformanceBaselineManager,
) -> None:
    key = "bert-float32-b1-s8-cpu"
    manager.entries[key]["tolerance"] = 1.0
    assert manager.compare_with_baseline(key, timing(1.5), FINGERPRINT, 0.2).status is (
        Status.UNCHANGED
    )
    manager.save_baseline(key, timing(), FINGERPRINT)
    assert manager.tolerance_for(key, 0.2) == 1.0
    assert manager.tolerance_for("other", 0.2) == 0.2


def test_calibrated_timings_compare_relative_to_the_reference(
    manager: PerformanceBaselineManager,
) -> None:
    key = "calibrated"
    base = timing()
    manager.save_baseline(key, {**base, "reference_ns": [100] * 20}, FINGERPRINT)
    # Everything twice as slow (a busier machine): the relative time is unchanged.
    busier = {**timing(2.0), "reference_ns": [200] * 20}
    assert manager.compare_with_baseline(key, busier, FINGERPRINT, 0.2).status is (Status.UNCHANGED)
    slower_model = {**timing(2.0), "reference_ns": [100] * 20}
    assert manager.compare_with_baseline(key, slower_model, FINGERPRINT, 0.2).is_regression


def test_fingerprint_holds_stable_facts_only() -> None:
    fingerprint = machine_fingerprint("cpu", torch_threads=1, method="ref-v1")
    assert fingerprint["accelerator"] == ""
    assert fingerprint["cores"] == os.cpu_count()
    assert fingerprint["method"] == "ref-v1"
    assert fingerprint["torch_threads"] == 1
    assert not any("mhz" in str(value).lower() for value in fingerprint.values())
    assert machine_fingerprint("cpu", 1, "ref-v1") == fingerprint


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)
#: Valid entries with one field replaced by any JSON value, or dropped.
ENTRY_FIELDS = ("fingerprint", "median_ns", "samples_ns", "reference_ns", "tolerance")


def _usable_or_named(path: Path) -> None:
    """Loading either works, and every entry then compares, or names the file."""
    try:
        manager = PerformanceBaselineManager(path)
    except BaselineFileError as error:
        problem = str(error)
    else:
        problem = ""
        for key in manager.entries:
            manager.compare_with_baseline(key, timing(), FINGERPRINT, 0.2)
    assert problem == "" or problem.startswith(f"{path}")


# tmp_path is shared by the examples on purpose: each overwrites the one file.
_SHARED_TMP_PATH = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SHARED_TMP_PATH
@given(content=st.binary(max_size=200))
def test_any_bytes_load_or_name_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "baselines.json"
    path.write_bytes(content)
    _usable_or_named(path)


@_SHARED_TMP_PATH
@given(cut=st.integers(min_value=0), tail=st.sampled_from(["", "\n", "\r\n", " \n\n"]))
def test_a_file_cut_anywhere_names_its_line(tmp_path: Path, cut: int, tail: str) -> None:
    manager = PerformanceBaselineManager(tmp_path / "never-written.json")
    manager.save_baseline("bert-float32-b1-s8-cpu", timing(), FINGERPRINT)
    text = manager.render()
    path = tmp_path / "baselines.json"
    path.write_text(text[: cut % len(text.rstrip())] + tail)  # always before the last "}"
    with pytest.raises(BaselineFileError, match=r":\d+:\d+: not valid JSON"):
        PerformanceBaselineManager(path)


@_SHARED_TMP_PATH
@given(field=st.sampled_from(ENTRY_FIELDS), value=JSON_VALUES, drop=st.booleans())
def test_an_entry_with_any_field_corrupted_loads_or_is_named(
    tmp_path: Path, field: str, value: object, drop: bool
) -> None:
    entry = {**timing(), "fingerprint": FINGERPRINT, "tolerance": 0.1}
    if drop:
        entry.pop(field, None)
    else:
        entry[field] = value
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"format": 1, "entries": {"k": entry}}))
    _usable_or_named(path)
