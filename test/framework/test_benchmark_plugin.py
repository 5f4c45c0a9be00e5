"""The benchmark plugin end to end, in a pytester sandbox configured like the suite.

The sandbox's benchmarks record synthetic timings (no torch): 20 samples scaled by
the BENCH_FACTOR environment variable, so a regression can be staged exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from test.common.performance import performance_baseline

#: Every test here runs pytest in a sandbox, some with xdist workers: seconds each.
pytestmark = pytest.mark.slow

BENCHMARKS = """
import os

import pytest

from test.common.performance.measurement import TimingStats

CASES = [
    f"{os.environ.get('BENCH_PREFIX', 'arch')}{index}-float32-b1-s8"
    for index in range(int(os.environ.get("BENCH_COUNT", "3")))
]


@pytest.mark.benchmark
@pytest.mark.parametrize("case", CASES)
def test_latency(case, baseline_recorder):
    factor = float(os.environ.get("BENCH_FACTOR", "1.0"))
    samples = tuple((1000 + 7 * index) * factor for index in range(20))
    assert baseline_recorder.record(TimingStats(samples, "cpu", 0, 1)) == case


def test_not_a_benchmark():
    assert True
"""


@pytest.fixture
def sandbox(suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("BENCH_FACTOR", "BENCH_COUNT", "BENCH_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    suite_pytester.makepyfile(test_bench=BENCHMARKS)
    return suite_pytester


def baseline_file(pytester: pytest.Pytester) -> Path:
    return pytester.path / "test" / ".performance_baselines.json"


def entries(pytester: pytest.Pytester) -> dict:
    return json.loads(baseline_file(pytester).read_text())["entries"]


def record_baselines(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest("--update-baselines", *args)
    assert result.ret == 0, result.stdout.str()
    return result


def rerun_slower(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, factor: float, *args: str
) -> pytest.RunResult:
    """Record baselines, then run again with every timing scaled by `factor`."""
    record_baselines(pytester)
    monkeypatch.setenv("BENCH_FACTOR", str(factor))
    return pytester.runpytest(*args)


def edit_entries(pytester: pytest.Pytester, change: Callable[[str, dict], None]) -> None:
    """Hand-edit the baseline file: `change(key, entry)` for every entry."""
    document = json.loads(baseline_file(pytester).read_text())
    for key, entry in document["entries"].items():
        change(key, entry)
    baseline_file(pytester).write_text(json.dumps(document))


def test_xdist_workers_hand_every_entry_to_one_controller_write(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_COUNT", "60")
    writes: list[Path] = []
    real_write = performance_baseline.write_atomically

    def counted(path: Path, text: str) -> None:
        writes.append(path)
        real_write(path, text)

    monkeypatch.setattr(performance_baseline, "write_atomically", counted)
    result = record_baselines(sandbox, "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=61)
    assert len(entries(sandbox)) == 60
    assert writes == [baseline_file(sandbox)], "the controller writes once; workers never"
    assert result.stdout.str().count("baselines written: 60 entries") == 1


def test_benchmarks_are_deselected_under_xdist_with_one_line(sandbox: pytest.Pytester) -> None:
    result = sandbox.runpytest("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if "benchmarks deselected under -n" in line]
    assert lines == [
        "benchmarks deselected under -n: 3 (timings need a quiet machine; run them "
        "serially with `nox -s benchmarks`)"
    ]


def test_a_second_run_without_change_is_unchanged(sandbox: pytest.Pytester) -> None:
    record_baselines(sandbox)
    result = sandbox.runpytest("-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "arch0-float32-b1-s8: unchanged, median x1.000",
            "benchmarks compared with baselines: 3 unchanged",
        ]
    )
    result.stdout.no_fnmatch_line("*REGRESSION*")


def test_a_regression_warns_by_default_and_fails_on_request(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    warned = rerun_slower(sandbox, monkeypatch, 1.5)
    assert warned.ret == 0
    warned.stdout.fnmatch_lines(
        [
            "*PERFORMANCE REGRESSIONS: 3 (warning only; --fail-on-regression fails the run)*",
            "REGRESSION arch0-float32-b1-s8: regression, median x1.500, p=*",
        ]
    )
    failed = sandbox.runpytest("--fail-on-regression")
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["*PERFORMANCE REGRESSIONS: 3 (failing the run)*"])


def test_the_tolerance_option_and_per_entry_overrides_apply(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_baselines(sandbox)
    edit_entries(sandbox, lambda key, entry: entry.update(tolerance=2.0) if "0" in key else None)
    monkeypatch.setenv("BENCH_FACTOR", "1.5")
    result = sandbox.runpytest("--fail-on-regression", "--baseline-tolerance=0.3")
    result.stdout.fnmatch_lines(["*PERFORMANCE REGRESSIONS: 2 (failing the run)*"])
    relaxed = sandbox.runpytest("--fail-on-regression", "--baseline-tolerance=0.6")
    assert relaxed.ret == 0


def test_an_improvement_is_reported_with_a_refresh_hint(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = rerun_slower(sandbox, monkeypatch, 0.5)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["improved arch0-float32-b1-s8: improvement, median x0.500, *, refresh the baseline*"]
    )


def test_a_missing_baseline_is_a_warning_and_is_recorded_on_update(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_COUNT", "2")
    record_baselines(sandbox)
    monkeypatch.setenv("BENCH_COUNT", "3")
    result = sandbox.runpytest()
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["warning: arch2-float32-b1-s8: missing baseline, record it with --update-baselines"]
    )
    record_baselines(sandbox)
    assert sorted(entries(sandbox)) == [f"arch{i}-float32-b1-s8" for i in range(3)]


def test_a_run_sharing_no_entry_with_its_baselines_fails(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_baselines(sandbox)
    monkeypatch.setenv("BENCH_PREFIX", "renamed")
    result = sandbox.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR (benchmarks): no benchmark of this run has an entry in *"])
    updated = record_baselines(sandbox)
    updated.stdout.fnmatch_lines(["*3 entries not re-measured were kept*"])
    assert len(entries(sandbox)) == 6


def test_another_fingerprint_is_no_comparable_baseline(
    sandbox: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_baselines(sandbox)
    edit_entries(sandbox, lambda key, entry: entry["fingerprint"].update(cpu="Some Other CPU"))
    monkeypatch.setenv("BENCH_FACTOR", "3.0")
    result = sandbox.runpytest("--fail-on-regression")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["warning: arch0-float32-b1-s8: no comparable baseline, cpu: 'Some Other CPU' -> *"]
    )


@pytest.mark.parametrize("update", [[], ["--update-baselines"]], ids=["check", "update"])
def test_a_corrupted_file_stops_the_run_and_is_kept(
    sandbox: pytest.Pytester, update: list[str]
) -> None:
    path = baseline_file(sandbox)
    path.parent.mkdir()
    path.write_text('{\n  "format": 1,\n  "entries": {,}\n}\n')
    result = sandbox.runpytest(*update)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {path}:3:15: not valid JSON*"])
    assert path.read_text() == '{\n  "format": 1,\n  "entries": {,}\n}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # Cut off after a key: json reports line 2, which splitlines() did not have
        # (an IndexError, shown as INTERNALERROR, before the fix).
        (b'{"broken": \n', "*:2:1: not valid JSON*"),
        (b'{"format": 1, "entries": {\xff}}', "*: cannot be read*"),
        (b"[" * 100_000, "*: nested too deeply*"),
    ],
    ids=["cut-after-key", "not-utf8", "deep"],
)
def test_every_unreadable_file_is_a_usage_error_not_internal(
    sandbox: pytest.Pytester, content: bytes, message: str
) -> None:
    path = baseline_file(sandbox)
    path.parent.mkdir()
    path.write_bytes(content)
    result = sandbox.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}never overwritten while broken*"])
    assert path.read_bytes() == content


def test_records_of_failed_tests_are_not_stored(sandbox: pytest.Pytester) -> None:
    sandbox.makepyfile(
        test_failing="""
