"""--model-source, the local-cache-only hub lookup, and the real/tiny weights summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test.common.plugins import model_source

WEIGHTS_TESTS = """
import pytest
from test.common.plugins.model_source import record_model_weights

model = pytest.mark.model_test

@model
def test_real(request):
    record_model_weights(request.node, "real")

@model
def test_tiny(request):
    record_model_weights(request.node, "tiny")

@model
def test_tiny_failing(request):
    record_model_weights(request.node, "tiny")
    assert 1 == 2

@model
def test_unrecorded():
    assert True

@model
def test_skipped_does_not_count(request):
    record_model_weights(request.node, "real")
    pytest.skip("no device")

def test_not_a_model_test_is_ignored():
    pass
"""


def _report(properties: list[tuple[str, object]], *, outcome: str = "passed") -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="t.py::test_x",
        location=("t.py", 1, "test_x"),
        keywords={"model_test": 1},
        outcome=outcome,
        longrepr=None,
        when="call",
        user_properties=properties,
    )


def test_summary_counts_real_tiny_and_unrecorded(suite_pytester: pytest.Pytester) -> None:
    suite_pytester.makepyfile(test_weights=WEIGHTS_TESTS)
    result = suite_pytester.runpytest("--run-model-tests", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "model weights of the model tests that ran: "
            "1 real weights, 2 tiny random (1 failed), 1 unrecorded"
        ]
    )


def test_no_model_test_ran_means_no_claim() -> None:
    tally = model_source.WeightsTally()
    tally.add(_report([("model_weights", "real")], outcome="skipped"))
    assert tally.summary() is None


def test_user_properties_survive_the_xdist_transport() -> None:
    # xdist ships reports to the controller through exactly this serialisation.
    report = _report([(model_source.WEIGHTS_PROPERTY, "real"), ("other", 3)])
    shipped = pytest.TestReport._from_json(report._to_json())
    assert model_source.weights_of(shipped) == "real"
    tally = model_source.WeightsTally()
    tally.add(shipped)
    assert tally.ran == {"real": 1}


def test_last_record_wins_and_bad_kinds_are_rejected(request: pytest.FixtureRequest) -> None:
    item = request.node
    model_source.record_model_weights(item, "tiny")
    model_source.record_model_weights(item, "real")
    # Other plugins may add their own properties (the results recorder, in a model run).
    weights = [p for p in item.user_properties if p[0] == model_source.WEIGHTS_PROPERTY]
    assert weights == [(model_source.WEIGHTS_PROPERTY, "real")]
    with pytest.raises(ValueError, match="real"):
        model_source.record_model_weights(item, "pretrained")
    for entry in weights:  # this framework test is not a model test
        item.user_properties.remove(entry)


def test_unknown_property_value_counts_as_unrecorded() -> None:
    assert model_source.weights_of(_report([("model_weights", "bogus")])) == "unrecorded"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HF_HUB_CACHE": "/c/hub"}, "/c/hub"),
        ({"HF_HOME": "/h"}, "/h/hub"),
        ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub"),
    ],
)
def test_hub_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert model_source.hub_cache_dir() == Path(expected)


def test_cached_checkpoint_finds_a_snapshot(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    # The on-disk layout huggingface_hub writes: refs/main names the snapshot.
    repo = tmp_path / "models--openai--whisper-tiny"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    found = model_source.cached_checkpoint("openai/whisper-tiny", cache_dir=tmp_path)
    assert found == snapshot


EMPTY_CACHE_TEST = """
import time
import pytest
from test.common.plugins.model_source import cached_checkpoint

@pytest.mark.model_test
def test_hub():
    started = time.monotonic()
    try:
        cached_checkpoint("openai/whisper-tiny")
    finally:
        print(f"LOOKUP_SECONDS={time.monotonic() - started:.3f}")
"""


def test_empty_cache_skips_at_once_naming_the_id(
    suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("huggingface_hub")
    empty = tmp_path / "empty-hf-home"
    empty.mkdir()
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(empty))
    suite_pytester.makepyfile(test_hub=EMPTY_CACHE_TEST)
    result = suite_pytester.runpytest(
        "--run-model-tests", "--model-source", "hub", "-rs", "-s", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*0 real weights, 0 tiny random; 1 skipped: hub checkpoint not in*",
            "*not in the local Hugging Face cache: openai/whisper-tiny*",
        ]
    )
    # No network wait of any kind: the lookup (huggingface_hub import included) only
    # reads a directory; a network attempt would take its timeout (10 s) at least.
    (seconds,) = [float(x) for x in re.findall(r"LOOKUP_SECONDS=([0-9.]+)", result.stdout.str())]
    assert seconds < 3, f"an empty-cache lookup took {seconds:.1f}s"
    assert list(empty.iterdir()) == [], "the lookup must not create or download anything"


def test_option_rejects_unknown_sources(suite_pytester: pytest.Pytester) -> None:
    result = suite_pytester.runpytest("--model-source", "internet")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--model-source*invalid choice*"])


def test_model_source_fixture_reads_the_option(
    model_source: str, request: pytest.FixtureRequest
) -> None:
    assert model_source == request.config.getoption("--model-source")
