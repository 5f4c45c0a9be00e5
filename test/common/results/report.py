"""The report: one self-contained HTML page drawn from the results database.

Charts and tables are plotly figures (plotly.py writes them, plotly.js draws them):
plotly is well kept, draws heatmaps, bars, line plots and tables with hover text out
of the box, and its JavaScript can be inlined (``get_plotlyjs``), so the page needs
no network when it is opened.  The only script of our own is the glue that filters
the matrix and picks the architecture of the trend plot (Plotly.react on data kept
in the page).  Sections, in order: the compatibility matrix, the backends matrix
(only when the database holds backend results), pass rates, what changed, latency
and memory, failures by kind.
"""

from __future__ import annotations

import collections
import html
import re
from pathlib import Path
from typing import Any

from test.common.performance.performance_baseline import write_atomically
from test.common.results import db, page
from test.common.results.history import (
    BAD,
    architecture_trends,
    complete_runs,
    history,
    latency_samples,
    latency_verdict,
)

#: Matrix cell values, in the order of the colour scale.
OUTCOME_CODES = {"passed": 0, "xfailed": 1, "skipped": 2, "failed": 3, "error": 4}
OUTCOME_COLOURS = {
    "passed": "#2e7d32",
    "xfailed": "#f9a825",
    "skipped": "#9e9e9e",
    "failed": "#c62828",
    "error": "#6a1b9a",
}
#: Failure kinds, first match wins; the patterns read the one-line reason.
FAILURE_KINDS: tuple[tuple[str, str], ...] = (
    ("missing dependency", r"no module named|is not installed|requires the|importerror"),
    ("numeric", r"\bnan\b|\binf\b|not finite|overflow"),
    ("tolerance", r"differ|difference|toleran|golden|above|allowed|!="),
)
BUILD_CHECKS = frozenset({"loads", "build"})
#: Backend statuses (test/common/backends/expectations.py), in the order of the colours.
BACKEND_COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "not reached": "#9e9e9e",
    "crash": "#4a148c",
}
LATEST_BACKENDS = """
SELECT b.*, r.started_at FROM backend_results b JOIN runs r USING (run_id)
WHERE r.complete
QUALIFY row_number() OVER (
    PARTITION BY b.architecture, b.backend, b.platform ORDER BY r.started_at DESC) = 1
"""
LATEST_OUTCOMES = """
SELECT o.*, r.started_at FROM outcomes o JOIN runs r USING (run_id)
WHERE r.complete AND o.architecture IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY o.architecture, o.platform, o.module, o.check_name
    ORDER BY r.started_at DESC) = 1
"""


def failure_kind(row: dict[str, Any]) -> str:
    """build, forward, tolerance, missing dependency or numeric, from check and reason."""
    reason = (row.get("reason") or "").lower()
    if re.search(FAILURE_KINDS[0][1], reason):
        return FAILURE_KINDS[0][0]
    if row.get("check_name") in BUILD_CHECKS or row.get("outcome") == "error":
        return "build"
    for kind, pattern in FAILURE_KINDS[1:]:
        if re.search(pattern, reason):
            return kind
    return "forward"


