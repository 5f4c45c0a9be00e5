"""Expected failures, keyed by check and by the platform where they were observed.

An expected failure is an observation: check `reduced_precision` of `fnet` fails on
the CPU.  It says nothing about a GPU, where the same check may pass, so every
observation is keyed by platform and applies only there:

    [fnet.expected_failures.cpu]
    reduced_precision = "torch.fft.fftn rejects bfloat16 on CPU: ..."

Two kinds of row are not observations but facts of transformers' code, true on every
platform: `expected_failure` (the model cannot be built or run at all) and
`forward_failure` (it builds, but every check that runs it fails).  A package the model
needs is `requires = ["timm"]`: a skip naming the package wherever it is missing, never
an expected failure, so that a machine with timm runs those models.

A platform key may carry a CPU-feature qualifier, `cpu+amx`, for what was observed only
on processors with that feature (test/common/hardware.py: `observation_keys`); the most
specific key that names a check wins.

The checks a row may name are the test functions of the module that runs them,
read with `ast` (never imported): adding a check is adding one test function.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from test.common.hardware import CPU_QUALIFIERS, TORCH_DEVICE_OF_PLATFORM

ROOT = Path(__file__).resolve().parents[3]
#: The test module whose functions are the checks, per kind of registry row.
CHECK_MODULES: dict[str, Path] = {
    "architecture": ROOT / "test" / "improved" / "test_architecture_battery.py",
    "model_class": ROOT / "test" / "improved" / "test_task_heads.py",
}
#: The platforms an observation may be keyed by: the torch platforms, and each of them
#: with a qualifier (only `cpu+<feature>` is meaningful today).
PLATFORM_KEYS: tuple[str, ...] = (
    *TORCH_DEVICE_OF_PLATFORM,
    *(f"cpu+{feature}" for feature in CPU_QUALIFIERS),
)


class RegistryError(ValueError):
    """A registry data file (architectures.toml, heads.toml, the overlay) is malformed."""


def checks_in(path: Path, parameter: str) -> tuple[str, ...]:
    """The checks of a test module: its `test_*` functions that take `parameter`,
    without the `test_` prefix, in the order they are defined."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return tuple(
        node.name.removeprefix("test_")
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test_")
        and any(argument.arg == parameter for argument in node.args.args)
    )


@functools.cache
def checks_of(parameter: str) -> tuple[str, ...]:
    """The checks run on every `parameter` (`architecture` or `model_class`)."""
    path = CHECK_MODULES[parameter]
    return checks_in(path, parameter) if path.is_file() else ()


def check_observations(where: str, table: Any, checks: Sequence[str]) -> dict[str, dict[str, str]]:
    """`table` ({platform: {check: reason}}) validated; `where` names the row in errors."""
    if not isinstance(table, Mapping):
        raise RegistryError(f"{where}: expected_failures must be a table of platforms")
    for platform, observed in table.items():
        if platform not in PLATFORM_KEYS:
            raise RegistryError(
                f"{where}: expected_failures names unknown platform {platform!r}; "
                f"platforms: {PLATFORM_KEYS} (an observation is keyed by where it was seen)"
            )
        if not isinstance(observed, Mapping):
            raise RegistryError(f"{where}: expected_failures.{platform} must be a table")
        unknown = sorted(set(observed) - set(checks))
        if unknown:
            raise RegistryError(
                f"{where}: expected_failures.{platform} names unknown checks {unknown}; "
                f"checks: {tuple(checks)}"
            )
        for check, reason in observed.items():
            if not (isinstance(reason, str) and reason.strip()):
                raise RegistryError(f"{where}: expected_failures.{platform}.{check} needs a reason")
    return {platform: dict(observed) for platform, observed in table.items()}


def check_requires(where: str, value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
        raise RegistryError(f"{where}: requires must be a list of package names")
    return tuple(value)


def observed_failure(
    observations: Mapping[str, Mapping[str, str]], check: str, keys: Sequence[str]
) -> str | None:
    """The reason `check` is expected to fail on the first of `keys` (most specific
    first) that names it, else None."""
    for key in keys:
        if check in observations.get(key, {}):
            return f"observed on {key}: {observations[key][check]}"
    return None


def missing_packages(requires: Sequence[str]) -> list[str]:
    """The packages of `requires` that cannot be imported here (decided at run time)."""
    return [name for name in requires if importlib.util.find_spec(name) is None]


def row_status(
    expected_failure: str | None,
    requires: Sequence[str],
    forward_failure: str | None,
    observations: Mapping[str, Mapping[str, str]],
) -> str:
    """A row's status in one phrase, for `--list`: what stops it first."""
    if expected_failure:
        return f"xfail: {expected_failure}"
    if requires:
        return f"needs {', '.join(requires)}"
    if forward_failure:
        return f"xfail after loading: {forward_failure}"
    if observations:
        return "partial xfail: " + "; ".join(
            f"{platform}: {', '.join(sorted(checks))}"
            for platform, checks in sorted(observations.items())
        )
    return "runs"
