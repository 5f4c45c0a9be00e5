"""The report's HTML: plotly figures, small escaped tables, inline style and glue script.

report.py reads the database; this module only turns what it read into one page.
"""

from __future__ import annotations

import html
import json
from typing import Any

TEMPLATE = "plotly_white"
ROW_HEIGHT = 18
#: The page's own script: filters the matrix and picks the trend plot's architecture.
#: Everything it draws goes through Plotly's API on data already in the page.
GLUE_SCRIPT = """
(function () {
  const gd = document.getElementById("matrix");
  const modality = JSON.parse(document.getElementById("matrix-modality-data").textContent);
  const trace = gd.data[0];
  const full = {
    y: Array.from(trace.y),
    z: trace.z.map((row) => Array.from(row)),
    customdata: trace.customdata.map((row) => Array.from(row)),
  };
  const filter = document.getElementById("matrix-filter");
  const select = document.getElementById("matrix-modality");
  const count = document.getElementById("matrix-count");
  function applyFilter() {
    const needle = filter.value.trim().toLowerCase();
    const wanted = select.value;
    const keep = [];
    full.y.forEach((name, index) => {
      if (name.toLowerCase().includes(needle) && (!wanted || modality[name] === wanted)) {
        keep.push(index);
      }
    });
    Plotly.restyle(gd, {
      y: [keep.map((i) => full.y[i])],
      z: [keep.map((i) => full.z[i])],
      customdata: [keep.map((i) => full.customdata[i])],
    }, [0]);
    Plotly.relayout(gd, {height: Math.max(300, ROW_HEIGHT * keep.length + 160)});
    count.textContent = keep.length + " of " + full.y.length + " architectures shown";
  }
  filter.addEventListener("input", applyFilter);
  select.addEventListener("change", applyFilter);

  const series = JSON.parse(document.getElementById("trend-data").textContent);
  const pick = document.getElementById("trend-pick");
  function drawTrend() {
    const s = series[pick.value];
    Plotly.react("trend", [
      {x: s.x, y: s.median, name: "median forward latency (ms)", mode: "lines+markers",
       error_y: {type: "data", array: s.spread, visible: true}},
      {x: s.regression_x, y: s.regression_y, name: "regression", mode: "markers",
       marker: {color: "#c62828", size: 16, symbol: "x"}},
    ], {title: {text: pick.value}, height: 360, margin: {t: 40},
        template: TEMPLATE_JSON,
        yaxis: {title: {text: "forward latency, ms"}, rangemode: "tozero"}});
  }
  pick.addEventListener("change", drawTrend);
  if (pick.value) {
    drawTrend();
  }
})();
"""
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table.plain { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
table.plain td, table.plain th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
.chip { display: inline-block; padding: 1px 8px; margin-right: 6px; color: white;
        border-radius: 3px; font-size: 0.85em; }
.controls { margin: 0.5em 0; } .controls input { width: 22em; }
.meta { color: #555; font-size: 0.9em; }
.regression { color: #c62828; font-weight: bold; }
"""


def _escape(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{_escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f'<table class="plain"><tr>{head}</tr>{body}</table>'


def _json_script(element_id: str, value: Any) -> str:
    # "</" cannot end the script element early once escaped.
    text = json.dumps(value).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _figure(figure: Any, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def header(data: dict[str, Any]) -> str:
    latest = data["runs"][-1]
    versions = json.loads(latest["versions"] or "{}")
    shown = ", ".join(
        f"{name} {versions[name]}" for name in ("torch", "transformers") if versions.get(name)
    )
    dirty = " (uncommitted changes)" if latest["git_dirty"] else ""
    legend = _legend(data["outcome_colours"])
    backends = ' · <a href="#backends">backends</a>' if data["backends"] else ""
    return (
        "<h1>Model test results</h1>"
        f'<p class="meta">{len(data["runs"])} complete runs ({data["incomplete"]} incomplete); '
        f"latest {_escape(latest['run_id'][:12])} at {latest['started_at']:%Y-%m-%d %H:%M} UTC "
        f"on {_escape(latest['platform'])}, commit {_escape((latest['git_commit'] or '')[:10])}"
        f"{dirty}; {_escape(shown)}</p><p>{legend}</p>"
        f'<p class="meta"><a href="#matrix-section">matrix</a>{backends} · '
        '<a href="#rates">pass rates</a> · '
        '<a href="#changes">what changed</a> · <a href="#latency">latency and memory</a> · '
        '<a href="#failures">failures</a></p>'
    )


def _legend(colours: dict[str, str]) -> str:
    return "".join(
        f'<span class="chip" style="background:{colour}">{_escape(name)}</span>'
        for name, colour in colours.items()
    )


def _status_heatmap(matrix: dict[str, Any], colours: list[str], top: int, **cells: Any) -> Any:
    """Rows against columns, each cell coloured by its code (an index into `colours`),
    its hover text from matrix["hover"]; `cells` adds Heatmap arguments."""
    import plotly.graph_objects as go

    heatmap = go.Heatmap(
        z=matrix["z"],
        x=matrix["columns"],
        y=matrix["rows"],
        customdata=matrix["hover"],
        hovertemplate="%{customdata}<extra></extra>",
        colorscale=_step_scale(colours),
        zmin=-0.5,
        zmax=len(colours) - 0.5,
        showscale=False,
        xgap=1,
        ygap=1,
        **cells,
    )
    figure = go.Figure(heatmap)
    figure.update_layout(
        template=TEMPLATE,
        height=max(300, ROW_HEIGHT * len(matrix["rows"]) + top + 20),
        margin={"l": 200, "t": top, "r": 20, "b": 20},
        xaxis={"side": "top"},
        yaxis={"autorange": "reversed", "dtick": 1},
    )
    return figure


def _step_scale(colours: list[str]) -> list[list[Any]]:
    """A colour scale of one flat band per code 0..len-1 (zmin -0.5, zmax len - 0.5)."""
    steps = len(colours)
    scale: list[list[Any]] = []
    for index, colour in enumerate(colours):
        scale += [[index / steps, colour], [(index + 1) / steps, colour]]
    return scale


def matrix_section(data: dict[str, Any]) -> str:

    matrix = data["matrix"]
    figure = _status_heatmap(matrix, list(data["outcome_colours"].values()), top=140)
    figure.update_layout(xaxis={"tickangle": -45})
    modalities = sorted(set(matrix["modality"]))
    options = "".join(f'<option value="{_escape(m)}">{_escape(m)}</option>' for m in modalities)
    return (
        '<h2 id="matrix-section">Compatibility matrix</h2>'
        '<p class="meta">Each architecture\'s latest outcome per platform and check; '
        "hover a cell for the reason.</p>"
        '<div class="controls">'
        '<input id="matrix-filter" placeholder="filter architectures by name">'
        f' <select id="matrix-modality"><option value="">all modalities</option>{options}</select>'
        f' <span id="matrix-count">{len(matrix["rows"])} of {len(matrix["rows"])} architectures '
        "shown</span></div>"
        + _json_script(
            "matrix-modality-data", dict(zip(matrix["rows"], matrix["modality"], strict=True))
        )
        + _figure(figure, "matrix")
    )


def backends_section(data: dict[str, Any]) -> str:
    """Architectures against backends: the latest status, the latency ratio in the cell."""
    matrix = data["backends"]
    if not matrix:
        return ""
    colours = list(data["backend_colours"].values())
    figure = _status_heatmap(matrix, colours, top=100, text=matrix["text"], texttemplate="%{text}")
    return (
        '<h2 id="backends">Backends</h2>'
        '<p class="meta">Each architecture\'s latest status per backend '
        "(test/improved/test_backends.py) against eager on the same inputs; the cell "
        "reads the backend's latency relative to eager (x0.5: twice as fast). Hover a "
        f"cell for the difference and the reason. {len(matrix['rows'])} architectures.</p>"
        f"<p>{_legend(data['backend_colours'])}</p>" + _figure(figure, "backends-matrix")
    )


def _rates_figure(counts: dict[str, Any], title: str, colours: dict[str, str]) -> Any:
    import plotly.graph_objects as go

    keys = list(counts)
    figure = go.Figure(
        [
            go.Bar(
                name=outcome, x=keys, y=[counts[key][outcome] for key in keys], marker_color=colour
            )
            for outcome, colour in colours.items()
        ]
    )
    figure.update_layout(template=TEMPLATE, barmode="stack", title=title, height=360)
    return figure


def rates_section(data: dict[str, Any]) -> str:
    rows = []
    for modality, counts in data["by_modality"].items():
        total = sum(counts.values())
        rows.append([modality, total, counts["passed"], f"{100 * counts['passed'] / total:.1f}%"])
    weights = data["weights"]
    colours = data["outcome_colours"]
    return (
        '<h2 id="rates">Pass rates</h2>'
        f"<p>Tests with real weights: {weights.get('real', 0)}; tiny random: "
        f"{weights.get('tiny', 0)}; not recorded: {weights.get('unrecorded', 0)}.</p>"
        + _table(["modality", "tests", "passed", "pass rate"], rows)
        + _figure(
            _rates_figure(data["by_modality"], "outcomes by modality", colours), "rates-modality"
        )
        + _figure(_rates_figure(data["by_task"], "outcomes by task", colours), "rates-task")
    )


def changes_section(data: dict[str, Any]) -> str:
    lines = data["history"].lines()
    items = "".join(f"<li>{_escape(line.strip())}</li>" for line in lines)
    title = '<h2 id="changes">What changed since the previous run</h2>'
    return f'{title}<ul id="changes-list">{items}</ul>'


def latency_section(data: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    rows = data["latency"]
    megabytes = [
        None if r["peak_memory_bytes"] is None else round(r["peak_memory_bytes"] / 2**20, 1)
        for r in rows
    ]
    columns = {
        "architecture [platform]": [r["label"] for r in rows],
        "model class": [r["model_class"] for r in rows],
        "parameters": [f"{r['parameters']:,}" if r["parameters"] is not None else "" for r in rows],
        "median ms": [round(r["latency_median_ms"], 3) for r in rows],
        "spread ms": [round(r["latency_spread_ms"], 3) for r in rows],
        "peak memory MiB": megabytes,
        "against earlier runs": [r["verdict"] for r in rows],
        "last passed": [
            f"{r['last_passed']:%Y-%m-%d %H:%M}" if r["last_passed"] else "never" for r in rows
        ],
        "failing since": [
            f"{r['failing_since']:%Y-%m-%d %H:%M}" if r["failing_since"] else "" for r in rows
        ],
        "outcome changes": [r["changes"] for r in rows],
    }
    fill = ["#ffcdd2" if r["regression"] else "white" for r in rows]
    table = go.Figure(
        go.Table(
            header={"values": list(columns), "fill_color": "#eeeeee", "align": "left"},
            cells={"values": list(columns.values()), "fill_color": [fill], "align": "left"},
        )
    )
    table.update_layout(
        template=TEMPLATE, height=min(700, 60 + 28 * len(rows)), margin={"t": 10, "b": 10}
    )
    regressed = [r["label"] for r in rows if r["regression"]]
    labels = regressed + sorted(label for label in data["series"] if label not in regressed)
    options = "".join(
        f'<option value="{_escape(label)}">{_escape(label)}</option>' for label in labels
    )
    flagged = (
        f'<p class="regression">Regressions: {_escape(", ".join(regressed))}</p>'
        if regressed
        else "<p>No latency regression in the latest runs.</p>"
    )
    return (
        '<h2 id="latency">Latency and memory</h2>'
        '<p class="meta">Forward latency over 3 to 10 calls on the built model (median and median '
        "absolute deviation), peak memory of one forward, parameters. A regression: the suite's "
        "rule (median beyond +20% and Mann-Whitney p &lt; 0.01 against up to 5 earlier "
        "comparable runs) and the fastest call beyond the noise floor (x2).</p>"
        + flagged
        + _figure(table, "latency-table")
        + f'<div class="controls">trend of <select id="trend-pick">{options}</select></div>'
        + '<div id="trend"></div>'
        + _json_script("trend-data", data["series"])
    )


def failures_section(data: dict[str, Any]) -> str:
    parts = ['<h2 id="failures">Failures by kind</h2>']
    if not data["failures"]:
        parts.append("<p>No failures and no expected failures.</p>")
    for kind, rows in data["failures"].items():
        parts.append(f"<h3>{_escape(kind)} ({len(rows)})</h3>")
        ordered = sorted(rows, key=lambda r: (r["outcome"], r["architecture"], r["check_name"]))
        parts.append(
            _table(
                ["architecture", "check", "platform", "outcome", "reason"],
                [
                    [r["architecture"], r["check_name"], r["platform"], r["outcome"], r["reason"]]
                    for r in ordered
                ],
            )
        )
    return "".join(parts)


def render_page(data: dict[str, Any]) -> str:
    """The whole page: plotly.js and the glue inlined, no network needed to view it."""
    import plotly.io
    from plotly.offline import get_plotlyjs

    template = plotly.io.templates[TEMPLATE].to_plotly_json()
    glue = GLUE_SCRIPT.replace("ROW_HEIGHT", str(ROW_HEIGHT)).replace(
        "TEMPLATE_JSON", json.dumps(template)
    )
    sections = [
        header(data),
        matrix_section(data),
        backends_section(data),
        rates_section(data),
        changes_section(data),
        latency_section(data),
        failures_section(data),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Model test results</title>"
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        + "".join(sections)
        + f"<script>{glue}</script></body></html>"
    )
