"""examples/custom_sink.py, which docs/queue.md shows under "Writing a broker or a sink",
runs: its sink counts each payment once, and the bad one ends a dead letter."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "custom_sink.py"


def test_the_custom_sink_example_sums_each_payment_once() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"totals: {{'ann': {sum(n for n in range(100) if n % 3)}, 'bob': {sum(range(0, 100, 3))}}}",
        "dead letters: 1",
    ]
