"""Golden outputs (test/common/correctness/goldens.py) and their plugin
(test/common/plugins/golden_plugin.py).

Fingerprints are computed from NumPy arrays here: the framework session has no torch,
and `fingerprint` takes either.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common.correctness import goldens


def _output(seed: int = 0, shape: tuple[int, ...] = (2, 8, 32)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def test_an_identical_output_has_not_moved() -> None:
    record = goldens.fingerprint(_output())
    unmoved = goldens.movement(record, goldens.fingerprint(_output()))
    assert unmoved.distance == 0.0
    assert unmoved.describe() == "unchanged"


def test_a_change_is_located_on_its_axes() -> None:
    output = _output()
    stored = goldens.fingerprint(output)
    output[1, 5, 3] += 0.5  # one value, item 1, position 5
    moved = goldens.movement(stored, goldens.fingerprint(output))
    assert moved.distance > goldens.CPU_TOLERANCE
    assert "axis" in moved.where or "projection" in moved.where
    assert "moved by" in moved.describe()
    assert "(relative)" in moved.describe()


@given(
    axis=st.integers(0, 2),
    index=st.integers(0, 31),
    factor=st.sampled_from([0.99, 1.01, -1.0]),
)
def test_any_slice_scaled_by_one_percent_or_negated_is_caught(
    axis: int, index: int, factor: float
) -> None:
    output = _output(1)
    stored = goldens.fingerprint(output)
    slicer = [slice(None)] * 3
    slicer[axis] = index % output.shape[axis]  # one item, one position or one channel
    output[tuple(slicer)] *= factor
    assert goldens.movement(stored, goldens.fingerprint(output)).distance > goldens.CPU_TOLERANCE


def test_a_permutation_keeps_norms_but_moves_a_projection() -> None:
    output = _output(2)
    stored = goldens.fingerprint(output)
    swapped = output.copy()
    swapped[0, 3, [4, 5]] = swapped[0, 3, [5, 4]]  # inside one group of every axis
    moved = goldens.movement(stored, goldens.fingerprint(swapped))
    assert moved.distance > goldens.CPU_TOLERANCE


def test_rounding_noise_far_below_the_tolerance_is_unchanged() -> None:
    output = _output(3)
    noisy = output * (1 + 1e-7 * _output(4))
    moved = goldens.movement(goldens.fingerprint(output), goldens.fingerprint(noisy))
    assert moved.distance < goldens.CPU_TOLERANCE / 10


def test_shape_and_dtype_changes_are_infinite() -> None:
    stored = goldens.fingerprint(_output())
    other = goldens.movement(stored, goldens.fingerprint(_output(shape=(2, 9, 32))))
    assert other.distance == math.inf
    assert "shape" in other.describe()
    as_float32 = goldens.movement(stored, goldens.fingerprint(_output().astype(np.float32)))
    assert as_float32.distance == math.inf
    assert "dtype" in as_float32.describe()


def test_integer_outputs_match_exactly() -> None:
    codes = np.arange(24).reshape(2, 3, 4)
    stored = goldens.fingerprint(codes)
    assert "sha256" in stored
    assert goldens.movement(stored, goldens.fingerprint(codes)).distance == 0.0
    changed = codes.copy()
    changed[1, 2, 3] += 1
    assert goldens.movement(stored, goldens.fingerprint(changed)).distance == math.inf


def _refresh(tmp_path: Path, recorded: dict, modality_of: dict) -> goldens.Refresh:
    return goldens.refresh(recorded, modality_of, {"torch": "t"}, directory=tmp_path)


def test_refresh_reports_added_changed_unchanged_and_removed(tmp_path: Path) -> None:
    first = {name: goldens.fingerprint(_output(i)) for i, name in enumerate("abcd")}
    modality_of = {"a": "vision", "b": "vision", "c": "audio", "d": "audio"}
    assert sorted(_refresh(tmp_path, first, modality_of).added) == ["a", "b", "c", "d"]
    text_before = (tmp_path / "vision.json").read_text()

    moved = _output(1)
    moved[0, 0, 0] += 1.0
    second = {
        "a": goldens.fingerprint(_output(0) * (1 + 1e-9)),  # noise: unchanged
        "b": goldens.fingerprint(moved),  # changed
        "e": goldens.fingerprint(_output(9)),  # added
    }
    result = _refresh(tmp_path, second, {"a": "vision", "b": "vision", "c": "audio", "e": "audio"})
    assert result.added == ["e"]
    assert [name for name, _ in result.changed] == ["b"]
    assert result.unchanged == ["a"]
    assert result.removed == ["d"]  # no longer an architecture
    assert result.kept == ["c"]  # not recorded in this run
    table = "\n".join(result.table())
    assert "1 added, 1 changed, 1 unchanged, 1 removed" in table
    assert "changed    b: moved by" in table
    assert "unchanged" not in table.split("\n", 1)[1]  # unchanged ones are only counted
    stored = goldens.read_all(tmp_path)
    assert stored["a"] == first["a"]  # unchanged keeps its stored numbers: no diff noise
    assert sorted(stored) == ["a", "b", "c", "e"]
    assert (tmp_path / "vision.json").read_text() != text_before


def test_files_are_sorted_one_line_per_architecture(tmp_path: Path) -> None:
    recorded = {name: goldens.fingerprint(_output(i)) for i, name in enumerate(["zeta", "alpha"])}
    _refresh(tmp_path, recorded, {"zeta": "vision", "alpha": "vision"})
    lines = (tmp_path / "vision.json").read_text().splitlines()
    entries = [line.strip().split(":")[0] for line in lines if line.startswith("    ")]
    assert entries == ['"alpha"', '"zeta"']
    assert json.loads((tmp_path / "vision.json").read_text())["format"] == goldens.FORMAT_VERSION


@given(cut=st.integers(min_value=1, max_value=400), newline=st.booleans())
def test_a_truncated_file_is_an_error_and_is_left_as_it_was(
    tmp_path_factory: pytest.TempPathFactory, cut: int, newline: bool
) -> None:
    directory = tmp_path_factory.mktemp("goldens")
    _refresh(directory, {"a": goldens.fingerprint(_output())}, {"a": "vision"})
    path = directory / "vision.json"
    text = path.read_text()
    broken = text[: min(cut, len(text) - 2)] + ("\n" if newline else "")
    path.write_text(broken)
    with pytest.raises(goldens.GoldenFileError, match=r"vision\.json"):
        goldens.read_all(directory)
    with pytest.raises(goldens.GoldenFileError):
        _refresh(directory, {"a": goldens.fingerprint(_output(5))}, {"a": "vision"})
    assert path.read_text() == broken


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "format"),
        ('{"format": 99, "architectures": {}}', "format"),
        ('{"format": 1, "architectures": []}', "architectures"),
        ('{"format": 1, "architectures": {"a": 3}}', "must be an object"),
        ('{"format": 1, "architectures": {"a": {"shape": [2]}}}', "lacks"),
    ],
)
def test_malformed_entries_are_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "vision.json").write_text(content)
    with pytest.raises(goldens.GoldenFileError, match=message):
        goldens.read_all(tmp_path)


def test_one_architecture_in_two_files_is_an_error(tmp_path: Path) -> None:
    record = goldens.fingerprint(_output())
    for modality in ("vision", "audio"):
        (tmp_path / f"{modality}.json").write_text(goldens.render({"a": record}, {}))
    with pytest.raises(goldens.GoldenFileError, match="another file"):
        goldens.read_all(tmp_path)
