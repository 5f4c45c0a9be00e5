"""Trends across recorded runs: what changed, what flaps, what got slower.

Runs are compared only with *comparable* runs: complete, on the same platform and
the same machine fingerprint (hardware, library versions, worker count: see
recorder.run_facts).  Outcomes are compared test by test (node id); latency
architecture by architecture, with the suite's one regression rule
(test/common/performance/regression.py: median ratio beyond the tolerance AND a
one-sided Mann-Whitney U p < 0.01) on the latest run's forward times against
the pooled times of up to ``LATENCY_WINDOW`` comparable runs before it, and the
fastest call must have moved beyond ``NOISE_FLOOR`` (the machine's noise).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from test.common.performance.regression import Status, Verdict, decide
from test.common.results import db

#: Outcomes that mean something is wrong (xfailed and skipped are expected states).
BAD = frozenset({"failed", "error"})
#: Worst first: an architecture's verdict in a run is its worst check.
SEVERITY = ("error", "failed", "xfailed", "skipped", "passed")
FLAP_WINDOW = 10
#: Good/bad changes within FLAP_WINDOW runs that make a test "flapping".
FLAP_CHANGES = 3
LATENCY_WINDOW = 5
#: Allowed slowdown of the median before the rank test is asked (as for benchmarks).
LATENCY_TOLERANCE = 0.20
#: Ten calls in a row share the machine's load, so the rank test between two runs is
#: overconfident: a slowdown must also slow the fastest call by this factor.  Measured
#: on a shared 2-core machine (docs/RESULTS.md): between two runs of the same code the
#: fastest of 10 calls moved by up to x1.78, the median by up to x16.
NOISE_FLOOR = 2.0
CATEGORIES = (
    "newly failing",
    "newly passing",
    "flapping",
    "slower",
    "faster",
    "backend newly failing",
    "backend newly passing",
    "backend slower",
    "backend faster",
)
#: The one good backend status; "fail" and "not reached" are both not passing.
BACKEND_PASS = "pass"
#: Earlier latency ratios a backend's ratio needs before it is compared.  Measured here
#: (docs/RESULTS.md): between two runs of the same code 7 of 22 ratios moved by x2 or
#: more; against the median of 3 or 4 earlier runs none did.
RATIO_MIN_EARLIER = 3


@dataclasses.dataclass(frozen=True)
class Change:
    """One line of the history: what changed, where, and the evidence."""

    category: str
    architecture: str | None
    check: str | None
    platform: str | None
    detail: str

    def describe(self) -> str:
        where = "/".join(part for part in (self.architecture, self.check) if part)
        return f"{self.category}: {where} [{self.platform}] {self.detail}".rstrip()


@dataclasses.dataclass
class History:
    """The latest run against the comparable run before it."""

    latest: dict[str, Any]
    previous: dict[str, Any] | None
    changes: list[Change]
    compared_outcomes: int = 0
    compared_latencies: int = 0
    compared_backends: int = 0

    @property
    def nothing_changed(self) -> bool:
        return not self.changes

    def by_category(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {category: [] for category in CATEGORIES}
        for change in self.changes:
            grouped[change.category].append(change)
        return grouped

    def lines(self) -> list[str]:
        latest = _describe_run(self.latest)
        if self.previous is None:
            return [f"run {latest}: no earlier comparable run (same platform and fingerprint)"]
        head = [f"run {latest}", f"  against {_describe_run(self.previous)}"]
        if self.nothing_changed:
            backends = (
                f", {self.compared_backends} backend results compared"
                if self.compared_backends
                else ""
            )
            return [
                *head,
                f"nothing changed: {self.compared_outcomes} outcomes compared, latency of "
                f"{self.compared_latencies} architectures compared{backends}, no regression",
            ]
        body = []
        for category, changes in self.by_category().items():
            if changes:
                body.append(f"{category} ({len(changes)}):")
                body += [f"  {change.describe()}" for change in changes]
        return [*head, *body]


def _describe_run(run: dict[str, Any]) -> str:
    commit = (run.get("git_commit") or "no commit")[:10]
    dirty = " (dirty)" if run.get("git_dirty") else ""
    started = run["started_at"].strftime("%Y-%m-%d %H:%M:%S")
    return f"{run['run_id'][:12]} {started} UTC, {commit}{dirty}, {run['platform']}"


def complete_runs(connection: Any) -> list[dict[str, Any]]:
    return db.rows(connection, "SELECT * FROM runs WHERE complete ORDER BY started_at, run_id")


def comparable_runs(runs: Sequence[dict[str, Any]], latest: dict[str, Any]) -> list[dict]:
    """The runs comparable with `latest`, oldest first, ending with `latest`."""
    upto = [run for run in runs if run["started_at"] <= latest["started_at"]]
    return [
        run
        for run in upto
        if run["platform"] == latest["platform"]
        and run["fingerprint_id"] == latest["fingerprint_id"]
    ]


def _in_runs(connection: Any, table: str, columns: str, run_ids: Sequence[str]) -> list[dict]:
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    sql = f"SELECT run_id, {columns} FROM {table} WHERE run_id IN ({marks})"
    return db.rows(connection, sql, run_ids)


def _series(
    connection: Any,
    runs: Sequence[dict[str, Any]],
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
) -> dict[Any, list[tuple[str, dict]]]:
    """The rows of `table` in `runs`, grouped by the `key` columns' values (one value:
    that value; several: their tuple), each group as [(run id, row)] in run order."""
    order = {run["run_id"]: index for index, run in enumerate(runs)}
    found = _in_runs(connection, table, ", ".join(columns), list(order))
    series: dict[Any, list[tuple[str, dict]]] = collections.defaultdict(list)
    for row in sorted(found, key=lambda row: order[row["run_id"]]):
        values = tuple(row[column] for column in key)
        series[values if len(values) > 1 else values[0]].append((row["run_id"], row))
    return series


def outcome_series(
    connection: Any, runs: Sequence[dict[str, Any]]
) -> dict[str, list[tuple[str, dict]]]:
    """node id -> [(run id, outcome row)] in run order."""
    columns = ("node_id", "architecture", "check_name", "platform", "outcome", "reason")
    return _series(connection, runs, "outcomes", columns, ("node_id",))


def _changes_of(states: Iterable[bool]) -> int:
    return sum(1 for before, after in itertools.pairwise(states) if before != after)


def outcome_changes(
    series: dict[str, list[tuple[str, dict]]], latest_id: str, previous_id: str
) -> list[Change]:
    changes = []
    for entries in series.values():
        by_run = dict(entries)
        now, before = by_run.get(latest_id), by_run.get(previous_id)
        if now is None or before is None:
            continue
        bad_now, bad_before = now["outcome"] in BAD, before["outcome"] in BAD
        recent = [row["outcome"] in BAD for _, row in entries[-FLAP_WINDOW:]]
        flips = _changes_of(recent)
        if flips >= FLAP_CHANGES and bad_now != bad_before:
            category, detail = "flapping", f"{flips} changes in the last {len(recent)} runs"
        elif bad_now and not bad_before:
            category, detail = "newly failing", f"({before['outcome']} -> {now['outcome']})"
            detail += f": {now['reason']}" if now["reason"] else ""
        elif bad_before and not bad_now:
            category, detail = "newly passing", f"({before['outcome']} -> {now['outcome']})"
        else:
            continue
        changes.append(
            Change(category, now["architecture"], now["check_name"], now["platform"], detail)
        )
    return changes


def latency_samples(
    connection: Any, runs: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], list[tuple[str, dict]]]:
    """(architecture, platform) -> [(run id, measurement row)] in run order."""
    columns = (
        *("architecture", "platform", "latency_median_ms", "latency_spread_ms"),
        *("latency_samples_ms", "peak_memory_bytes", "parameters", "model_class"),
    )
    return _series(connection, runs, "measurements", columns, ("architecture", "platform"))


def latency_verdict(
    entries: Sequence[tuple[str, dict]],
    index: int,
    tolerance: float = LATENCY_TOLERANCE,
    noise_floor: float = NOISE_FLOOR,
) -> Verdict:
    """entries[index] against the pooled samples of up to LATENCY_WINDOW entries before it:
    the suite's rule, then the fastest calls must differ by more than `noise_floor`."""
    current = entries[index][1]["latency_samples_ms"] or []
    baseline = [
        sample
        for _, row in entries[max(0, index - LATENCY_WINDOW) : index]
        for sample in row["latency_samples_ms"] or []
    ]
    if not baseline:
        return Verdict(Status.MISSING_BASELINE)
    verdict = decide(baseline, current, tolerance, min_samples=db.MIN_CALLS)
    if verdict.status not in (Status.REGRESSION, Status.IMPROVEMENT):
        return verdict
    fastest = min(current) / min(baseline)
    if 1 / noise_floor < fastest < noise_floor:
        detail = f"fastest call x{fastest:.2f}, within the noise floor x{noise_floor:g}"
        return Verdict(Status.UNCHANGED, verdict.ratio, verdict.p_value, detail)
    return Verdict(verdict.status, verdict.ratio, verdict.p_value, f"fastest call x{fastest:.2f}")


