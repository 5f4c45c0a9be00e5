"""Every architecture through every backend, compared with eager (docs/BACKENDS.md).

Ids read `test_backend[bert-onnx]`.  The backends are the entries of
test/common/backends/catalog.py; an architecture is run when its eager forward runs
(no whole-architecture or forward expected failure in the registry).  The outcome is
judged against the committed expectation test/common/data/backends/<backend>.csv:
as expected passes (or xfails, for an expected failure), a new failure or an
unexpected pass fails and prints the command that updates the file.  A backend on an
accelerator (`test_backend[bert-export-cuda]`) runs where its platform is selected.
An item recorded as `crash` (it killed its process) is xfailed without running.  A
backend whose package is missing is a skip naming it.

An architecture's model is built once and its backends share the artifacts (export
feeds onnx and openvino); under xdist `--dist loadgroup` keeps them on one worker.
torch is imported inside the test only: collecting this module imports neither torch
nor transformers.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest

from test.common.backends.catalog import BACKENDS_BY_NAME, SAMPLES, select
from test.common.models.expectations import missing_packages
from test.common.models.registry import load_registry
from test.common.plugins.backend_report import check_observation, recorded_crash
from test.common.plugins.gating import selected_platforms

pytestmark = [pytest.mark.model_test, pytest.mark.model]


def _backends_to_run(config: pytest.Config) -> list[Any]:
    """The backends asked for.  Unless named one by one, a backend on an accelerator
    (`export-cuda`) is left out where its platform is not selected (`--device cpu`, or
    `auto` on a machine without it), as the battery leaves out absent platforms; named,
    it is collected and skipped, naming what its platform's probe found."""
    requested = config.getoption("--backends")
    backends = select(requested)
    if requested and requested.strip() != "all":
        return list(backends)
    platforms = {"cpu", *selected_platforms(config)}
    return [backend for backend in backends if backend.platform in platforms]


def _params(config: pytest.Config) -> list[Any]:
    backends = _backends_to_run(config)
    sample = config.getoption("--backend-sample")
    registry = load_registry()
    names = SAMPLES[sample] if sample else sorted(registry)
    params = []
    for model_type in names:
        if registry[model_type].expected_failure_of("forward"):
            continue  # no eager forward to compare with (the battery xfails it)
        for backend in backends:
            marks = [pytest.mark.xdist_group(model_type)]
            if backend.marker:
                marks.append(getattr(pytest.mark, backend.marker))
            if backend.timeout is not None:
                marks.append(pytest.mark.timeout(backend.timeout))
            params.append(
                pytest.param(
                    model_type, backend.name, id=f"{model_type}-{backend.name}", marks=marks
                )
            )
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize(("model_type", "backend_name"), _params(metafunc.config))


#: The one architecture whose Work this process holds: consecutive items of the same
#: architecture share it; the next architecture releases it.
_CURRENT: dict[str, Any] = {}


def work_for(model_type: str) -> Any:
    if model_type not in _CURRENT:
        for work in _CURRENT.values():
            work.close()
        _CURRENT.clear()
        gc.collect()
        _CURRENT[model_type] = _build_work(model_type)
    return _CURRENT[model_type]


def _build_work(model_type: str) -> Any:
    import torch

    from test.common.backends.work import Work
    from test.common.models import model_inputs, tiny_models

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)  # one worker per core already (as the battery)
    tiny = tiny_models.build_tiny_model(model_type)
    recipe = model_inputs.recipe_for(tiny.model, load_registry()[model_type].inputs)
    torch.manual_seed(0)  # the battery's golden seed, for the few models that draw in eval
    return Work(tiny.model, model_inputs.make_inputs(recipe), recipe.output)


def test_backend(model_type: str, backend_name: str, request: pytest.FixtureRequest) -> None:
    backend = BACKENDS_BY_NAME[backend_name]
    # Decided before building the model, and never recorded in an expectation file.
    needed = missing_packages(load_registry()[model_type].requires)
    if needed:  # the architecture's own packages (timm, natten, ...), as in the battery
        pytest.skip(f"{model_type} needs {', '.join(needed)}, which is not installed")
    missing = backend.missing_packages_with_needs()
    if missing:
        pytest.skip(f"{backend_name} needs the {', '.join(missing)} package, not installed")
    absent = backend.absent_api()
    if absent:  # an API the browser does not expose, probed once per process
        pytest.skip(f"{backend_name}: {absent}")
    recorded_crash(request.node, model_type, backend_name)  # not run: it killed its process
    observation = work_for(model_type).observe(backend)
    check_observation(request.node, model_type, backend_name, observation)
