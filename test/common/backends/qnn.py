"""The qnn backend: the ONNX file `onnx` wrote, quantized, on ONNX Runtime's QNN
execution provider with its HTP backend (docs/BACKENDS.md).

onnxruntime-qnn 2.x is a plugin execution provider: its own module, `onnxruntime_qnn`,
beside the ordinary `onnxruntime` (which it depends on), registered at run time with
`onnxruntime.register_execution_provider_library`.  Its x86-64 Linux wheel ships
libQnnHtp.so, which runs the Qualcomm NPU's (HTP's) graphs on the host.

The HTP runs quantized graphs: the float model is prepared with onnxruntime's own QNN
tools (`qnn_preprocess_model`, then QDQ static quantization with `get_qnn_qdq_config`:
uint16 activations, uint8 weights, calibrated on the architecture's fixed inputs).
The session refuses the CPU execution provider as a fallback
(`session.disable_cpu_ep_fallback`), so a pass means every node ran on QNN.  When
QNN leaves nodes to the CPU, the reason names their operator types; when it cannot
prepare its graph, the reason is what QNN's own log says.  The graph is first prepared
in a child process with a time limit: QNN's preparation is native code that
pytest-timeout cannot interrupt, and on one model (sam2_hiera_det_model) it ran for
15 minutes and 4.6 GB without finishing.

onnxruntime and onnxruntime_qnn are imported inside the functions: catalog.py, which
noxfile.py and test collection read, imports this module.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib.util
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The name the plugin library is registered under, which is also its EP's name.
EP_NAME = "QNNExecutionProvider"
#: What a missing or unusable QNN execution provider is reported as (a skip).
PACKAGE = "onnxruntime-qnn"
#: onnxruntime's message when a node would fall back to the CPU EP.
CPU_FALLBACK_REFUSED = "fallback to CPU EP has been explicitly disabled"
#: The QNN EP's message when the HTP cannot prepare the graph; its cause is only in
#: QNN's verbose log.
FINALIZE_FAILED = "Failed to finalize QNN graph"
#: How QNN's verbose log reports a graph-preparation error (`file.cc:211::ERROR:...`).
QNN_LOG_ERROR = re.compile(r"\.\w+:\d+::ERROR:(.*)")
#: How it names the ONNX nodes whose QNN op it could not create.
QNN_LOG_NODE = re.compile(r'<E> "([^"]+)" generated: could not create op')
#: QNN's errors that only say that an earlier one happened.
QNN_CONSEQUENTIAL = ("Op creation failure", "preparation failed with err", "no properties")
#: Seconds the verbose second attempt may take (a few, on the tiny models).
FINALIZE_TIMEOUT = 600
#: Seconds QNN may take to prepare a tiny model's graph in the child process: most
#: take one to three; sam2_hiera_det_model did not finish in 15 minutes.
PREPARE_TIMEOUT = 120


class QnnRefused(RuntimeError):
    """QNN did not take the whole graph (nodes left to the CPU EP, or a graph it cannot
    prepare)."""


@functools.cache
def qnn_devices() -> tuple[Any, ...]:
    """The QNN EP's devices, its plugin library registered once per process."""
    import onnxruntime
    import onnxruntime_qnn

    if not any(device.ep_name == EP_NAME for device in onnxruntime.get_ep_devices()):
        onnxruntime.register_execution_provider_library(EP_NAME, onnxruntime_qnn.get_library_path())
    return tuple(device for device in onnxruntime.get_ep_devices() if device.ep_name == EP_NAME)


def missing() -> list[str]:
    """[PACKAGE, with why] when onnxruntime_qnn is installed but gives no QNN device (an
    onnxruntime older than its plugin API, a platform without its libraries); its
    absence is the catalog's package check."""
    if importlib.util.find_spec("onnxruntime_qnn") is None:
        return []
    try:
        devices = qnn_devices()
    except Exception as error:  # the library does not load here: reported as absent
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        return [f"{PACKAGE} ({EP_NAME} does not load: {first_line})"]
    return [] if devices else [f"{PACKAGE} ({EP_NAME} has no device)"]