def latency_changes(
    samples: dict[tuple[str, str], list[tuple[str, dict]]], latest_id: str, tolerance: float
) -> tuple[list[Change], int]:
    changes, compared = [], 0
    for (architecture, platform), entries in samples.items():
        if entries[-1][0] != latest_id or len(entries) < 2:
            continue
        verdict = latency_verdict(entries, len(entries) - 1, tolerance)
        # Too few samples or none before is no comparison: it is not counted as one.
        compared += verdict.status not in (Status.TOO_FEW_SAMPLES, Status.MISSING_BASELINE)
        if verdict.status in (Status.REGRESSION, Status.IMPROVEMENT):
            category = "slower" if verdict.is_regression else "faster"
            changes.append(Change(category, architecture, "forward", platform, verdict.describe()))
    return changes, compared


BackendKey = tuple[str, str, str]


def backend_series(
    connection: Any, runs: Sequence[dict[str, Any]]
) -> dict[BackendKey, list[tuple[str, dict]]]:
    """(architecture, backend, platform) -> [(run id, backend_results row)] in run order;
    empty for a database of schema version 1 read as it is."""
    if not db.has_table(connection, "backend_results"):
        return {}
    key = ("architecture", "backend", "platform")
    columns = (*key, "status", "difference", "latency_ratio", "reason")
    return _series(connection, runs, "backend_results", columns, key)


