"""The browser backends: the ONNX file run by onnxruntime-web in headless Chromium.

One Chromium and one local HTTP server (127.0.0.1, a free port) per process, reused
for every model: the server hands the browser's page one job at a time (the ONNX file,
each input as raw little-endian bytes, the execution provider), the page runs it with
onnxruntime-web (its `dist/`, served beside the page), POSTs the first output's bytes
back and reloads itself, so each model gets a fresh page in the same browser
(browser_page.html).  A browser that dies, or whose page is silent for PAGE_TIMEOUT,
is restarted once and the model tried again, with a `BrowserRestarted` warning; a
second loss or silence fails the model, and the next model starts a fresh browser.  The
browser is closed at the end of the session (backend_report.py) or of the process.
Nothing leaves the machine: Chromium runs with its background networking, updates
and sync off.

Execution providers: `wasm` (one thread: a page without cross-origin isolation has no
SharedArrayBuffer), `webgpu` and `webnn`.  Whether this Chromium offers the latter two
is probed once per process by the same page (`unavailable`): an absent API is a skip
naming it.

Needs Debian's `chromium` and the npm package `onnxruntime-web` (package.json pins
it; `npm ci` puts it in node_modules/, or set ORT_WEB_DIST to its `dist/` folder).
"""

from __future__ import annotations

import atexit
import dataclasses
import http.server
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from test.common.chromium import HEADLESS_FLAGS, find_chromium

REPO_ROOT = Path(__file__).resolve().parents[3]
PAGE = Path(__file__).with_name("browser_page.html")
#: Seconds a page may take to load onnxruntime-web, the model, and run it once.
PAGE_TIMEOUT = 120
#: Seconds the server holds the page's request for a job before answering "none yet".
JOB_WAIT = 5
#: torch dtype name -> onnxruntime-web tensor type (the page maps it to a typed array).
TENSOR_TYPES = {"float32": "float32", "int64": "int64", "int32": "int32", "bool": "bool"}
OUTPUT_TYPES = {"float32": "float32", "int64": "int64", "int32": "int32"}
#: Beyond HEADLESS_FLAGS.  WebGPU is off on Linux unless asked for; with the GPU
#: disabled, Chromium's Dawn then offers SwiftShader's Vulkan adapter, which runs on
#: the CPU (a "fallback adapter").  WebNN (`navigator.ml`) is a feature behind its flag.
BROWSER_FLAGS = ("--enable-unsafe-webgpu", "--enable-features=WebMachineLearningNeuralNetwork")


@dataclasses.dataclass(frozen=True)
class Provider:
    """An onnxruntime-web execution provider, and the dist/ script that carries it."""

    bundle: str
    #: What `executionProviders` is given.
    option: Any


