"""The legacy converter (scripts/convert_tests_bulk.py) over a corpus of legacy-style files.

The corpus in test/framework/fixtures/legacy covers every case of issue 6; files
that would be large or binary are generated into tmp by the tests below.
"""

from __future__ import annotations

import functools
import json
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scripts import convert_tests_bulk as converter
from scripts import make_legacy_corpus
from scripts.legacy_improved import _plan_one, bundle_for, class_name_for
from scripts.legacy_mapping import (
    CANONICAL_IDS,
    VARIANT_SUFFIXES,
    Resolver,
    canonical_key,
    check_hub_id,
    load_pipeline_tasks,
    most_common_task,
)
from scripts.legacy_reader import DEFAULT_MAX_BYTES
from test.common.models.transformers_catalog import load_catalog
from test.framework.conftest import REPO_ROOT

# Integration tests: converts whole legacy corpora (hundreds of files); plain `pytest`
# counts them in one line, every nox session runs them (--run-slow).
pytestmark = pytest.mark.slow

CORPUS = REPO_ROOT / "test" / "framework" / "fixtures" / "legacy"

#: Every file of the corpus -> (outcome, model_type).  A file added to the corpus
#: without a line here fails test_every_corpus_file_has_its_expected_outcome.
EXPECTED = {
    "apis/test_hf_tei_container.py": ("no_model", None),
    "apis/test_hf_tgi.py": ("no_model", None),
    "broken/test_hf_comments_only.py": ("empty", None),
    "broken/test_hf_empty.py": ("empty", None),
    "broken/test_hf_gpt2_unbalanced.py": ("salvaged", "gpt2"),
    "broken/test_hf_syntax_error.py": ("syntax_error", None),
    "models/audio/test_hf_data2vec-audio.py": ("converted", "data2vec-audio"),
    "models/audio/test_hf_wav2vec2.py": ("converted", "wav2vec2"),
    "models/audio/test_hf_whisper.py": ("converted", "whisper"),
    "models/test_hf___help.py": ("unmapped", None),
    "models/test_hf_llama.py": ("converted", "llama"),
    "models/test_hf_mlp-mixer.py": ("unmapped", None),
    "models/test_hf_speech-to-text-2.py": ("unmapped", None),
    "models/test_hf_transfo-xl.py": ("unmapped", None),
    "models/text/minimal/test_hf_bert_minimal.py": ("converted", "bert"),
    "models/text/test_hf_albert.py": ("converted", "albert"),
    "models/text/test_hf_bert.py": ("converted", "bert"),
    "models/text/test_hf_bert_standardized.py": ("converted", "bert"),
    "models/text/test_hf_flan-t5.py": ("converted", "t5"),
    "models/text/test_hf_gpt-j.py": ("converted", "gptj"),
    "models/text/test_hf_gpt2.py": ("converted", "gpt2"),
    "models/text/test_hf_marian.py": ("converted", "t5"),
    "models/text/test_hf_t5_small.py": ("converted", "t5"),
    "models/text/test_hf_xlm-roberta.py": ("converted", "xlm-roberta"),
    "models/text/test_hf_xlm-roberta_copied.py": ("converted", "xlm-roberta"),
    "models/vision/test_hf_clip.py": ("converted", "clip"),
    "models/vision/test_hf_depth_anything.py": ("outside_battery", "depth_anything"),
    "models/vision/test_hf_vit.py": ("converted", "vit"),
    "sample_tests/test_hf_bert_base_uncased.py": ("converted", "bert"),
    "tools/test_hf_cli.py": ("no_model", None),
    "web/test_hf_bert_web.py": ("converted", "bert"),
}


def convert(source: Path, output_root: Path, *options: str) -> dict:
    """Run the converter's CLI in-process; return its JSON report."""
    report = output_root / "report.json"
    argv = [str(source), "--output-root", str(output_root), "--report", str(report)]
    assert converter.main([*argv, "--no-progress", *options]) == 0
    return json.loads(report.read_text(encoding="utf-8"))


@functools.cache
def resolver() -> Resolver:
    return Resolver()


def by_corpus_path(report: dict) -> dict[str, dict]:
    prefix = "legacy/"
    return {f["path"].split(prefix, 1)[1]: f for f in report["files"]}


