"""The model-file template: it fills in to a valid module, and the filled file runs."""

from __future__ import annotations

import pytest

from test.common.models import model_test_template, priority_models
from test.framework.conftest import REPO_ROOT


def test_filled_template_is_a_short_declaration() -> None:
    text = model_test_template.fill_template("gpt2", "TestGPT2Copy", "DecoderOnlyLMTests")
    compile(text, "test_hf_gpt2_copy.py", "exec")
    assert 'ROW = "gpt2"' in text
    assert "class TestGPT2Copy(pm.DecoderOnlyLMTests):" in text
    assert "TEMPLATE" not in text


def test_every_bundle_exists_in_priority_models() -> None:
    for bundle in model_test_template.BUNDLES:
        assert issubclass(getattr(priority_models, bundle), priority_models.PriorityModelTests)


def test_unknown_bundle_or_row_is_refused() -> None:
    with pytest.raises(ValueError, match="bundle"):
        model_test_template.fill_template("bert", "TestX", "EverythingTests")
    with pytest.raises(KeyError, match="PRIORITY_MODELS row"):
        model_test_template.fill_template("no-such-model", "TestX", "MaskedLMTests")


@pytest.mark.slow
def test_filled_template_runs_for_one_architecture(
    suite_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    text = model_test_template.fill_template("distilbert", "TestDistilCopy", "MaskedLMTests")
    suite_pytester.makepyfile(test_hf_distilbert_copy=text)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the subprocess imports test.common
    result = suite_pytester.runpytest_subprocess(
        "--run-model-tests", "--device", "cpu", "-p", "no:cacheprovider"
    )
    # Pipeline, padding, sharded round trip, truncated and missing-tensor checkpoints.
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*0 real weights, 5 tiny random*"])
