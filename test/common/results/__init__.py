"""Results history: every model run recorded in a local DuckDB database, its trends,
regressions and one self-contained HTML report (docs/RESULTS.md).

- db.py: the schema (with a version), opening with checks, writing under the lock;
- recorder.py: the pytest plugin that records a run (and the battery's measurements);
- history.py: what changed between runs, flapping, latency regressions;
- report.py: the HTML page (plotly, its JavaScript inlined);
- browser.py: headless Chromium driven over the DevTools pipe, for the report's test.

`python -m test.common.results history` and `python -m test.common.results report`.
"""
