"""Sharding (--shard-id/--num-shards) and the memory cap of `-n auto`."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test.common import sharding

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


@pytest.mark.parametrize("num_shards", [1, 3])
def test_every_test_lands_in_exactly_one_shard(
    suite_pytester: pytest.Pytester, num_shards: int
) -> None:
    suite_pytester.makepyfile(test_many=PARAMETRIZED)
    everything = collected(suite_pytester.runpytest("--collect-only", "-q"))
    assert len(everything) == 24
    shards = [
        collected(
            suite_pytester.runpytest(
                "--collect-only", "-q", f"--shard-id={k}", f"--num-shards={num_shards}"
            )
        )
        for k in range(num_shards)
    ]
    assert set().union(*shards) == everything
    assert sum(len(shard) for shard in shards) == len(everything)


def test_an_architecture_stays_in_one_shard(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_many=PARAMETRIZED)
    for k in range(3):
        result = suite_pytester.runpytest(
            "--collect-only", "-q", f"--shard-id={k}", "--num-shards=3"
        )
        for line in collected(result):
            match = re.search(r"test_battery\[(\w+)-(\w+)\]", line)
            if match:
                expected = sharding.shard_of(f"architecture:{match.group(2)}", 3)
                assert expected == k, line


@pytest.mark.parametrize(
    "arguments",
    [
        ["--shard-id=1"],
        ["--num-shards=2"],
        ["--shard-id=2", "--num-shards=2"],
        ["--shard-id=-1", "--num-shards=2"],
        ["--shard-id=0", "--num-shards=0"],
    ],
)
def test_bad_shard_options_are_usage_errors(
    suite_pytester: pytest.Pytester, arguments: list[str]
) -> None:
    suite_pytester.makepyfile(test_many=PARAMETRIZED)
    result = suite_pytester.runpytest(*arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shard-id*"])


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
