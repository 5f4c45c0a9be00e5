"""The `browser` backend: the ONNX file run by onnxruntime-web (wasm) in headless Chromium.

A local HTTP server (127.0.0.1, a free port) serves a folder holding the page, the
ONNX file, each input as raw little-endian bytes, and onnxruntime-web's `dist/`.  The
page runs the session with the `wasm` execution provider (one thread: a page without
cross-origin isolation has no SharedArrayBuffer) and POSTs the first output's bytes
back; the browser is then closed.  Nothing leaves the machine: Chromium runs with
its background networking, updates and sync off.

Needs Debian's `chromium` and the npm package `onnxruntime-web` (package.json pins
it; `npm ci` puts it in node_modules/, or set ORT_WEB_DIST to its `dist/` folder).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from test.common.chromium import HEADLESS_FLAGS, find_chromium

REPO_ROOT = Path(__file__).resolve().parents[3]
#: Seconds a page may take to load onnxruntime-web, the model, and run it once.
PAGE_TIMEOUT = 120
#: torch dtype name -> (onnxruntime-web tensor type, JavaScript typed array).
TENSOR_TYPES = {
    "float32": ("float32", "Float32Array"),
    "int64": ("int64", "BigInt64Array"),
    "int32": ("int32", "Int32Array"),
    "bool": ("bool", "Uint8Array"),
}
OUTPUT_TYPES = {"float32": "float32", "int64": "int64", "int32": "int32"}

PAGE = """<!doctype html>
<script src="dist/ort.wasm.min.js"></script>
<script>
const ARRAYS = {float32: Float32Array, int64: BigInt64Array, int32: Int32Array,
                bool: Uint8Array};
async function main() {
  try {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = new URL("dist/", location.href).href;
    const spec = await (await fetch("inputs.json")).json();
    const session = await ort.InferenceSession.create("model.onnx",
                                                      {executionProviders: ["wasm"]});
    const feeds = {};
    for (const input of spec) {
      const bytes = await (await fetch(input.file)).arrayBuffer();
      feeds[input.name] = new ort.Tensor(input.type, new ARRAYS[input.type](bytes),
                                         input.shape);
    }
    const output = (await session.run(feeds))[session.outputNames[0]];
    await fetch(`result?type=${output.type}&shape=${output.dims.join(",")}`,
                {method: "POST", body: output.data});
  } catch (error) {
    await fetch("error", {method: "POST", body: String(error)});
  }
}
main();
</script>
"""


#: Chromium's executable under the names distributions give it (GitHub's runners: Chrome).
def chromium() -> str | None:
    return find_chromium()


def ort_web_dist() -> Path:
    chosen = os.environ.get("ORT_WEB_DIST")
    return Path(chosen) if chosen else REPO_ROOT / "node_modules" / "onnxruntime-web" / "dist"


def missing() -> list[str]:
    """What the browser backend needs and this machine lacks, by package name."""
    absent = [] if chromium() else ["chromium (Debian package)"]
    if not (ort_web_dist() / "ort.wasm.min.js").exists():
        absent.append("onnxruntime-web (npm ci)")
    return absent


def run_in_browser(model: Path, args: tuple[Any, ...]) -> Any:
    """The ONNX model's first output on `args`, computed by onnxruntime-web in Chromium."""
    with tempfile.TemporaryDirectory(prefix="browser-backend-") as folder:
        root = Path(folder)
        (root / "page.html").write_text(PAGE, encoding="utf-8")
        shutil.copy(model, root / "model.onnx")
        (root / "dist").symlink_to(ort_web_dist(), target_is_directory=True)
        (root / "inputs.json").write_text(json.dumps(_write_inputs(root, model, args)))
        reply = _serve_and_browse(root)
    return _tensor(reply)


def _write_inputs(root: Path, model: Path, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    import onnx

    names = [graph_input.name for graph_input in onnx.load(str(model)).graph.input]
    spec = []
    for index, (name, tensor) in enumerate(zip(names, args, strict=True)):
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in TENSOR_TYPES:
            raise TypeError(f"input {name}: {dtype} has no onnxruntime-web tensor type here")
        (root / f"input{index}.bin").write_bytes(tensor.contiguous().numpy().tobytes())
        spec.append(
            {
                "name": name,
                "file": f"input{index}.bin",
                "type": TENSOR_TYPES[dtype][0],
                "shape": list(tensor.shape),
            }
        )
    return spec


def _serve_and_browse(root: Path) -> dict[str, Any]:
    """Serve `root`, open its page in headless Chromium, wait for the page's POST."""
    reply: dict[str, Any] = {}
    arrived = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            reply.update(path=self.path, body=body)
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *_: Any) -> None:  # quiet: the test output is the report
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    url = f"http://127.0.0.1:{server.server_address[1]}/page.html"
    command = [chromium(), *HEADLESS_FLAGS, f"--user-data-dir={profile.name}", url]
    browser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not arrived.wait(PAGE_TIMEOUT):
            raise TimeoutError(f"the page sent nothing back in {PAGE_TIMEOUT} s")
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        server.shutdown()
        server.server_close()
        profile.cleanup()
    if reply["path"].startswith("/error"):
        raise RuntimeError(f"onnxruntime-web: {reply['body'].decode(errors='replace')}")
    return reply


def _tensor(reply: dict[str, Any]) -> Any:
    from urllib.parse import parse_qs, urlparse

    import numpy
    import torch

    query = parse_qs(urlparse(reply["path"]).query)
    kind = query["type"][0]
    if kind not in OUTPUT_TYPES:
        raise TypeError(f"onnxruntime-web returned a {kind} output")
    shape = [int(size) for size in query["shape"][0].split(",") if size]
    values = numpy.frombuffer(reply["body"], dtype=OUTPUT_TYPES[kind]).reshape(shape)
    return torch.from_numpy(values.copy())