@pytest.fixture(scope="module")
def corpus_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return convert(CORPUS, tmp_path_factory.mktemp("out"), "--dry-run")


def test_every_corpus_file_has_its_expected_outcome(corpus_report: dict) -> None:
    found = {
        path: (f["outcome"], f["model_type"]) for path, f in by_corpus_path(corpus_report).items()
    }
    assert found == EXPECTED


def test_every_file_converts_to_a_real_model_type_or_has_a_reason(corpus_report: dict) -> None:
    known = load_catalog().config_classes
    for result in corpus_report["files"]:
        assert result["reason"], result["path"]
        if result["outcome"] == "converted":
            assert result["model_type"] in load_catalog().base_model_classes
        elif result["model_type"] is not None:
            assert result["model_type"] in known


def test_no_invented_id_reaches_a_registry_row(corpus_report: dict) -> None:
    checkpoints = [c for entry in corpus_report["entries"].values() for c in entry["checkpoints"]]
    assert checkpoints
    for checkpoint in checkpoints:
        assert check_hub_id(checkpoint) == (checkpoint, "org/name hub id")
    rejected = {r["id"] for f in corpus_report["files"] for r in f["rejected_ids"]}
    assert {"__help-base", "gpt2-base", "llama-base", "model/id"} <= rejected
    help_file = by_corpus_path(corpus_report)["models/test_hf___help.py"]
    assert "'__help'" in help_file["reason"]


@pytest.mark.parametrize(
    ("legacy_name", "model_type"),
    [
        ("xlm-roberta", "xlm-roberta"),
        ("gpt-j", "gptj"),
        ("data2vec-audio", "data2vec-audio"),
        ("wav2vec2-conformer", "wav2vec2-conformer"),
        ("vision-text-dual-encoder", "vision-text-dual-encoder"),
        ("gpt_neox", "gpt_neox"),
        ("gpt-neox", "gpt_neox"),
        ("speech-to-text", "speech_to_text"),
        ("bert_base_uncased", "bert"),
        ("bert_standardized", "bert"),
        ("roberta-base", "roberta"),
        ("T5_Small", "t5"),
        ("blenderbot-small", "blenderbot-small"),
        ("XlmRoberta", "xlm-roberta"),
    ],
)
def test_spellings_map_to_the_model_type(legacy_name: str, model_type: str) -> None:
    assert resolver().model_type_of_name(legacy_name) == model_type


@pytest.mark.parametrize("legacy_name", ["transfo-xl", "mlp-mixer", "speech-to-text-2", "__help"])
def test_names_transformers_does_not_know_map_to_nothing(legacy_name: str) -> None:
    assert resolver().model_type_of_name(legacy_name) is None


@settings(deadline=None)
@given(
    model_type=st.sampled_from(sorted(load_catalog().config_classes)),
    separator=st.sampled_from(["-", "_"]),
    upper=st.booleans(),
    suffixes=st.lists(st.sampled_from(sorted(VARIANT_SUFFIXES)), max_size=3),
)
def test_any_spelling_of_a_model_type_maps_back_to_it(
    model_type: str, separator: str, upper: bool, suffixes: list[str]
) -> None:
    keys = {canonical_key(mt) for mt in load_catalog().config_classes}
    # blenderbot + small is the model_type blenderbot-small: not a variant suffix there.
    assume(not any(canonical_key(model_type + "".join(suffixes[:i])) in keys for i in (1, 2, 3)))
    spelled = separator.join(
        [model_type.replace("-", separator).replace("_", separator), *suffixes]
    )
    assert resolver().model_type_of_name(spelled.upper() if upper else spelled) == model_type


@pytest.mark.parametrize(
    ("candidate", "kept"),
    [
        ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
        ("bert-base-uncased", "google-bert/bert-base-uncased"),
        ("gpt2", "openai-community/gpt2"),
        ("openai/whisper-tiny", "openai/whisper-tiny"),
        ("__help-base", None),
        ("bert-base", None),
        ("model/id", None),
        ("{org}/{model}", None),
        ("org--x/name", None),
        ("-org/name", None),
        ("org/na..me", None),
        ("org/name/extra", None),
        ("", None),
    ],
)
def test_only_real_hub_ids_are_kept(candidate: str, kept: str | None) -> None:
    assert check_hub_id(candidate)[0] == kept


