"""Keyed weights (test/common/models/weights.py): the parts that need only NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common.models import weights


def test_values_are_fixed_by_the_algorithm_not_by_a_library_version() -> None:
    # PCG64 raw words turned into doubles by hand: any change here changes every
    # golden, so it must be deliberate.
    values = weights.keyed_uniform("a.weight", (2, 3))
    expected = [
        [0.7085922291940226, 1.6611490908197435, 0.08775254904861489],
        [-0.6035546254626092, 0.8211864337173022, 0.2536284425361256],
    ]
    np.testing.assert_array_equal(values, expected)


@given(
    name=st.text(min_size=1, max_size=30),
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
)
def test_values_depend_on_name_and_shape_only(name: str, shape: tuple[int, ...]) -> None:
    first = weights.keyed_uniform(name, shape)
    np.testing.assert_array_equal(first, weights.keyed_uniform(name, shape))
    assert first.shape == shape
    assert np.all(np.abs(first) <= np.sqrt(3.0))
    if first.size > 1:
        assert not np.array_equal(first, weights.keyed_uniform(name + ".", shape))


def test_unit_variance_and_zero_mean() -> None:
    values = weights.keyed_uniform("big", (200, 500))
    assert abs(values.mean()) < 0.01
    assert abs(values.std() - 1.0) < 0.01


@pytest.mark.parametrize(
    ("shape", "fan_in"),
    [((64, 32), 32), ((16, 8, 3, 3), 72), ((320, 1, 4), 4), ((32,), 32), ((), 1), ((0, 4), 4)],
)
def test_fan_in(shape: tuple[int, ...], fan_in: int) -> None:
    assert weights.fan_in(shape) == fan_in


def test_an_empty_tensor_has_no_values() -> None:
    assert weights.keyed_uniform("empty", (0, 4)).shape == (0, 4)