PROVIDERS = {
    "wasm": Provider("ort.wasm.min.js", "wasm"),
    "webgpu": Provider("ort.webgpu.min.js", "webgpu"),
    # onnxruntime-web's docs: WebNN needs the `all` bundle.  The CPU device: the GPU
    # is disabled, and there is no NPU.
    "webnn": Provider("ort.all.min.js", {"name": "webnn", "deviceType": "cpu"}),
}


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A page that went away mid-request (its browser closed or restarted while it
        # waited for a job) is no error; anything else is printed as usual.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class BrowserLost(RuntimeError):
    """Chromium exited, or its page stopped answering."""


class BrowserRestarted(UserWarning):
    """Chromium was lost while serving a model and was started again."""


def chromium() -> str | None:
    """Chromium's executable under the names distributions give it (GitHub's runners: Chrome)."""
    return find_chromium()


def ort_web_dist() -> Path:
    chosen = os.environ.get("ORT_WEB_DIST")
    return Path(chosen) if chosen else REPO_ROOT / "node_modules" / "onnxruntime-web" / "dist"


def missing(provider: str = "wasm") -> list[str]:
    """What the browser backend with `provider` needs and this machine lacks, by package."""
    absent = [] if chromium() else ["chromium (Debian package)"]
    if not (ort_web_dist() / PROVIDERS[provider].bundle).exists():
        absent.append("onnxruntime-web (npm ci)")
    return absent


class BrowserHost:
    """One headless Chromium and the local server that feeds its page, job by job."""

    def __init__(self, timeout: float = PAGE_TIMEOUT) -> None:
        self.timeout = timeout
        #: How many times Chromium was started, and why each restart happened.
        self.starts = 0
        self.restarts: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._server: _Server | None = None
        self._root = Path(tempfile.mkdtemp(prefix="browser-backend-"))
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._jobs: queue.Queue[dict[str, Any]] = queue.Queue()
        self._replies: dict[str, tuple[threading.Event, dict[str, Any]]] = {}
        self._ids = itertools.count()
        (self._root / "page.html").write_text(PAGE.read_text(encoding="utf-8"), encoding="utf-8")
        (self._root / "dist").symlink_to(ort_web_dist(), target_is_directory=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def call(self, job: dict[str, Any], files: dict[str, Path | bytes]) -> dict[str, Any]:
        """Hand `job` (its `files` beside it) to the page; its reply: `kind`, `query`, `body`."""
        job = {**job, "id": str(next(self._ids))}
        folder = self._root / "jobs" / job["id"]
        folder.mkdir(parents=True)
        for name, content in files.items():
            if isinstance(content, bytes):
                (folder / name).write_bytes(content)
            else:
                (folder / name).symlink_to(Path(content).resolve())
        try:
            return self._call_with_one_restart(job)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _call_with_one_restart(self, job: dict[str, Any]) -> dict[str, Any]:
        if self.process is None:
            self._start()
        elif not self.alive():
            status = self.process.returncode
            self._restart(f"Chromium had exited (status {status}) since its last job")
        # Chromium exited on this job, or its page hung: once more, in a new browser.
        # Pages hang now and then under WebGPU on SwiftShader: in the sweep 9 models'
        # pages sent nothing back in 120 s, and 8 of them passed when run again, at once.
        try:
            return self._exchange(job)
        except (BrowserLost, TimeoutError) as first:
            self._restart(str(first))
            try:
                return self._exchange(job)
            except (BrowserLost, TimeoutError) as again:
                self._stop()  # the next job starts a fresh one
                if isinstance(again, TimeoutError):
                    again_in_new = f"{again}, twice (the second time in a new browser)"
                    raise TimeoutError(again_in_new) from None
                raise BrowserLost(f"Chromium was lost twice on one job: {first}; {again}") from None

    def _exchange(self, job: dict[str, Any]) -> dict[str, Any]:
        arrived, reply = threading.Event(), {}
        self._replies[job["id"]] = (arrived, reply)
        self._jobs.put(job)
        deadline = time.monotonic() + self.timeout
        try:
            while not arrived.wait(min(0.2, self.timeout)):
                if not self.alive():
                    assert self.process is not None
                    raise BrowserLost(f"Chromium exited (status {self.process.returncode})")
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the page sent nothing back in {self.timeout:g} s")
        finally:
            del self._replies[job["id"]]
        return reply

    def _start(self) -> None:
        self._jobs = queue.Queue()  # jobs of a lost browser are not handed to the new one
        self._server = _Server(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        url = f"http://127.0.0.1:{self._server.server_address[1]}/page.html"
        command = [*_dies_with_this_process(), str(chromium()), *HEADLESS_FLAGS, *BROWSER_FLAGS]
        command += [f"--user-data-dir={self._profile.name}", url]
        # Its own process group, so that closing it ends its renderer and GPU processes too.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.starts += 1

    def _restart(self, why: str) -> None:
        self.restarts.append(why)
        warnings.warn(BrowserRestarted(f"headless Chromium restarted: {why}"), stacklevel=3)
        self._stop()
        self._start()

    def _stop(self) -> None:
        if self.process is not None:
            _end_process_group(self.process)
            self.process = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def close(self) -> None:
        """Stop Chromium and the server, and remove the served folder."""
        self._stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def _handler(self) -> type[http.server.SimpleHTTPRequestHandler]:
        host, root, jobs = self, str(self._root), self._jobs

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=root, **kwargs)

            def do_GET(self) -> None:
                if urlparse(self.path).path != "/job":
                    super().do_GET()
                    return
                try:
                    job = jobs.get(timeout=JOB_WAIT)
                except queue.Empty:
                    self.send_response(204)  # none yet: the page asks again
                    self.end_headers()
                    return
                body = json.dumps(job).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(204)
                self.end_headers()
                host._receive(self.path, body)

            def log_message(self, *_: Any) -> None:  # quiet: the test output is the report
                pass

        return Handler

    def _receive(self, path: str, body: bytes) -> None:
        url = urlparse(path)
        job_id = url.path.rsplit("/", 1)[-1]
        waiting = self._replies.get(job_id)
        if waiting is None:  # a reply to a job given up on
            return
        arrived, reply = waiting
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        reply.update(kind=query.pop("kind", ""), query=query, body=body)
        arrived.set()


def _dies_with_this_process() -> list[str]:
    """A prefix that makes Chromium get SIGTERM when this process dies, even by SIGKILL
    (util-linux's setpriv sets the parent-death signal, then execs): a killed xdist
    worker then leaves no browser behind."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _end_process_group(process: subprocess.Popen[bytes]) -> None:
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:  # already gone, with its group
            break
        try:
            process.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


_SHARED: list[BrowserHost] = []


def shared_host() -> BrowserHost:
    """This process's browser, made on first use; closed by `close_shared` (or at exit)."""
    if not _SHARED:
        _SHARED.append(BrowserHost())
    return _SHARED[0]


@atexit.register
def close_shared() -> None:
    while _SHARED:
        _SHARED.pop().close()


_OFFERS: dict[str, Any] = {}


def offers() -> dict[str, Any]:
    """What this Chromium exposes (navigator.gpu and its adapter, navigator.ml and a CPU
    context), asked once per process of the shared browser's page."""
    if not _OFFERS:
        reply = shared_host().call({"kind": "probe"}, {})
        _OFFERS.update(json.loads(reply["body"]))
    return _OFFERS


def unavailable(provider: str) -> str | None:
    """Why this Chromium cannot run `provider` (the API it lacks), or None."""
    return absence(provider, offers())


def absence(provider: str, found: dict[str, Any]) -> str | None:
    """The API `provider` needs that the probe's `found` lacks, named; None if none."""
    if provider == "webgpu":
        if not found.get("gpu"):
            return "this Chromium exposes no navigator.gpu"
        if not found.get("adapter"):
            error = found.get("adapterError")
            if error:
                return f"navigator.gpu.requestAdapter() fails: {error}"
            return "navigator.gpu.requestAdapter() gives no adapter"
    if provider == "webnn":
        if not found.get("ml"):
            return "this Chromium exposes no navigator.ml"
        if not found.get("context"):
            error = found.get("contextError", "no context")
            return f"navigator.ml.createContext({{deviceType: 'cpu'}}) fails: {error}"
    return None


def run_in_browser(
    model: Path, args: tuple[Any, ...], provider: str = "wasm", host: BrowserHost | None = None
) -> Any:
    """The ONNX model's first output on `args`, computed by onnxruntime-web's `provider`
    in Chromium (this process's shared browser unless `host` is given)."""
    files: dict[str, Path | bytes] = {"model.onnx": model}
    spec = _input_spec(model, args, files)
    chosen = PROVIDERS[provider]
    job = {"kind": "run", "bundle": chosen.bundle, "provider": chosen.option, "inputs": spec}
    reply = (host or shared_host()).call(job, files)
    if reply["kind"] != "result":
        raise RuntimeError(f"onnxruntime-web: {reply['body'].decode(errors='replace')}")
    return _tensor(reply)


def _input_spec(
    model: Path, args: tuple[Any, ...], files: dict[str, Path | bytes]
) -> list[dict[str, Any]]:
    import onnx

    names = [graph_input.name for graph_input in onnx.load(str(model)).graph.input]
    spec = []
    for index, (name, tensor) in enumerate(zip(names, args, strict=True)):
        dtype = str(tensor.dtype).removeprefix("torch.")
        if dtype not in TENSOR_TYPES:
            raise TypeError(f"input {name}: {dtype} has no onnxruntime-web tensor type here")
        files[f"input{index}.bin"] = tensor.contiguous().numpy().tobytes()
        shape = list(tensor.shape)
        spec.append({"name": name, "file": f"input{index}.bin", "type": dtype, "shape": shape})
    return spec


def _tensor(reply: dict[str, Any]) -> Any:
    import numpy
    import torch

    kind = reply["query"].get("type", "")
    if kind not in OUTPUT_TYPES:
        raise TypeError(f"onnxruntime-web returned a {kind} output")
    shape = [int(size) for size in reply["query"].get("shape", "").split(",") if size]
    values = numpy.frombuffer(reply["body"], dtype=OUTPUT_TYPES[kind]).reshape(shape)
    return torch.from_numpy(values.copy())
