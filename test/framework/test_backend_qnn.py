"""The qnn backend's own rules, on tiny ONNX graphs built with onnx.helper: a node left
to the CPU execution provider is not a QNN pass, what QNN cannot prepare is refused
with QNN's own reason, and without onnxruntime-qnn the backend is a skip naming it.

Real onnxruntime-qnn (its HTP simulator) where installed; skipped, naming it, where not.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from test.common.backends import qnn
from test.common.backends.catalog import BACKENDS_BY_NAME

QNN = BACKENDS_BY_NAME["qnn"]


def test_without_onnxruntime_qnn_the_backend_is_a_skip_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules is how Python marks a module as not importable: plain
    # onnxruntime, no QNN plugin.
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)
    assert "onnxruntime-qnn" in QNN.missing_packages_with_needs()
    assert qnn.missing() == []  # the package check names it, once
    assert "onnxruntime-qnn" in QNN.pip_packages_with_needs()


def test_an_installed_plugin_without_a_qnn_device_is_a_skip_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("onnxruntime_qnn", reason="qnn needs the onnxruntime-qnn package")
    monkeypatch.setattr(qnn, "qnn_devices", lambda: ())
    assert qnn.missing() == ["onnxruntime-qnn (QNNExecutionProvider has no device)"]

    def does_not_load() -> tuple[Any, ...]:
        raise RuntimeError("libonnxruntime_providers_qnn.so: undefined symbol\nmore")

    monkeypatch.setattr(qnn, "qnn_devices", does_not_load)
    assert qnn.missing() == [
        "onnxruntime-qnn (QNNExecutionProvider does not load: "
        "libonnxruntime_providers_qnn.so: undefined symbol)"
    ]


def save_graph(
    directory: Path, name: str, nodes: list[Any], initializers: list[Any], width: int = 8
) -> Path:
    """A float [2, 8] -> [2, width] graph of `nodes`, from `x` to `y`."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, width])],
        initializers,
    )
    path = directory / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def feeds() -> dict[str, Any]:
    pytest.importorskip("onnxruntime_qnn", reason="qnn needs the onnxruntime-qnn package")
    numpy = pytest.importorskip("numpy")
    return {"x": numpy.linspace(-2, 2, 16, dtype=numpy.float32).reshape(2, 8)}


@pytest.mark.slow  # starts QNN's HTP simulator
def test_a_node_left_to_the_cpu_is_not_a_qnn_pass(tmp_path: Path, feeds: dict[str, Any]) -> None:
    from onnx import helper

    # Hardmax is not among QNN's operators: with the fallback allowed it would run on
    # the CPU EP beside QNN's Relu, and a whole graph of it would run there alone.
    relu_hardmax = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Hardmax", ["r"], ["y"], axis=-1),
    ]
    for name, nodes in (
        ("partly", relu_hardmax),
        ("only_cpu", [helper.make_node("Hardmax", ["x"], ["y"])]),
    ):
        path = save_graph(tmp_path, name, nodes, [])
        with pytest.raises(qnn.QnnRefused, match=r"nodes to the CPU EP: Hardmax \(1\)$"):
            qnn.strict_session(path, feeds, 1, tmp_path)


@pytest.mark.slow  # starts QNN's HTP simulator
def test_a_quantized_graph_runs_wholly_on_qnn(tmp_path: Path, feeds: dict[str, Any]) -> None:
    import numpy
    from onnx import helper, numpy_helper

    weight = numpy.arange(32, dtype=numpy.float32).reshape(8, 4) / 32 - 0.5
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    path = save_graph(tmp_path, "matmul_relu", nodes, [numpy_helper.from_array(weight, "w")], 4)
    quantized = qnn.quantize_for_qnn(path, feeds, tmp_path)
    assert qnn.cpu_nodes(quantized, feeds, 1, tmp_path) == {}  # nothing ran on the CPU EP
    output = qnn.strict_session(quantized, feeds, 1, tmp_path).run(None, feeds)[0]
    expected = numpy.maximum(feeds["x"] @ weight, 0)
    assert numpy.abs(output - expected).max() < 0.05  # uint16 activations, uint8 weights


@pytest.mark.slow  # starts QNN's HTP simulator twice
def test_what_qnn_cannot_prepare_is_refused_with_its_reason(
    tmp_path: Path, feeds: dict[str, Any]
) -> None:
    from onnx import TensorProto, helper

    # torch.onnx's guard after each SDPA softmax, Where(IsNaN(p), 0, p): QNN's HTP on
    # this host cannot create its Select op for it (docs/BACKENDS.md).
    nodes = [
        helper.make_node("IsNaN", ["x"], ["nan"]),
        helper.make_node("Where", ["nan", "zero", "x"], ["y"], name="guard"),
    ]
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    path = save_graph(tmp_path, "nan_guard", nodes, [zero])
    with pytest.raises(qnn.QnnRefused) as refused:
        qnn.strict_session(path, feeds, 1, tmp_path)
    assert str(refused.value) == (
        "QNN cannot prepare the graph: could not create op: q::Select.exe; in ONNX nodes guard"
    )


@pytest.mark.slow  # starts QNN's HTP simulator in child processes
def test_a_preparation_that_does_not_end_or_kills_its_process_is_refused(
    tmp_path: Path, feeds: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy
    from onnx import helper, numpy_helper

    weight = numpy.ones((8, 8), dtype=numpy.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    path = qnn.quantize_for_qnn(
        save_graph(tmp_path, "matmul", nodes, [numpy_helper.from_array(weight, "w")]),
        feeds,
        tmp_path,
    )
    qnn.prepare_in_child(path, 1)  # prepared in time: nothing to say
    with pytest.raises(qnn.QnnRefused, match=r"^QNN did not prepare the graph in 0.001 s$"):
        qnn.prepare_in_child(path, 1, timeout=0.001)
    # A child that dies of a signal, as a native crash in QNN would.
    crashing = tmp_path / "crashing_child.py"
    crashing.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGFPE)\n")
    monkeypatch.setattr(qnn, "__file__", str(crashing))
    with pytest.raises(qnn.QnnRefused, match=r"killed its process \(SIGFPE\)$"):
        qnn.prepare_in_child(path, 1)
