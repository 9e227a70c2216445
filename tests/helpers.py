"""Helpers shared by the tests."""

import subprocess
import sys
from pathlib import Path

RUNG = str(Path(sys.executable).parent / "rung")


def rung(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the installed `rung` command; its exit code and output."""
    return subprocess.run([RUNG, *args], capture_output=True, text=True, timeout=timeout)