def test_canonical_ids_point_at_org_ids() -> None:
    for old, new in CANONICAL_IDS.items():
        assert check_hub_id(new) == (new, "org/name hub id"), old


def test_tasks_are_checked_against_transformers_pipelines() -> None:
    assert load_pipeline_tasks().mappings["fill-mask"] == ("MODEL_FOR_MASKED_LM_MAPPING_NAMES",)
    assert resolver().task_supported("fill-mask", "bert")[0] == "fill-mask"
    assert resolver().task_supported("sentiment-analysis", "bert")[0] == "text-classification"
    assert resolver().task_supported("text-generation", "wav2vec2")[0] is None
    assert "removed" in resolver().task_supported("summarization", "bart")[1]
    assert "not a pipeline task" in resolver().task_supported("make-coffee", "bert")[1]


def test_variants_collapse_into_one_row_with_the_legacy_intent(corpus_report: dict) -> None:
    entries = corpus_report["entries"]
    assert len(entries["bert"]["sources"]) == 5
    assert entries["bert"]["task"] == "fill-mask"
    assert "google-bert/bert-base-uncased" in entries["bert"]["checkpoints"]
    assert entries["t5"]["checkpoints"] == ["google-t5/t5-small", "google/flan-t5-small"]
    assert "task" not in entries["t5"]  # text2text-generation left transformers 5
    assert entries["wav2vec2"]["task"] == "automatic-speech-recognition"  # not its legacy task
    files = by_corpus_path(corpus_report)
    assert any(
        "text-generation" in w for w in files["models/audio/test_hf_wav2vec2.py"]["warnings"]
    )


def test_variants_that_disagree_keep_the_most_common_task() -> None:
    assert most_common_task(["fill-mask", "fill-mask", "text-classification"]) == (
        "fill-mask",
        ["text-classification"],
    )
    assert most_common_task(["b", "a"]) == ("a", ["b"])
    assert most_common_task([]) == (None, [])


def test_nothing_it_reads_is_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "executed"
    monkeypatch.setenv("LEGACY_FIXTURE_EXECUTED_MARKER", str(marker))
    report = convert(CORPUS / "models" / "text", tmp_path, "--dry-run")
    albert = next(f for f in report["files"] if f["path"].endswith("/test_hf_albert.py"))
    assert albert["outcome"] == "converted"
    assert not marker.exists()
    files = [getattr(module, "__file__", None) or "" for module in list(sys.modules.values())]
    assert not [f for f in files if f.startswith(str(CORPUS))]


