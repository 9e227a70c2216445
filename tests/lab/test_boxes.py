"""Box sizes: a CPU quota per tier in a cgroup v1 `cpu` group, descendants included."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.lab import boxes

CPU_ROOT = boxes.CPU_ROOT
Boxes = boxes.Boxes


@pytest.fixture
def boxes() -> Iterator[Boxes]:
    made = Boxes.create()
    if not made.enforced:  # bootstrap's machines are root with cgroup v1: this runs in CI
        pytest.skip(f"box sizes cannot be enforced here: {made.why}")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def family() -> Iterator[subprocess.Popen[bytes]]:
    """A process with a child, both asleep."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; "
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
    try:
        yield parent
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
        parent.stdout.close()


def procs(group: Path) -> set[int]:
    return {int(pid) for pid in (group / "cgroup.procs").read_text().split()}


def test_a_box_holds_a_process_and_its_children_at_the_quota(
    boxes: Boxes, family: subprocess.Popen[bytes]
) -> None:
    boxes.put("app1", 0.25, [family.pid])
    group = boxes.dir / "app1"
    period = int((CPU_ROOT / "cpu.cfs_period_us").read_text())
    assert int((group / "cpu.cfs_quota_us").read_text()) == period // 4
    held = procs(group)
    assert family.pid in held and len(held) == 2  # the child went with its parent
    assert boxes.sizes == {"app1": 0.25}


def test_a_busy_box_counts_the_periods_it_spent_at_its_quota(
    boxes: Boxes, family: subprocess.Popen[bytes]
) -> None:
    boxes.put("idle", 0.5, [family.pid])
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        boxes.put("busy", 0.05, [spinner.pid])
        before = boxes.throttling()
        shares: dict[str, float] = {}
        for _ in range(200):  # until the spinner has run 10 periods (1 s at the default)
            shares = boxes.throttled_since(before)
            if boxes.throttling()["busy"][0] - before["busy"][0] >= 10:
                break
            time.sleep(0.01)
    finally:
        spinner.kill()
        spinner.wait()
    assert shares["busy"] > 0.5  # 5 ms of CPU per period: a spinner uses it up in each
    assert shares.get("idle", 0.0) == 0.0  # a sleeping box never reaches its quota


def test_close_moves_everyone_back_and_removes_the_groups(
    boxes: Boxes, family: subprocess.Popen[bytes]
) -> None:
    boxes.put("app1", 0.5, [family.pid])
    boxes.close()
    assert not boxes.dir.exists()
    assert family.pid in procs(CPU_ROOT)


def test_without_a_cgroup_controller_nothing_is_limited_and_why_says_so(tmp_path: Path) -> None:
    made = Boxes.create(root=tmp_path)
    assert not made.enforced
    assert made.why == f"no cgroup v1 cpu controller at {tmp_path}"
    made.put("primary", 0.5, [1])  # recorded for the report, nothing moved
    assert made.sizes == {"primary": 0.5}
    made.close()
