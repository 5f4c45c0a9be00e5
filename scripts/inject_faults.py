"""How many injected faults make the suite fail: the suite's own test.

    python scripts/inject_faults.py [--architectures bert,gpt2,...] [--faults a,b] [--workers 2]

For each fault of test/common/correctness/faults.py it runs the battery on a sample of
architectures (its goldens as they are committed) with that fault applied, and
reports whether the suite failed, and which checks failed for which architectures.
A control run without a fault must pass first, or the counts would mean nothing.
The exit status is 0 when the control passed, whatever the faults did: this is a
measurement.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.measure_battery import battery_command  # noqa: E402
from test.common.correctness.faults import ENVIRONMENT_VARIABLE, FAULTS  # noqa: E402

#: One or more architectures of each family of code: encoders, decoders (GPT-2,
#: Llama-likes, Mamba), encoder-decoders, vision, audio, multimodal.
DEFAULT_ARCHITECTURES = (
    "bert",
    "roberta",
    "deberta-v2",
    "gpt2",
    "llama",
    "qwen2",
    "gemma",
    "mamba2",
    "t5",
    "bart",
    "vit",
    "convnext",
    "resnet",
    "whisper",
    "wav2vec2",
    "clip",
)
FAILED_LINE = re.compile(r"^FAILED \S+::test_(\w+)\[([^\]]+)-(\w+)\]")


@dataclasses.dataclass
class Outcome:
    fault: str
    returncode: int
    failures: list[tuple[str, str]]  # (check, architecture)

    @property
    def caught(self) -> bool:
        return self.returncode != 0

    def by_check(self) -> str:
        counts = collections.Counter(check for check, _ in self.failures)
        return ", ".join(f"{check} {n}" for check, n in sorted(counts.items())) or "-"


def run_battery(fault: str, architectures: Sequence[str], workers: int) -> Outcome:
    selection = " or ".join(f"[{name}-cpu]" for name in architectures)
    extra = ["-p", "test.common.correctness.faults", "-rf", "-k", selection]
    command = battery_command(workers, extra)
    environment = {**os.environ, ENVIRONMENT_VARIABLE: fault, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    return Outcome(fault, result.returncode, failed_checks(result.stdout))


def failed_checks(output: str) -> list[tuple[str, str]]:
    """(check, architecture) of every `FAILED` line of pytest's `-rf` summary."""
    return [
        (match.group(1), match.group(2))
        for line in output.splitlines()
        if (match := FAILED_LINE.match(line))
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", default=",".join(DEFAULT_ARCHITECTURES))
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args(argv)
    architectures = [name for name in options.architectures.split(",") if name]
    control = run_battery("", architectures, options.workers)
    if control.caught:
        print(f"control run (no fault) failed: {control.by_check()}; fix that first")
        return 1
    print(f"control run (no fault): passed, {len(architectures)} architectures")
    caught = 0
    faults = [name for name in options.faults.split(",") if name]
    for name in faults:
        outcome = run_battery(name, architectures, options.workers)
        caught += outcome.caught
        flagged = len({arch for _, arch in outcome.failures})
        verdict = "CAUGHT" if outcome.caught else "missed"
        print(
            f"{verdict:7} {name:22} {FAULTS[name].kind:15} "
            f"{flagged:2}/{len(architectures)} architectures; failed checks: {outcome.by_check()}"
        )
    print(f"caught {caught} of {len(faults)} faults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