BAD_FILES = {
    "test_hf_latin1.py": (b"MODEL = 'caf\xe9'\n", "not_utf8"),
    "test_hf_binary.py": (bytes(range(256)) * 4, "binary"),
    "test_hf_big.py": (b"# filler\n" * (DEFAULT_MAX_BYTES // 9 + 1), "too_large"),
    "test_hf_blank.py": (b"\n   \n", "empty"),
    "test_hf_nested.py": (b"x = " + b"(" * 300 + b")" * 300 + b"\n", "syntax_error"),
}


def test_bad_input_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name, (content, _) in BAD_FILES.items():
        (legacy / name).write_bytes(content)
    (legacy / "test_hf_dangling.py").symlink_to(tmp_path / "missing.py")
    good = (CORPUS / "models" / "vision" / "test_hf_vit.py").read_bytes()
    (legacy / "test_hf_vit.py").write_bytes(good)
    report = convert(legacy, tmp_path, "--dry-run")
    outcomes = {Path(f["path"]).name: f["outcome"] for f in report["files"]}
    expected = {name: outcome for name, (_, outcome) in BAD_FILES.items()}
    assert outcomes == expected | {
        "test_hf_dangling.py": "unreadable",
        "test_hf_vit.py": "converted",
    }
    assert report["summary"]["total"] == len(BAD_FILES) + 2


def test_overlay_has_the_registry_schema_and_is_idempotent(tmp_path: Path) -> None:
    report = convert(CORPUS, tmp_path)
    overlay = tmp_path / "test" / "common" / "models" / "converted_models.toml"
    assert report["written"][0] == "test/common/models/converted_models.toml"
    first = overlay.read_bytes()
    rows = tomllib.loads(first.decode())
    assert list(rows) == sorted(rows) == sorted(report["entries"])
    assert rows["bert"]["task"] == "fill-mask"
    for row in rows.values():
        assert set(row) <= {"checkpoints", "task", "sources"}
        assert row["sources"] == sorted(row["sources"])
    assert convert(CORPUS, tmp_path)["written"] == []
    assert overlay.read_bytes() == first
    assert not list(overlay.parent.glob("*.tmp"))


def test_overlay_rows_are_merged_across_runs(tmp_path: Path) -> None:
    convert(CORPUS / "models" / "audio", tmp_path)
    convert(CORPUS / "models" / "vision", tmp_path)
    rows = tomllib.loads((tmp_path / "test/common/models/converted_models.toml").read_text())
    assert {"whisper", "vit", "clip"} <= set(rows)


def test_dry_run_writes_only_the_report(tmp_path: Path) -> None:
    report = convert(CORPUS, tmp_path, "--dry-run")
    assert report["written"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


CORRUPTED = '[bert]\ncheckpoints = ["a/b"]\ntask = = 3\n'


def test_a_corrupted_overlay_is_an_error_and_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay = tmp_path / "test" / "common" / "models" / "converted_models.toml"
    overlay.parent.mkdir(parents=True)
    overlay.write_text(CORRUPTED)
    status = converter.main([str(CORPUS / "web"), "--output-root", str(tmp_path), "--no-progress"])
    assert status == 2
    error = capsys.readouterr().err
    assert str(overlay) in error
    assert "line 3" in error
    assert overlay.read_text() == CORRUPTED


def test_default_run_skips_the_suite_itself(tmp_path: Path) -> None:
    suite = tmp_path / "test"
    vit = (CORPUS / "models" / "vision" / "test_hf_vit.py").read_text()
    for folder in ("improved", "common", "framework/fixtures/legacy", ".cache", "legacy/sub"):
        (suite / folder).mkdir(parents=True)
        (suite / folder / "test_hf_vit.py").write_text(vit)
    found = converter.discover(suite)
    assert found == [suite / "legacy" / "sub" / "test_hf_vit.py"]
    assert converter.discover(suite, recursive=False) == []
    assert converter.build_parser().parse_args([]).source == REPO_ROOT / "test"


def test_the_default_source_holds_no_legacy_file_of_the_suite() -> None:
    assert converter.discover(REPO_ROOT / "test") == []


def test_pattern_and_limit_select_files(tmp_path: Path) -> None:
    report = convert(CORPUS, tmp_path, "--dry-run", "--pattern", "test_hf_bert*.py")
    assert {Path(f["path"]).name for f in report["files"]} == {
        "test_hf_bert.py",
        "test_hf_bert_base_uncased.py",
        "test_hf_bert_minimal.py",
        "test_hf_bert_standardized.py",
        "test_hf_bert_web.py",
    }
    assert convert(CORPUS, tmp_path, "--dry-run", "--limit", "3")["summary"]["total"] == 3
    assert convert(CORPUS, tmp_path, "--dry-run", "--no-recursive")["summary"]["total"] == 0


def test_summary_counts_each_outcome(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    convert(CORPUS, tmp_path, "--dry-run")
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{len(EXPECTED)} files: ")
    assert "19 converted, 1 salvaged, 3 no_model, 4 unmapped, 1 outside_battery" in first


def test_bad_options_are_errors(tmp_path: Path) -> None:
    assert converter.main([str(tmp_path / "absent"), "--no-progress"]) == 2
    assert converter.main([str(CORPUS), "--limit", "-1", "--no-progress"]) == 2


def test_the_registry_accepts_the_overlay(tmp_path: Path) -> None:
    registry = pytest.importorskip("test.common.models.registry")
    convert(CORPUS, tmp_path)
    overlay_file = tmp_path / "test" / "common" / "models" / "converted_models.toml"
    overlay = registry.read_toml(overlay_file)
    rows = registry.read_toml(registry.ARCHITECTURES_FILE)
    specs = registry.build_registry(load_catalog(), rows, overlay, overlay_file=overlay_file)
    assert specs["bert"].task == "fill-mask"
    assert "google-bert/bert-base-uncased" in specs["bert"].checkpoints


def test_generated_corpus_converts_as_its_generator_expects(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    assert make_legacy_corpus.main([str(corpus), "--files", "40"]) == 0
    expected = json.loads((corpus / "expected.json").read_text())
    report = convert(corpus, tmp_path, "--dry-run")
    found = {f["path"].split("corpus/", 1)[1]: f for f in report["files"]}
    assert {p: (f["outcome"], f["model_type"]) for p, f in found.items()} == {
        p: (e["outcome"], e["model_type"]) for p, e in expected.items()
    }
    assert {"converted", "unmapped", "no_model", "syntax_error", "empty"} <= {
        e["outcome"] for e in expected.values()
    }
    assert make_legacy_corpus.main([str(corpus)]) == 2  # never writes into a non-empty folder


RENDERED = {"bert", "clip", "gpt2", "llama", "t5", "vit", "whisper"}


def test_improved_files_are_rendered_from_the_template_and_compile(tmp_path: Path) -> None:
    report = convert(CORPUS, tmp_path)
    plans = {plan["model_type"]: plan for plan in report["improved"]}
    assert {mt for mt, plan in plans.items() if plan["status"] == "written"} == RENDERED
    for model_type in RENDERED:
        path = tmp_path / plans[model_type]["path"]
        text = path.read_text()
        compile(text, str(path), "exec")
        assert "model_test_template" in text
        assert "TEMPLATE" not in text
    gptj = plans["gptj"]
    assert gptj["status"] == "no_template_row"
    assert gptj["suggested_row"] == {
        "name": "gptj",
        "model_type": "gptj",
        "task": "text-generation",
        "model_class": "GPTJForCausalLM",
        "hub_id": "EleutherAI/gpt-j-6b",
    }


def test_improved_files_are_kept_unless_overwrite(tmp_path: Path) -> None:
    convert(CORPUS / "models" / "text", tmp_path)
    bert = tmp_path / "test" / "improved" / "test_hf_bert_improved.py"
    bert.write_text("# edited by hand\n")
    report = convert(CORPUS / "models" / "text", tmp_path)
    assert bert.read_text() == "# edited by hand\n"
    assert {p["model_type"]: p["status"] for p in report["improved"]}["bert"] == "exists"
    report = convert(CORPUS / "models" / "text", tmp_path, "--overwrite")
    assert "test/improved/test_hf_bert_improved.py" in report["written"]
    assert "pm.MaskedLMTests" in bert.read_text()


def test_dry_run_plans_improved_files_without_writing(corpus_report: dict) -> None:
    statuses = {p["model_type"]: p["status"] for p in corpus_report["improved"]}
    assert {mt for mt, status in statuses.items() if status == "render"} == RENDERED


def _spec(**fields: object) -> SimpleNamespace:
    base = {"name": "bert", "task": "fill-mask", "generation": None, "modality": "text"}
    return SimpleNamespace(**(base | fields))


@pytest.mark.parametrize(
    ("entry", "spec", "status"),
    [
        (converter.Entry([], None, ["a.py"]), _spec(), "no_intent"),
        (converter.Entry(["a/b"], "text-classification", ["a.py"]), _spec(), "task_differs"),
        (converter.Entry(["a/b"], None, ["a.py"]), _spec(task="token-classification"), "no_bundle"),
        (converter.Entry(["a/b"], "fill-mask", ["a.py"]), _spec(), "render"),
    ],
)
def test_improved_file_plans(entry: converter.Entry, spec: SimpleNamespace, status: str) -> None:
    assert _plan_one("bert", entry, spec, resolver()).status == status


def test_bundles_and_class_names() -> None:
    assert bundle_for(_spec(generation="decoder")) == "DecoderOnlyLMTests"
    assert bundle_for(_spec(task="image-classification", modality="vision")) == "VisionTests"
    assert class_name_for("xlm-roberta") == "TestXlmRoberta"
