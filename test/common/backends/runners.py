"""How each backend is built from one architecture's Work (test/common/backends/work.py).

A build function returns a `Built`: the artifact dependants start from (an exported
program, an ONNX file) and `run`, which maps the eager inputs (a tuple of CPU tensors)
to the primary output as a torch tensor.  A build function raises when the backend
refuses the model; work.py records that as the backend's failure.

torch and each backend's package are imported inside the functions: catalog.py, which
noxfile.py and test collection read, imports this module.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class Built:
    """What a backend built: its artifact and how to run it on the eager inputs."""

    artifact: Any
    run: Callable[[tuple[Any, ...]], Any]


def build_export(work: Any) -> Built:
    import torch

    # strict=False traces with Python semantics (what transformers' export tests use).
    program = torch.export.export(work.module, work.args, strict=False)
    module = program.module()
    return Built(program, lambda args: _no_grad(module, args))


def build_compile(work: Any) -> Built:
    import torch

    # A fresh cache per architecture: the recompile limit counts across models otherwise.
    torch._dynamo.reset()
    compiled = torch.compile(work.module)
    _no_grad(compiled, work.args)  # compiles now, so that a compiler error is a build error
    return Built(compiled, lambda args: _no_grad(compiled, args))


def build_onnx(work: Any) -> Built:
    import numpy
    import onnxruntime
    import torch

    program = work.built["export"].artifact
    path = work.directory / "model.onnx"
    # From the exported program: the same graph `export` was checked on, traced once.
    onnx_program = torch.onnx.export(program, dynamo=True, verbose=False)
    onnx_program.save(str(path))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [graph_input.name for graph_input in session.get_inputs()]
    if len(names) != len(work.args):
        raise ValueError(f"the ONNX graph takes {len(names)} inputs, the model {len(work.args)}")

    def run(args: tuple[Any, ...]) -> Any:
        feeds = {name: numpy.asarray(arg.numpy()) for name, arg in zip(names, args, strict=True)}
        return torch.from_numpy(session.run(None, feeds)[0])

    return Built(path, run)


def build_openvino(work: Any) -> Built:
    import openvino
    import torch

    # From the exported program rather than the ONNX file: OpenVINO's PyTorch frontend
    # reads the same graph `export` was checked on, so an ONNX exporter failure does not
    # hide what OpenVINO itself can do.
    try:
        model = openvino.convert_model(work.built["export"].artifact)
    except Exception as error:  # its first line names a C++ file; the ops come last
        unconverted = _openvino_unconverted(str(error))
        if unconverted is None:
            raise
        raise RuntimeError(f"OpenVINO cannot convert {unconverted}") from error
    # f32 inference precision: on CPUs with bf16 or AMX units OpenVINO's default hint
    # runs in bfloat16, which is not the parity this backend checks.
    compiled = openvino.Core().compile_model(
        model,
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()},
    )

    def run(args: tuple[Any, ...]) -> Any:
        result = compiled([arg.numpy() for arg in args])
        return torch.from_numpy(result[compiled.output(0)].copy())

    return Built(model, run)


#: How OpenVINO's conversion report introduces the operations it could not convert.
OPENVINO_REPORT_MARKERS = ("Conversion is failed for:", "No conversion rule found for operations:")


def _openvino_unconverted(message: str) -> str | None:
    """The operations an OpenVINO conversion report names as failed, if it has one."""
    found = [
        line.split(marker, 1)[1].strip()
        for line in message.splitlines()
        for marker in OPENVINO_REPORT_MARKERS
        if marker in line
    ]
    return ", ".join(found) if found else None


def build_int8(work: Any) -> Built:
    import torch
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    model = copy.deepcopy(work.model)
    if not any(isinstance(module, torch.nn.Linear) for module in model.modules()):
        # quantize_ changes torch.nn.Linear only: a pass would compare eager with itself.
        raise ValueError("no torch.nn.Linear layer to quantize")
    # Dynamic int8: weights quantized once per channel, activations per token at run time.
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    module = work.wrap(model)
    return Built(module, lambda args: _no_grad(module, args))


def _no_grad(module: Any, args: tuple[Any, ...]) -> Any:
    import torch

    with torch.no_grad():
        return module(*args)


def build_browser(work: Any, provider: str = "wasm") -> Built:
    from test.common.backends.browser import run_in_browser

    path = work.built["onnx"].artifact  # the file onnx wrote and ONNX Runtime ran
    return Built(path, lambda args: run_in_browser(path, args, provider))


def build_qnn(work: Any) -> Built:
    import numpy
    import onnx
    import torch

    from test.common.backends import qnn

    path = work.built["onnx"].artifact  # the file onnx wrote and ONNX Runtime ran
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {initializer.name for initializer in graph.initializer}
    names = [entry.name for entry in graph.input if entry.name not in initializers]
    feeds = {name: numpy.asarray(arg.numpy()) for name, arg in zip(names, work.args, strict=True)}
    quantized = qnn.quantize_for_qnn(path, feeds, work.directory)
    threads = torch.get_num_threads()
    session = qnn.strict_session(quantized, feeds, threads, work.directory)

    def run(args: tuple[Any, ...]) -> Any:
        inputs = {name: numpy.asarray(arg.numpy()) for name, arg in zip(names, args, strict=True)}
        return torch.from_numpy(session.run(None, inputs)[0])

    return Built(quantized, run)