def _backend_status_change(now: dict, before: dict) -> tuple[str, str] | None:
    passes_now, passed_before = now["status"] == BACKEND_PASS, before["status"] == BACKEND_PASS
    if passes_now == passed_before:
        return None  # still passing, or still not (fail and "not reached" alike)
    detail = f"({before['status']} -> {now['status']})"
    if passed_before:
        return "backend newly failing", detail + (f": {now['reason']}" if now["reason"] else "")
    return "backend newly passing", detail


def _backend_ratio_change(
    entries: Sequence[tuple[str, dict]], noise_floor: float
) -> tuple[str, str] | None:
    """The latest latency ratio against the median of up to LATENCY_WINDOW before it."""
    ratio = entries[-1][1]["latency_ratio"]
    earlier = [
        row["latency_ratio"]
        for _, row in entries[-(LATENCY_WINDOW + 1) : -1]
        if row["latency_ratio"] is not None
    ]
    if ratio is None or len(earlier) < RATIO_MIN_EARLIER:
        return None
    baseline = statistics.median(earlier)
    moved = ratio / baseline
    if 1 / noise_floor < moved < noise_floor:
        return None
    category = "backend slower" if moved > 1 else "backend faster"
    detail = (
        f"latency x{ratio:.3g} of eager, was x{baseline:.3g} (median of {len(earlier)} "
        f"earlier runs): moved x{moved:.2f}, beyond the noise floor x{noise_floor:g}"
    )
    return category, detail


def backend_changes(
    series: dict[BackendKey, list[tuple[str, dict]]],
    latest_id: str,
    noise_floor: float = NOISE_FLOOR,
) -> tuple[list[Change], int]:
    """Backend results of run `latest_id` against their latest earlier observation."""
    changes, compared = [], 0
    for (architecture, backend, platform), entries in sorted(series.items()):
        if entries[-1][0] != latest_id or len(entries) < 2:
            continue
        compared += 1
        found = [
            _backend_status_change(entries[-1][1], entries[-2][1]),
            _backend_ratio_change(entries, noise_floor),
        ]
        changes += [
            Change(category, architecture, backend, platform, detail)
            for category, detail in filter(None, found)
        ]
    return changes, compared


def history(
    connection: Any, run_id: str | None = None, tolerance: float = LATENCY_TOLERANCE
) -> History:
    """What changed in run `run_id` (default: the latest complete run) since the
    comparable run before it."""
    runs = complete_runs(connection)
    if not runs:
        raise db.ResultsDatabaseError("no complete run recorded yet")
    chosen = [run for run in runs if run_id is None or run["run_id"].startswith(run_id)]
    if not chosen:
        raise db.ResultsDatabaseError(f"no complete run with an id starting {run_id!r}")
    latest = chosen[-1]
    window = comparable_runs(runs, latest)
    if len(window) < 2:
        return History(latest, None, [])
    previous = window[-2]
    series = outcome_series(connection, window[-FLAP_WINDOW:])
    changes = outcome_changes(series, latest["run_id"], previous["run_id"])
    compared = sum(1 for entries in series.values() if len(dict(entries)) >= 2)
    samples = latency_samples(connection, window[-(LATENCY_WINDOW + 1) :])
    slower_faster, timed = latency_changes(samples, latest["run_id"], tolerance)
    backends, compared_backends = backend_changes(
        backend_series(connection, window), latest["run_id"]
    )
    return History(
        latest, previous, changes + slower_faster + backends, compared, timed, compared_backends
    )


def architecture_trends(
    connection: Any, runs: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """(architecture, platform) -> its verdict per run (worst check), when it last passed,
    since when it has been failing, and how often it changed between good and bad."""
    verdicts: dict[tuple[str, str], dict[str, str]] = collections.defaultdict(dict)
    for rows in outcome_series(connection, runs).values():
        for run_id, row in rows:
            key = (row["architecture"], row["platform"])
            if row["architecture"] is None:
                continue
            worst = verdicts[key].get(run_id, "passed")
            verdicts[key][run_id] = min(worst, row["outcome"], key=SEVERITY.index)
    started = {run["run_id"]: run["started_at"] for run in runs}
    trends = {}
    for key, per_run in verdicts.items():
        ordered = [
            (run["run_id"], per_run[run["run_id"]]) for run in runs if run["run_id"] in per_run
        ]
        passed = [started[run_id] for run_id, verdict in ordered if verdict not in BAD]
        failing_since = None
        for run_id, verdict in reversed(ordered):
            if verdict not in BAD:
                break
            failing_since = started[run_id]
        trends[key] = {
            "verdicts": [verdict for _, verdict in ordered],
            "last_passed": passed[-1] if passed else None,
            "failing_since": failing_since,
            "changes": _changes_of(verdict in BAD for _, verdict in ordered),
        }
    return trends