def quantize_for_qnn(path: Path, feeds: dict[str, Any], directory: Path) -> Path:
    """The QDQ model QNN's HTP runs: onnxruntime's QNN preprocessing, then static
    quantization calibrated on `feeds` (the architecture's fixed inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import (
        get_qnn_qdq_config,
        qnn_preprocess_model,
    )

    class FixedInputs(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter([feeds])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.remaining, None)

    preprocessed = directory / "model.qnn-preprocessed.onnx"
    if qnn_preprocess_model(str(path), str(preprocessed), fuse_layernorm=True):
        path = preprocessed
    # uint16 activations and uint8 weights: the combination QNN's documentation
    # quantizes with (uint8 activations lose too much on layer-normed transformers).
    config = get_qnn_qdq_config(
        str(path), FixedInputs(), activation_type=QuantType.QUInt16, weight_type=QuantType.QUInt8
    )
    quantized = directory / "model.qdq.onnx"
    quantize(str(path), str(quantized), config)
    return quantized


def qnn_session(
    path: Path, threads: int, cpu_fallback: bool = False, profile: str = "", verbose: bool = False
) -> Any:
    """An InferenceSession on QNN's HTP backend; without `cpu_fallback` onnxruntime
    refuses to build it if any node would run on the CPU EP."""
    import onnxruntime
    import onnxruntime_qnn

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # Quiet: QNN warns about Windows-only features on every session.
    options.log_severity_level = 0 if verbose else 3
    fallback = "0" if cpu_fallback else "1"
    options.add_session_config_entry("session.disable_cpu_ep_fallback", fallback)
    if profile:  # which EP ran each node
        options.enable_profiling = True
        options.profile_file_prefix = profile
    provider_options = {
        "backend_path": onnxruntime_qnn.get_qnn_htp_path(),
        # QNN quantizes the graph's inputs and outputs itself, as it must without a
        # fallback: otherwise they are CPU nodes and would count as refused.
        "offload_graph_io_quantization": "0",
    }
    options.add_provider_for_devices(list(qnn_devices()), provider_options)
    return onnxruntime.InferenceSession(str(path), options)


def cpu_nodes(path: Path, feeds: dict[str, Any], threads: int, directory: Path) -> dict[str, int]:
    """Operator type -> how many of its nodes ran on the CPU EP, from one profiled run
    with the fallback allowed."""
    session = qnn_session(path, threads, cpu_fallback=True, profile=str(directory / "qnn"))
    session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    return dict(
        collections.Counter(
            event["args"]["op_name"]
            for event in events
            if event.get("cat") == "Node"
            and event.get("args", {}).get("provider") == "CPUExecutionProvider"
            and event["name"].endswith("_kernel_time")
        )
    )


def finalize_errors(path: Path, threads: int) -> list[str]:
    """The errors QNN logs while failing to prepare the graph (its exception only says
    that it failed), from a second, verbose attempt in a process of its own: QNN logs
    through onnxruntime's default logger, whose severity is fixed for a process when
    the plugin is registered.  Distinct, in order."""
    attempt = subprocess.run(
        [sys.executable, __file__, str(path), str(threads)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=FINALIZE_TIMEOUT,
        check=False,
    )
    errors, nodes = [], []
    for line in attempt.stderr.splitlines() + attempt.stdout.splitlines():
        found = QNN_LOG_ERROR.search(line)
        if found and not any(noise in line for noise in QNN_CONSEQUENTIAL):
            # Without op ids and measured values, so that the reason is the same each run.
            message = re.sub(r"; OpID: .*|^\s*0x[0-9a-f]+ ", "", found.group(1)).strip()
            errors.append(re.sub(r": [-+.\de]+$", "", message))
        named = QNN_LOG_NODE.search(line)
        if named:
            nodes.append(named.group(1))
    # The op it could not create first: the reason is cut at a few hundred characters.
    errors.sort(key=lambda message: "could not create op" not in message)
    if nodes:
        errors.append(f"in ONNX nodes {', '.join(nodes[:3])}" + (", ..." if len(nodes) > 3 else ""))
    return list(dict.fromkeys(errors))


def prepare_in_child(path: Path, threads: int, timeout: float = PREPARE_TIMEOUT) -> None:
    """Prepare the graph once in a child process, so that a preparation that does not
    end (or kills its process) is QnnRefused rather than a hung or dead test process.
    Any other failure is left to the parent's own attempt, which explains it."""
    try:
        attempt = subprocess.run(
            [sys.executable, __file__, "prepare", str(path), str(threads)],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise QnnRefused(f"QNN did not prepare the graph in {timeout:g} s") from None
    if attempt.returncode < 0:
        name = signal.Signals(-attempt.returncode).name
        raise QnnRefused(f"QNN's graph preparation killed its process ({name})")


def strict_session(path: Path, feeds: dict[str, Any], threads: int, directory: Path) -> Any:
    """The session with every node on QNN, or QnnRefused naming what QNN left to the CPU
    or why it could not prepare the graph."""
    prepare_in_child(path, threads)
    try:
        return qnn_session(path, threads)
    except Exception as error:
        if FINALIZE_FAILED in str(error):
            errors = finalize_errors(path, threads)
            if errors:
                # from None: the EP's own error only says "Failed to finalize".
                raise QnnRefused(f"QNN cannot prepare the graph: {'; '.join(errors)}") from None
            raise
        if CPU_FALLBACK_REFUSED not in str(error):
            raise
        refused = cpu_nodes(path, feeds, threads, directory)
        if not refused:
            raise
        named = ", ".join(f"{op} ({count})" for op, count in sorted(refused.items()))
        raise QnnRefused(f"QNN leaves nodes to the CPU EP: {named}") from None


def _child(arguments: list[str]) -> int:
    """`prepare MODEL THREADS`: prepare_in_child's attempt (exit 1 when it fails);
    `MODEL THREADS`: finalize_errors' verbose attempt, whose log is what is wanted."""
    import onnxruntime

    if arguments[0] == "prepare":
        try:
            qnn_session(Path(arguments[1]), int(arguments[2]))
        except Exception:  # the parent's own attempt explains it
            return 1
        return 0
    onnxruntime.set_default_logger_severity(0)  # before the plugin is registered
    with contextlib.suppress(Exception):  # it fails again: its log is what is wanted
        qnn_session(Path(arguments[0]), int(arguments[1]), verbose=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
