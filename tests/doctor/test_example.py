"""examples/doctor_report.py (shown in docs/doctor.md) runs against the session's stack."""

import os
import subprocess
import sys
from pathlib import Path

from rung.testing import RungStack

EXAMPLE = Path(__file__).parents[2] / "examples" / "doctor_report.py"


def test_the_doctor_example_prints_the_verdict(rung_stack: RungStack) -> None:
    env = {**os.environ, "RUNG_DIR": str(rung_stack.dir)}
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [verdict] = [line for line in done.stdout.splitlines() if line.startswith("verdict: ")]
    assert verdict.startswith(("verdict: no inflection point", "verdict: at the",
                               "verdict: approaching the"))  # fmt: skip
