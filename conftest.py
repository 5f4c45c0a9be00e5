"""Root conftest: the whole suite's pytest wiring lives in test/common plugins.

Keeping behaviour in importable modules (not here) lets the framework tests load
each plugin into a pytester sandbox and lets coverage measure it.
"""

pytest_plugins = [
    "pytester",
    "test.common.gating",
    "test.common.battery_report",
    "test.common.sharding",
    "test.common.model_source",
    "test.common.worker_records",
    "test.common.benchmark_plugin",
]
