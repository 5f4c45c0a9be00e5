"""The CI workflow and the nox sessions stay in step (STYLE.md: one marker, one job)."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from test.common import hardware
from test.framework.conftest import REPO_ROOT

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the CI workflow")
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
NOX_SESSION = re.compile(r"\bnox\s+(?:-\S+\s+)*?-s\s+([\w-]+)")


def sessions_named_by_jobs(workflow: Path) -> dict[str, set[str]]:
    """job id -> the nox sessions its `run:` steps invoke."""
    jobs = yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"]
    named: dict[str, set[str]] = {}
    for job_id, job in jobs.items():
        commands = " ".join(step.get("run", "") for step in job.get("steps", []))
        named[job_id] = set(NOX_SESSION.findall(commands))
    return named


@functools.cache
def load_noxfile() -> Any:
    """noxfile.py as a module (registering its sessions with nox, once)."""
    spec = importlib.util.spec_from_file_location("suite_noxfile", REPO_ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_session_names() -> list[str]:
    """Every session noxfile.py defines, default or not, straight from nox's registry."""
    import nox.registry

    load_noxfile()
    return list(nox.registry.get())


@pytest.fixture(scope="module")
def nox_sessions() -> set[str]:
    """Every session noxfile.py defines."""
    pytest.importorskip("nox", reason="nox is needed to read the sessions")
    return set(registered_session_names())


@pytest.mark.slow  # starts nox in a subprocess
def test_nox_lists_the_registered_sessions(nox_sessions: set[str]) -> None:
    # `nox --list --json` lists only selected sessions, so select them all.
    listing = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "--sessions", *sorted(nox_sessions)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert {entry["session"] for entry in json.loads(listing.stdout)} == nox_sessions


def test_every_job_runs_an_existing_session(nox_sessions: set[str]) -> None:
    for job_id, sessions in sessions_named_by_jobs(WORKFLOW).items():
        assert sessions, f"CI job {job_id!r} runs no nox session"
        unknown = sessions - nox_sessions
        assert not unknown, f"CI job {job_id!r} names unknown nox sessions {sorted(unknown)}"


def test_every_platform_session_has_a_job(nox_sessions: set[str]) -> None:
    in_ci = set().union(*sessions_named_by_jobs(WORKFLOW).values())
    platform_sessions = {s for s in nox_sessions if s.startswith("models-")}
    assert platform_sessions, "no models-<platform> sessions found"
    missing = platform_sessions - in_ci
    assert not missing, f"platform sessions without a CI job: {sorted(missing)}"


def test_platform_sessions_name_real_platforms(nox_sessions: set[str]) -> None:
    for session in (s for s in nox_sessions if s.startswith("models-")):
        assert session.removeprefix("models-") in hardware.PLATFORMS, session


def test_issue_sessions_exist(nox_sessions: set[str]) -> None:
    required = {"framework", "models", "models-cpu", "models-cuda", "models-mps", "models-rocm"}
    required |= {"baselines", "coverage", "lint"}
    assert required <= nox_sessions


def test_every_backend_has_a_session_and_a_job(nox_sessions: set[str]) -> None:
    from test.common.backends.catalog import BACKENDS

    assert {"backends"} | {f"backend-{backend.name}" for backend in BACKENDS} <= nox_sessions
    # The CPU backends in one job, those on each accelerator in another (its runner).
    accelerators = {backend.platform for backend in BACKENDS} - {"cpu"}
    wanted = {"backends"} | {f"backends-{platform}" for platform in accelerators}
    assert wanted <= set().union(*sessions_named_by_jobs(WORKFLOW).values())
    assert {s for s in nox_sessions if s.startswith("backends-")} == wanted - {"backends"}


def test_mps_job_disables_cpu_fallback() -> None:
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["models-mps"]
    assert job["env"]["PYTORCH_ENABLE_MPS_FALLBACK"] == "0"


def test_session_pattern_reads_common_spellings(tmp_path: Path) -> None:
    workflow = tmp_path / "ci.yml"
    workflow.write_text(
        "jobs:\n"
        "  a: {steps: [{run: 'nox -s framework'}, {uses: x}]}\n"
        "  b: {steps: [{run: 'nox -r -s models-cpu -- -k bert'}]}\n"
        "  c: {steps: [{run: 'echo nothing'}]}\n"
    )
    assert sessions_named_by_jobs(workflow) == {"a": {"framework"}, "b": {"models-cpu"}, "c": set()}


def workflow_steps() -> list[tuple[str, dict[str, Any]]]:
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    return [(job_id, step) for job_id, job in jobs.items() for step in job.get("steps", [])]


def test_every_action_is_pinned_by_commit_with_its_version_named() -> None:
    """A tag can be moved to other code; a commit cannot (zizmor: unpinned-uses)."""
    uses_lines = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert uses_lines
    for line in uses_lines:
        assert re.search(r"uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_only_a_job_that_pushes_keeps_checkout_credentials() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    for job_id, job in jobs.items():
        pushes = any("git push" in step.get("run", "") for step in job["steps"])
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is pushes, job_id


def test_pip_and_nox_environments_are_cached_by_the_pins() -> None:
    for job_id, step in workflow_steps():
        if step.get("uses", "").startswith("actions/setup-python@"):
            assert step["with"]["cache"] == "pip", job_id
            assert step["with"]["cache-dependency-path"] == "constraints.txt", job_id
        if step.get("uses", "").startswith("actions/cache@"):
            assert step["with"]["path"] == ".nox", job_id
            assert "hashFiles('constraints.txt'" in step["with"]["key"], job_id


@pytest.mark.slow  # runs two command-line tools
@pytest.mark.parametrize(
    "command",
    [
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"],
        ["zizmor", "--offline"],
    ],
    ids=["schema", "zizmor"],
)
def test_the_workflow_passes_the_lint_session_checks(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed (nox -s lint installs it)")
    result = subprocess.run([*command, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("platform", "environment", "expected"),
    [
        ("cpu", {}, ["--index-url", "https://download.pytorch.org/whl/cpu"]),
        ("rocm", {}, ["--index-url", "https://download.pytorch.org/whl/rocm7.2"]),
        ("cuda", {}, []),
        ("mps", {}, []),
        ("auto", {}, []),
        ("cpu", {"PIP_FIND_LINKS": "/opt/wheels"}, []),
        ("rocm", {"PIP_NO_INDEX": "1"}, []),
    ],
)
def test_each_platform_session_gets_its_torch_build(
    platform: str, environment: dict[str, str], expected: list[str]
) -> None:
    assert load_noxfile().torch_index_arguments(platform, environment) == expected


@pytest.mark.slow  # runs nox
def test_a_session_can_run_on_the_current_environment_and_says_which_torch() -> None:
    pytest.importorskip("torch")
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--no-venv", "-s", "models-cpu", "--", "--collect-only"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    import torch

    assert f"torch {torch.__version__} from {torch.__file__}" in result.stdout
    assert "tests collected" in result.stdout