def matrix_data(latest: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows (architectures grouped by modality), columns (platform · check), codes, hover."""
    columns = sorted({f"{row['platform']} · {row['check_name']}" for row in latest})
    modality_of: dict[str, str] = {}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for row in latest:
        modality_of[row["architecture"]] = row["modality"] or "unknown"
        cells[(row["architecture"], f"{row['platform']} · {row['check_name']}")] = row
    rows = sorted(modality_of, key=lambda name: (modality_of[name], name))
    z, hover = [], []
    for architecture in rows:
        found = [cells.get((architecture, column)) for column in columns]
        z.append([OUTCOME_CODES.get(cell["outcome"]) if cell else None for cell in found])
        hover.append(
            [
                _hover(architecture, column, cell)
                for column, cell in zip(columns, found, strict=True)
            ]
        )
    return {
        "rows": rows,
        "modality": [modality_of[name] for name in rows],
        "columns": columns,
        "z": z,
        "hover": hover,
    }


def _hover(architecture: str, column: str, cell: dict[str, Any] | None) -> str:
    if cell is None:
        return f"{architecture} · {column}: not run"
    text = f"<b>{html.escape(architecture)}</b> · {html.escape(column)}: {cell['outcome']}"
    if cell.get("model_class"):
        text += f" ({html.escape(cell['model_class'])})"
    wrapped = _wrapped(cell.get("reason") or "")
    return text + (f"<br>{wrapped}" if wrapped else "")


def _wrapped(reason: str) -> str:
    """The reason escaped and broken every ~90 characters (hover boxes do not wrap)."""
    return re.sub(r"(.{1,90})(\s|$)", r"\1<br>", html.escape(reason)).rstrip("<br>")


def backend_matrix(connection: Any) -> dict[str, Any] | None:
    """Architectures (rows) against backends (columns): each cell the latest status
    recorded in any complete run, its latency ratio to eager as text, the reason and
    difference on hover.  None when the database holds no backend result."""
    if not db.has_table(connection, "backend_results"):
        return None
    latest = db.rows(connection, LATEST_BACKENDS)
    if not latest:
        return None
    several = len({row["platform"] for row in latest}) > 1
    cells = {}
    for row in latest:
        column = f"{row['platform']} · {row['backend']}" if several else row["backend"]
        cells[(row["architecture"], column)] = row
    columns = sorted({column for _, column in cells}, key=_catalog_order)
    rows = sorted({architecture for architecture, _ in cells})
    codes = {status: code for code, status in enumerate(BACKEND_COLOURS)}
    z, text, hover = [], [], []
    for architecture in rows:
        found = [cells.get((architecture, column)) for column in columns]
        z.append([codes.get(cell["status"]) if cell else None for cell in found])
        text.append([_ratio_text(cell) for cell in found])
        hover.append(
            [_backend_hover(architecture, c, cell) for c, cell in zip(columns, found, strict=True)]
        )
    return {"rows": rows, "columns": columns, "z": z, "text": text, "hover": hover}


def _catalog_order(column: str) -> tuple[int, str]:
    """Backends in the catalog's order (export first), unknown ones after, by name."""
    from test.common.backends.catalog import BACKENDS_BY_NAME  # imports no torch

    known = list(BACKENDS_BY_NAME)
    backend = column.split(" · ")[-1]
    return (known.index(backend) if backend in known else len(known), column)


def _ratio_text(cell: dict[str, Any] | None) -> str:
    """x0.45, x1.2, x37: two significant digits, no exponent."""
    ratio = cell and cell["latency_ratio"]
    if not ratio:
        return ""
    return f"x{ratio:.2g}" if ratio < 10 else f"x{ratio:.0f}"


def _backend_hover(architecture: str, column: str, cell: dict[str, Any] | None) -> str:
    if cell is None:
        return f"{html.escape(architecture)} · {html.escape(column)}: not run"
    parts = [f"<b>{html.escape(architecture)}</b> · {html.escape(column)}: {cell['status']}"]
    if cell["difference"] is not None:
        parts.append(f"difference from eager {cell['difference']:.3g}")
    if cell["latency_ratio"] is not None:
        parts.append(f"latency x{cell['latency_ratio']:.3g} of eager")
    parts.append(f"recorded {cell['started_at']:%Y-%m-%d %H:%M} UTC")
    wrapped = _wrapped(cell["reason"] or "")
    return "<br>".join(parts + ([wrapped] if wrapped else []))


def pass_rates(latest: list[dict[str, Any]], key: str) -> dict[str, collections.Counter]:
    """outcome counts per `key` value (modality or task)."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in latest:
        counts[row[key] or f"no {key}"][row["outcome"]] += 1
    return dict(sorted(counts.items()))


def latency_rows(connection: Any, runs: list[dict[str, Any]]) -> tuple[list[dict], dict]:
    """The latest measurement of every (architecture, platform) with its verdict and trend,
    and the series for the trend plot: label -> {x, median, spread, regressions}."""
    table, series = [], {}
    trends = architecture_trends(connection, runs)
    by_fingerprint = collections.defaultdict(list)
    for run in runs:
        by_fingerprint[run["fingerprint_id"]].append(run)
    several = len(by_fingerprint) > 1
    started = {run["run_id"]: run["started_at"] for run in runs}
    for fingerprint, group in by_fingerprint.items():
        for (architecture, platform), entries in latency_samples(connection, group).items():
            verdicts = [latency_verdict(entries, index) for index in range(len(entries))]
            label = f"{architecture} [{platform}]" + (f" {fingerprint[:6]}" if several else "")
            series[label] = _series(entries, verdicts, started)
            latest, trend = entries[-1][1], trends.get((architecture, platform), {})
            table.append(
                {
                    "label": label,
                    **latest,
                    "verdict": verdicts[-1].describe(),
                    "regression": verdicts[-1].is_regression,
                    "last_passed": trend.get("last_passed"),
                    "failing_since": trend.get("failing_since"),
                    "changes": trend.get("changes", 0),
                }
            )
    table.sort(key=lambda row: (not row["regression"], -(row["latency_median_ms"] or 0)))
    return table, series


def _series(entries: list, verdicts: list, started: dict) -> dict[str, list]:
    times = [started[run_id].strftime("%Y-%m-%d %H:%M:%S") for run_id, _ in entries]
    flagged = [index for index, verdict in enumerate(verdicts) if verdict.is_regression]
    return {
        "x": times,
        "median": [row["latency_median_ms"] for _, row in entries],
        "spread": [row["latency_spread_ms"] for _, row in entries],
        "regression_x": [times[index] for index in flagged],
        "regression_y": [entries[index][1]["latency_median_ms"] for index in flagged],
    }


def gather(connection: Any) -> dict[str, Any]:
    """Everything the page shows, read from the database."""
    runs = complete_runs(connection)
    if not runs:
        raise db.ResultsDatabaseError("no complete run recorded yet: nothing to report")
    latest = db.rows(connection, LATEST_OUTCOMES)
    incomplete = connection.execute("SELECT count(*) FROM runs WHERE NOT complete").fetchone()[0]
    table, series = latency_rows(connection, runs)
    failures = collections.defaultdict(list)
    for row in latest:
        if row["outcome"] in BAD or row["outcome"] == "xfailed":
            failures[failure_kind(row)].append(row)
    weights = collections.Counter(row["weights"] for row in latest)
    return {
        "runs": runs,
        "incomplete": incomplete,
        "matrix": matrix_data(latest),
        "backends": backend_matrix(connection),
        "backend_colours": BACKEND_COLOURS,
        "by_modality": pass_rates(latest, "modality"),
        "by_task": pass_rates(latest, "task"),
        "weights": weights,
        "history": history(connection),
        "latency": table,
        "series": series,
        "failures": dict(sorted(failures.items())),
        "outcome_colours": OUTCOME_COLOURS,
    }


def write_report(database: Path | str, output: Path | str) -> int:
    """Write the report of `database` to `output` (atomically); return its size in bytes."""
    with db.connect(database) as connection:
        data = gather(connection)
    text = page.render_page(data)
    write_atomically(Path(output), text)
    return len(text.encode("utf-8"))
