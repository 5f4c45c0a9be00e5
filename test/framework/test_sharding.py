"""Sharding (--shard-id/--num-shards) and the memory cap of `-n auto`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common.plugins import sharding

PARAMETRIZED = """
import pytest

@pytest.mark.parametrize("architecture", ["bert", "gpt2", "vit", "clip", "t5", "bart"])
@pytest.mark.parametrize("step", ["loads", "forward"])
def test_battery(architecture, step):
    assert architecture

@pytest.mark.parametrize("number", range(12))
def test_other(number):
    assert number >= 0
"""


def collected(result: pytest.RunResult) -> set[str]:
    return {line for line in result.outlines if "::" in line}


def shards_of(pytester: pytest.Pytester, num_shards: int) -> list[set[str]]:
    options = ("--collect-only", "-q", f"--num-shards={num_shards}")
    return [collected(pytester.runpytest(*options, f"--shard-id={k}")) for k in range(num_shards)]


def test_every_test_lands_in_exactly_one_shard(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_many=PARAMETRIZED)
    everything = collected(suite_pytester.runpytest("--collect-only", "-q"))
    assert len(everything) == 24
    assert shards_of(suite_pytester, 1) == [everything]
    shards = shards_of(suite_pytester, 3)
    assert set().union(*shards) == everything
    assert sum(len(shard) for shard in shards) == len(everything)
    # The battery's tests of one architecture share a shard (built once).
    for k, shard in enumerate(shards):
        for line in shard:
            match = re.search(r"test_battery\[(\w+)-(\w+)\]", line)
            if match:
                assert sharding.shard_of(f"architecture:{match.group(2)}", 3) == k, line


def test_bad_shard_options_are_usage_errors(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_many=PARAMETRIZED)
    result = suite_pytester.runpytest("--shard-id=2", "--num-shards=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shard-id must be in [[]0, --num-shards), got --shard-id 2*"])


@pytest.mark.parametrize(
    ("shard_id", "num_shards", "message"),
    [
        (1, None, "go together"),
        (None, 2, "go together"),
        (2, 2, "must be in"),
        (-1, 2, "must be in"),
        (0, 0, "must be in"),
    ],
)
def test_shard_options_are_validated(
    shard_id: int | None, num_shards: int | None, message: str
) -> None:
    with pytest.raises(pytest.UsageError, match=message):
        sharding.validate_shards(shard_id, num_shards)


@given(num_shards=st.integers(min_value=1, max_value=64), data=st.data())
def test_valid_shard_options_pass_through(num_shards: int, data: st.DataObject) -> None:
    shard_id = data.draw(st.integers(min_value=0, max_value=num_shards - 1))
    assert sharding.validate_shards(shard_id, num_shards) == (shard_id, num_shards)
    assert sharding.validate_shards(None, None) is None


@given(st.text(), st.integers(min_value=1, max_value=64))
def test_shard_of_is_stable_and_in_range(key: str, num_shards: int) -> None:
    shard = sharding.shard_of(key, num_shards)
    assert 0 <= shard < num_shards
    assert shard == sharding.shard_of(key, num_shards)


@given(
    st.integers(min_value=0, max_value=256),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
)
def test_worker_count_respects_cpus_and_memory(cpus: int, memory: int | None) -> None:
    count = sharding.worker_count(cpus, memory)
    assert 1 <= count <= max(1, cpus)
    if memory is not None and count > 1:
        assert count * sharding.MEMORY_PER_WORKER <= memory


def test_auto_workers_are_capped_by_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharding, "available_memory", lambda: 2 * sharding.MEMORY_PER_WORKER)
    assert sharding.pytest_xdist_auto_num_workers(None) <= 2  # type: ignore[arg-type]
    monkeypatch.setattr(sharding, "available_memory", lambda: None)
    assert sharding.pytest_xdist_auto_num_workers(None) >= 1  # type: ignore[arg-type]


def test_available_memory_reads_meminfo() -> None:
    memory = sharding.available_memory()
    assert memory is None or memory > 0


def test_a_model_class_keeps_its_tests_in_one_shard() -> None:
    class Item:
        def __init__(self, check: str, model_class: str) -> None:
            self.nodeid = f"test_task_heads.py::{check}[{model_class}-cpu]"
            self.callspec = type("Callspec", (), {"params": {"model_class": model_class}})()

    keys = {sharding.shard_key(Item(check, "BertForMaskedLM")) for check in ("a", "b", "c")}
    assert keys == {"model_class:BertForMaskedLM"}
    spread = {sharding.shard_of(sharding.shard_key(Item("a", f"Class{n}")), 4) for n in range(40)}
    assert spread == {0, 1, 2, 3}, "heads spread over every shard"
