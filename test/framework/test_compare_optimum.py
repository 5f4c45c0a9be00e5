"""scripts/compare_optimum.py on a small optimum-like tree (its files are read, not run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import compare_optimum
from test.common.backends import expectations

ONNX_CONFIGS = """
@register_tasks_manager_onnx("bert", *COMMON_TEXT_TASKS)
class BertOnnxConfig: ...

@register_tasks_manager_onnx("gpt-neo", "feature-extraction")
class GPTNeoOnnxConfig: ...

@other_decorator("vit")
class NotRegistered: ...
"""


def optimum_tree(root: Path) -> Path:
    path = root / "optimum" / "exporters" / "onnx" / "model_configs.py"
    path.parent.mkdir(parents=True)
    path.write_text(ONNX_CONFIGS, encoding="utf-8")
    info = root / "optimum_onnx-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: optimum-onnx\nVersion: 0.1.0\n", encoding="utf-8")
    return root


def test_registered_model_types_reads_the_decorators() -> None:
    found = compare_optimum.registered_model_types(ONNX_CONFIGS, "register_tasks_manager_onnx")
    assert found == {"bert", "gpt-neo"}


def test_report_compares_both_ways(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {
        "bert": expectations.Expectation("fail", "build: x"),
        "gpt_neo": expectations.Expectation("pass"),
        "mamba": expectations.Expectation("pass"),
    }
    expectations.write("onnx", rows, tmp_path / "expected")
    root = optimum_tree(tmp_path / "site")
    arguments = ["--optimum-dir", str(root), "--expectations", str(tmp_path / "expected")]
    assert compare_optimum.main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "onnx: optimum-onnx 0.1.0 lists 2 architectures; we ran 3 and pass 2",
        "  we pass, optimum-onnx does not list (1): mamba",
        "  optimum-onnx lists, we do not pass (1): bert",
    ]
    assert lines[3].startswith("openvino: ")
    assert "not found (install optimum-intel" in lines[3]


def test_a_corrupt_expectation_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "onnx.csv").write_text("nonsense\n", encoding="utf-8")
    root = optimum_tree(tmp_path / "site")
    arguments = ["--optimum-dir", str(root), "--expectations", str(tmp_path / "expected")]
    assert compare_optimum.main(arguments) == 2
    assert "onnx.csv: header" in capsys.readouterr().err
