"""Compare our backends' results with optimum's supported-architecture lists.

    python scripts/compare_optimum.py [--optimum-dir SITE_PACKAGES] [--expectations DIR]

optimum lists the architectures its ONNX exporter (optimum-onnx) and its OpenVINO
exporter (optimum-intel) support by decorating one config class per model type
(`@register_tasks_manager_onnx("bert", ...)`, `@register_in_tasks_manager("bert",
...)`).  Those files are read with `ast`, not imported: optimum's imports pin other
transformers releases than ours.  Install them beside the suite without their
dependencies:

    pip install --no-deps --target /tmp/optimum -c constraints.txt \
        optimum optimum-onnx optimum-intel

For `onnx` and `openvino`, prints the architectures we pass that optimum does not
list, and those optimum lists that we ran and do not pass.  Model types are compared
with `_` and `-` treated alike (optimum writes `gpt-neo` for transformers' `gpt_neo`).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from test.common.backends import expectations  # noqa: E402

#: backend -> (distribution, its model_configs.py inside the optimum package, decorator)
SOURCES = {
    "onnx": ("optimum-onnx", "exporters/onnx/model_configs.py", "register_tasks_manager_onnx"),
    "openvino": (
        "optimum-intel",
        "exporters/openvino/model_configs.py",
        "register_in_tasks_manager",
    ),
}


def registered_model_types(source: str, decorator: str) -> set[str]:
    """The string first arguments of every `@decorator("model_type", ...)` in source."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        for call in getattr(node, "decorator_list", ()):
            name = getattr(getattr(call, "func", None), "id", None)
            if name == decorator and call.args and isinstance(call.args[0], ast.Constant):
                found.add(str(call.args[0].value))
    return found


def normalized(model_type: str) -> str:
    return model_type.replace("_", "-")


def compare(
    supported: set[str], rows: dict[str, expectations.Expectation]
) -> tuple[list[str], list[str]]:
    """(what we pass that optimum does not list, what optimum lists that we ran and fail)."""
    listed = {normalized(name) for name in supported}
    ours_only = sorted(
        m for m, row in rows.items() if row.status == "pass" and normalized(m) not in listed
    )
    theirs_failing = sorted(
        m for m, row in rows.items() if row.status != "pass" and normalized(m) in listed
    )
    return ours_only, theirs_failing


def version_of(distribution: str, directory: Path) -> str:
    found = importlib.metadata.distributions(name=distribution, path=[str(directory)])
    return next((d.version for d in found), "unknown version")


def report(backend: str, optimum_dir: Path, expectations_dir: Path) -> list[str]:
    distribution, relative, decorator = SOURCES[backend]
    path = optimum_dir / "optimum" / relative
    if not path.exists():
        return [f"{backend}: {path} not found (install {distribution}, see --help)"]
    supported = registered_model_types(path.read_text(encoding="utf-8"), decorator)
    rows = expectations.load(backend, expectations_dir)
    ours_only, theirs_failing = compare(supported, rows)
    passed = sum(row.status == "pass" for row in rows.values())
    return [
        f"{backend}: {distribution} {version_of(distribution, optimum_dir)} lists {len(supported)} "
        f"architectures; we ran {len(rows)} and pass {passed}",
        f"  we pass, {distribution} does not list ({len(ours_only)}): "
        f"{', '.join(ours_only) or '-'}",
        f"  {distribution} lists, we do not pass ({len(theirs_failing)}): "
        f"{', '.join(theirs_failing) or '-'}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimum-dir", type=Path, default=None, help="where `optimum/` lies")
    parser.add_argument("--expectations", type=Path, default=expectations.DATA_DIR)
    options = parser.parse_args(argv)
    optimum_dir = options.optimum_dir or _installed_dir()
    if optimum_dir is None:
        print("error: optimum is not installed; pass --optimum-dir (see --help)", file=sys.stderr)
        return 2
    try:
        for backend in SOURCES:
            print("\n".join(report(backend, optimum_dir, options.expectations)))
    except expectations.CorruptExpectations as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _installed_dir() -> Path | None:
    """The folder holding the installed `optimum` package, without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("optimum")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]).parent if locations else None


if __name__ == "__main__":
    sys.exit(main())
