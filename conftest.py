"""Root conftest: the whole suite's pytest wiring lives in test/common plugins.

Keeping behaviour in importable modules (not here) lets the framework tests load
each plugin into a pytester sandbox and lets coverage measure it.
"""

from hypothesis import settings

# Registered here, before pytest_configure, so `--hypothesis-profile` can name
# them.  A bare `pytest` is the inner loop and tries few examples; every nox
# session passes `--hypothesis-profile=thorough` (noxfile.py).
settings.register_profile("quick", max_examples=15, deadline=None)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile("quick")

pytest_plugins = [
    "pytester",
    "test.common.plugins.gating",
    "test.common.plugins.gate_folding",
    "test.common.plugins.battery_report",
    "test.common.plugins.sharding",
    "test.common.plugins.crashed_workers",
    "test.common.plugins.model_source",
    "test.common.plugins.worker_records",
    "test.common.plugins.benchmark_plugin",
    "test.common.plugins.golden_plugin",
    "test.common.plugins.expectations",
    "test.common.results.recorder",
    "test.common.plugins.backend_report",
]