import pytest
from test.common.performance.measurement import TimingStats

@pytest.mark.benchmark
def test_broken(baseline_recorder):
    baseline_recorder.record(TimingStats(tuple(range(1, 21)), "cpu", 0, 1), key="broken")
    assert False, "output was wrong"
"""
    )
    result = sandbox.runpytest("--update-baselines")
    result.assert_outcomes(passed=4, failed=1)
    assert "broken" not in entries(sandbox)


def test_duplicate_keys_are_an_error_and_nothing_is_written(sandbox: pytest.Pytester) -> None:
    sandbox.makepyfile(
        test_duplicate="""
import pytest
from test.common.performance.measurement import TimingStats

@pytest.mark.benchmark
@pytest.mark.parametrize("n", [1, 2])
def test_same_key(n, baseline_recorder):
    baseline_recorder.record(TimingStats(tuple(range(1, 21)), "cpu", 0, 1), key="same")
"""
    )
    result = sandbox.runpytest("--update-baselines")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["ERROR (benchmarks): key 'same' recorded by 2 tests: *"])
    assert not baseline_file(sandbox).exists()


def test_the_recorder_is_for_benchmark_tests_only(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(
        test_unmarked="def test_unmarked(baseline_recorder):\n    assert baseline_recorder\n"
    )
    result = suite_pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*uses baseline_recorder but is not marked benchmark*"])


SPANS = """
import time

import pytest

from test.common.plugins import worker_records


@pytest.mark.benchmark
@pytest.mark.parametrize("n", range(4))
def test_measures_alone(n, request):
    start = time.time_ns()
    time.sleep(0.3)
    worker_records.attach(request.node, "span", {"start": start, "end": time.time_ns()})
"""

SPAN_CHECK = """
from test.common.plugins import worker_records


def pytest_terminal_summary(terminalreporter, config):
    spans = sorted((r["start"], r["end"]) for _, r in worker_records.collected(config, "span"))
    overlaps = sum(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    terminalreporter.write_line(f"spans: {len(spans)}, overlapping: {overlaps}")
"""


def test_workers_take_turns_while_recording_baselines(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_spans=SPANS, span_check=SPAN_CHECK)
    suite_pytester.syspathinsert()
    result = suite_pytester.runpytest(
        "-p", "span_check", "-n", "2", "-p", "xdist", "--update-baselines"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["spans: 4, overlapping: 0"])
