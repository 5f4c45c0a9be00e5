"""The CI workflow and the nox sessions stay in step (STYLE.md: one marker, one job)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

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


def registered_session_names() -> list[str]:
    """Every session noxfile.py defines, default or not, straight from nox's registry."""
    import nox.registry

    spec = importlib.util.spec_from_file_location("suite_noxfile", REPO_ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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
    assert "backends" in set().union(*sessions_named_by_jobs(WORKFLOW).values())


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
