"""Plugin: split a run across CI runners, and size `-n auto` by free memory.

`--shard-id K --num-shards N` keeps the tests of shard K (0-based) and deselects the
rest.  A test's shard comes from a stable hash of its architecture (the battery's
`architecture` parameter) or model class (the task heads' `model_class`) or, for other
tests, of its node id without parameters: a model's tests stay together (built once),
and every test lands in exactly one shard whatever else is collected.

`-n auto` (pytest-xdist) starts one worker per CPU, capped so that every worker has
`MEMORY_PER_WORKER` of the memory available now: a tiny model battery worker peaks
around one GiB, and a swapping machine is slower than fewer workers.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest

#: Memory a battery worker may need at its peak.
MEMORY_PER_WORKER = 1536 * 1024 * 1024


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sharding")
    group.addoption(
        "--shard-id",
        type=int,
        default=None,
        metavar="K",
        help="run only shard K (0-based) of --num-shards",
    )
    group.addoption(
        "--num-shards",
        type=int,
        default=None,
        metavar="N",
        help="split the collected tests into N shards (see --shard-id)",
    )


def shard_options(config: pytest.Config) -> tuple[int, int] | None:
    """(shard id, number of shards) from the command line, None when not sharding."""
    return validate_shards(config.getoption("--shard-id"), config.getoption("--num-shards"))


def validate_shards(shard_id: int | None, num_shards: int | None) -> tuple[int, int] | None:
    """The shard options checked: both or neither, and 0 <= shard id < number of shards."""
    if shard_id is None and num_shards is None:
        return None
    if shard_id is None or num_shards is None:
        raise pytest.UsageError("--shard-id and --num-shards go together")
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise pytest.UsageError(
            f"--shard-id must be in [0, --num-shards), got --shard-id {shard_id} "
            f"--num-shards {num_shards}"
        )
    return shard_id, num_shards


#: The parameters whose value keeps a model's tests in one shard (built once there),
#: with the key they share: the battery's architecture and the backends' model_type
#: (one architecture, one build), the task heads' model class.
MODEL_PARAMETERS = {
    "architecture": "architecture",
    "model_type": "architecture",
    "model_class": "model_class",
}


def shard_key(item: Any) -> str:
    """What decides an item's shard: its architecture or model class, else its
    unparametrized id."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name, key in MODEL_PARAMETERS.items():
        if name in params:
            return f"{key}:{params[name]}"
    return item.nodeid.split("[", 1)[0]


def shard_of(key: str, num_shards: int) -> int:
    """A stable shard for `key` (crc32: the same on every machine and Python)."""
    return zlib.crc32(key.encode("utf-8")) % num_shards


def pytest_configure(config: pytest.Config) -> None:
    shard_options(config)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    options = shard_options(config)
    if options is None:
        return
    shard_id, num_shards = options
    kept, deselected = [], []
    for item in items:
        (kept if shard_of(shard_key(item), num_shards) == shard_id else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept


def available_memory() -> int | None:
    """Bytes of memory available now (Linux /proc/meminfo), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def worker_count(cpus: int, memory: int | None, per_worker: int = MEMORY_PER_WORKER) -> int:
    """Workers for `-n auto`: one per CPU, at most one per `per_worker` bytes, at least 1."""
    count = max(1, cpus)
    if memory is not None:
        count = min(count, max(1, memory // per_worker))
    return count


@pytest.hookimpl(optionalhook=True)  # xdist's hook: the suite also runs without xdist
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return worker_count(cpus or 1, available_memory())
