"""The converter on real legacy trees (issue 15): content over file names, checkpoints
that belong to the model_type, product aliases, salvaged files, PEP 263 encodings."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts import convert_tests_bulk as converter
from scripts.legacy_mapping import canonical_key
from test.common.models.transformers_catalog import load_catalog
from test.framework.test_convert_tests_bulk import CORPUS, convert, resolver


@functools.cache
def fixture_results() -> dict[str, dict]:
    """The dry-run report of the fixture corpus, by path below the corpus."""
    return {
        result["path"].split("fixtures/legacy/", 1)[1]: result
        for result in converter.run(
            converter.build_parser().parse_args([str(CORPUS), "--dry-run", "--no-progress"])
        )["files"]
    }


def test_content_decides_over_the_file_name_and_the_evidence_is_reported() -> None:
    """test_hf_marian.py is a copy of the T5 template: registry, test class and model
    class all say t5, so it tests t5, and the report says why."""
    result = fixture_results()["models/text/test_hf_marian.py"]
    assert result["model_type"] == "t5"
    (warning,) = result["warnings"]
    assert "file name 'marian' says 'marian'" in warning
    for evidence in (
        "registry name 'T5'",
        "test class 'T5'",
        "model class T5ForConditionalGeneration",
    ):
        assert evidence in warning


def test_a_checkpoint_of_another_model_type_is_dropped_with_its_owner() -> None:
    result = fixture_results()["models/text/test_hf_xlm-roberta_copied.py"]
    assert result["model_type"] == "xlm-roberta"
    assert result["checkpoints"] == ["FacebookAI/xlm-roberta-base"]
    rejected = {entry["id"]: entry["reason"] for entry in result["rejected_ids"]}
    # transformers' bert source names it; xlm-roberta's does not.
    assert rejected["bert-base-uncased"].startswith("belongs to 'bert'")
    # Unknown to transformers' source, but its legacy entry loads a BERT class.
    assert "BertForMaskedLM, a 'bert' class" in rejected["google-bert/bert-base-multilingual-cased"]


def test_checkpoints_transformers_ties_to_the_model_type_are_kept() -> None:
    facts = SimpleNamespace(registry_classes={})
    for checkpoint, model_type in [
        ("google-bert/bert-base-uncased", "bert"),
        ("FacebookAI/xlm-roberta-base", "xlm-roberta"),
        ("google-t5/t5-small", "t5"),
        ("someone/never-named-by-transformers", "bert"),
    ]:
        assert resolver().checkpoint_problem(checkpoint, checkpoint, model_type, facts) is None
    assert resolver().checkpoint_problem("google-t5/t5-small", "t5-small", "bert", facts)


def test_an_unparsable_file_whose_intent_is_readable_is_salvaged() -> None:
    result = fixture_results()["broken/test_hf_gpt2_unbalanced.py"]
    assert result["outcome"] == "salvaged"
    assert result["reason"].startswith("salvaged: does not parse (line 20")
    assert result["checkpoints"] == ["openai-community/gpt2"]
    assert result["task"] == "text-generation"
    # Nothing readable: still a syntax error.
    assert fixture_results()["broken/test_hf_syntax_error.py"]["outcome"] == "syntax_error"


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_salvaging_a_file_cut_anywhere_never_raises(cut: int) -> None:
    from scripts.legacy_reader import extract_facts, salvage_statements

    text = (CORPUS / "models" / "text" / "test_hf_xlm-roberta.py").read_text()
    truncated = text[: cut % len(text)]
    facts = extract_facts(salvage_statements(truncated), Path("test_hf_x.py"))
    assert set(facts.registry_ids) <= {"FacebookAI/xlm-roberta-base", "xlm-roberta-large"}


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8"])
def test_a_pep_263_coding_line_names_the_encoding(tmp_path: Path, encoding: str) -> None:
    source = (CORPUS / "models" / "text" / "test_hf_albert.py").read_text()
    text = f"# -*- coding: {encoding} -*-\n# Modèle de référence\n{source}"
    legacy = tmp_path / "legacy" / "test_hf_albert.py"
    legacy.parent.mkdir()
    legacy.write_bytes(text.encode(encoding))
    (result,) = convert(legacy.parent, tmp_path / "out", "--dry-run")["files"]
    assert (result["outcome"], result["model_type"]) == ("converted", "albert")


def test_a_file_not_in_its_declared_encoding_is_reported(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy" / "test_hf_albert.py"
    legacy.parent.mkdir()
    legacy.write_bytes(b"# -*- coding: ascii -*-\n# Mod\xe8le\nX = 1\n")
    (result,) = convert(legacy.parent, tmp_path / "out", "--dry-run")["files"]
    assert result["outcome"] == "not_utf8"
    assert result["reason"].startswith("not ascii: byte ")


def test_product_names_map_to_their_model_type() -> None:
    for product, model_type in [
        ("flan-t5", "t5"),
        ("pythia", "gpt_neox"),
        ("mosaic_mpt", "mpt"),
        ("nllb", "m2m_100"),
        ("codellama", "llama"),
        ("open_llama", "llama"),
        ("llama_3", "llama"),
        ("command_r", "cohere"),
        ("FLAN_T5_base", "t5"),
    ]:
        assert resolver().model_type_of_name(product) == model_type, product


def test_the_alias_table_names_real_model_types_and_shadows_none() -> None:
    from scripts.legacy_mapping import load_aliases

    catalog = load_catalog()
    known = {*catalog.config_classes, *catalog.base_model_classes}
    for product, model_type in load_aliases().items():
        assert model_type in known, f"{product} -> {model_type}: not a model_type"
        assert canonical_key(product) not in {canonical_key(name) for name in known}, product


def test_the_checkpoint_index_is_read_from_source_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import legacy_checkpoints

    models = tmp_path / "models"
    (models / "bert").mkdir(parents=True)
    (models / "bert" / "configuration_bert.py").write_text('class C:\n    model_type = "bert"\n')
    (models / "bert" / "modeling_bert.py").write_text(
        '_CHECKPOINT_FOR_DOC = "google-bert/bert-base-uncased"\n'
        '"""[org/x](https://huggingface.co/org/x) and http://example.com/a/b"""\n'
    )
    owners = legacy_checkpoints.scan_checkpoints(models)
    assert owners == {"google-bert/bert-base-uncased": ["bert"], "org/x": ["bert"]}

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(legacy_checkpoints, "transformers_dir", lambda: tmp_path)
    legacy_checkpoints.checkpoint_owners.cache_clear()
    try:
        assert legacy_checkpoints.checkpoint_owners() == owners
        (cached,) = (tmp_path / "cache" / "hf-model-suite").iterdir()
        cached.write_text('{"format": 1, "owners": {"a/b": ["t5"]}}')
        legacy_checkpoints.checkpoint_owners.cache_clear()
        assert legacy_checkpoints.checkpoint_owners() == {"a/b": ["t5"]}  # read, not rescanned
        cached.write_text('{"broken": ')
        legacy_checkpoints.checkpoint_owners.cache_clear()
        assert legacy_checkpoints.checkpoint_owners() == owners
        assert "unreadable cache" in capsys.readouterr().err
        assert cached.read_text() == '{"broken": '  # reported and kept
    finally:
        legacy_checkpoints.checkpoint_owners.cache_clear()
