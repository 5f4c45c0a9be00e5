"""Plugin: `--dist loadgroup` survives a crashed xdist worker instead of hanging.

A native crash (OpenVINO's converter raises SIGFPE on one model) kills the xdist
worker running it.  xdist reports that item as failed and starts a replacement, but
pytest-xdist 3.8.0's group scheduler then hangs the whole run (pytest-xdist issues
#1323 and #1327, fixed on its main branch after 3.8.0, unreleased; #1371, open):

- it puts the dead worker's whole workload back on the queue, the crashed item
  (still pending) and the groups it had finished: the replacement runs the crashed
  item again (and dies again), and a finished group is sent as an empty batch that
  never completes;
- it gives the replacement one group, and a worker runs an item only once it knows
  the next one (or is told to stop): a group of one pending item waits forever.

`CrashTolerantGroupScheduling` keeps xdist's scheduler and changes `remove_node`
and `schedule` only: the crashed item counts as done (xdist has already reported it
failed), only groups with pending items go back on the queue, and a replacement gets
work until it can run (as xdist's first distribution does).  Used for `--dist
loadgroup` (every model session); drop it when a pytest-xdist release has the fixes.
"""

from __future__ import annotations

from typing import Any

import pytest


def make_scheduler_class() -> type:
    from xdist.scheduler import LoadGroupScheduling

    class CrashTolerantGroupScheduling(LoadGroupScheduling):
        def remove_node(self, node: Any) -> str | None:
            workload = self.assigned_work.pop(node)
            if not self._pending_of(workload):
                return None
            crashed = next(
                nodeid
                for unit in workload.values()
                for nodeid, completed in unit.items()
                if not completed
            )
            for unit in workload.values():
                if crashed in unit:
                    unit[crashed] = True  # reported failed by xdist: not run again
            for scope, unit in workload.items():
                if not all(unit.values()):
                    self.workqueue[scope] = unit
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

        def schedule(self) -> None:
            if self.collection is None:
                super().schedule()
                return
            for node in self.nodes:  # a replacement: enough work to start running
                self._reschedule(node)
                self._reschedule(node)

    return CrashTolerantGroupScheduling


class CrashTolerantScheduler:
    """The xdist hook, registered only where xdist is loaded (its hook must exist)."""

    @pytest.hookimpl(trylast=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadgroup":
            return None
        return make_scheduler_class()(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(CrashTolerantScheduler(), "crash-tolerant-scheduler")
