"""Fold a gated test function into one item, so a plain `pytest` stays fast.

With model tests gated, the battery's test functions (and any other module of
model tests) would each be expanded into one item per architecture and platform:
thousands of items built, marked and reported as skipped, seconds of CPU for
nothing.  Here a test function whose gate is closed (marked `model_test` without
`--run-model-tests`, or `slow` without `--run-slow`, on the function, its class or
its module) becomes one item that stands for all its parametrizations; the gating
plugin reports it once and counts every test it stands for in its summary line.

The parametrizations are still generated (so the count is exact) but no item is
built for them.  Nothing is folded where the individual items matter:
`--collect-only` lists every test, and `-k`, `-m` or a node id (`::`) select
among them.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from _pytest.python import FunctionDefinition

from test.common.plugins.gating import GATED_TEST_COUNT, GATES, Gate


def folding_applies(config: pytest.Config) -> bool:
    """False where the run selects or lists individual tests."""
    option = config.option
    if option.collectonly or option.keyword or option.markexpr:
        return False
    return not any("::" in str(argument) for argument in config.args)


def _closed_gate_of(collector: pytest.Collector, function: Any) -> Gate | None:
    """The closed gate of a test function, from its own marks and its parents'."""
    own = getattr(function, "pytestmark", [])
    names = {mark.name for mark in (own if isinstance(own, list) else [own])}
    names.update(marker.name for marker in collector.iter_markers())
    for gate in GATES:
        if gate.marker in names and not collector.config.getoption(gate.flag):
            return gate
    return None


def parametrization_count(collector: pytest.Class | pytest.Module, name: str, function: Any) -> int:
    """How many items pytest would make of `function`: its parametrizations, run
    through every pytest_generate_tests hook, as pytest's own collection does."""
    module = collector.getparent(pytest.Module)
    cls_collector = collector.getparent(pytest.Class)
    cls = cls_collector.obj if cls_collector is not None else None
    definition = FunctionDefinition.from_parent(collector, name=name, callobj=function)
    metafunc = pytest.Metafunc(
        definition=definition,
        fixtureinfo=definition._fixtureinfo,
        config=collector.config,
        cls=cls,
        module=module.obj if module is not None else None,
        _ispytest=True,
    )
    methods = [
        owner.pytest_generate_tests
        for owner in (module.obj if module is not None else None, cls and cls())
        if owner is not None and hasattr(owner, "pytest_generate_tests")
    ]
    collector.ihook.pytest_generate_tests.call_extra(methods, {"metafunc": metafunc})
    return max(1, len(metafunc._calls))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Class | pytest.Module, name: str, obj: Any
) -> pytest.Item | None:
    """One item for a gated test function, standing for all its parametrizations."""
    if not (inspect.isfunction(obj) and collector.istestfunction(obj, name)):
        return None
    if not folding_applies(collector.config) or _closed_gate_of(collector, obj) is None:
        return None
    count = parametrization_count(collector, name, obj)
    item = pytest.Function.from_parent(collector, name=name, callobj=obj)
    item.stash[GATED_TEST_COUNT] = count
    return item
