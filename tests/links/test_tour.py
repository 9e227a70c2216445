"""examples/links_tour.py, which docs/links.md shows, runs against the stack; the reference
service has none of the statefulness traps `rung lint` finds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rung.testing import RungStack
from tests.helpers import rung

ROOT = Path(__file__).parent.parent.parent
TOUR = ROOT / "examples" / "links_tour.py"


def test_the_tour_signs_up_links_follows_counts_and_disables(rung_stack: RungStack) -> None:
    env = {**os.environ, "RUNG_DIR": str(rung_stack.dir)}
    done = subprocess.run([sys.executable, str(TOUR)], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "signup: 201",
        "login: 200",
        "create: 201",
        "redirect: 302 https://example.com/rung",
        "clicks in the table: 1",
        "stats: 1 click(s) today",
        "disable: 200",
        "redirect: 410",
    ]


def test_the_service_has_no_statefulness_traps() -> None:
    done = rung("lint", str(ROOT / "src" / "rung_links"))
    assert (done.returncode, done.stdout.strip().lower()) == (0, "no findings"), done.stderr
