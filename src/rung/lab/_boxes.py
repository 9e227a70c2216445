"""Box sizes: a CPU limit per tier, so that one small machine shows each inflection point.

    boxes = Boxes.create()              # None-safe: `boxes.why` says when limits cannot hold
    boxes.put("primary", 0.5, [postmaster_pid])   # the process and all its descendants
    before = boxes.throttling()
    ... load ...
    boxes.throttled_since(before)        # {"primary": 0.02, "app1": 0.61}: the share of its
                                         # busy periods each box spent at its quota
    boxes.close()                        # every process back where it was, the groups removed

A box is a cgroup v1 `cpu` group with a CFS quota (`cpu.cfs_quota_us` per
`cpu.cfs_period_us`): 0.5 CPU is 50 ms of CPU time per 100 ms, however many processes are
in it. A process forked later (a PostgreSQL backend) inherits its parent's box. Where the
machine has no writable cgroup v1 `cpu` controller (no root, cgroup v2 only) nothing is
limited and `why` says so; the lab's report states it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

CPU_ROOT = Path("/sys/fs/cgroup/cpu")


class Boxes:
    """The lab's cgroups under `root/name`, one per tier; see the module docstring."""

    def __init__(self, root: Path, name: str, *, why: str | None = None) -> None:
        self.root = root
        self.dir = root / name
        self.why = why  # None: limits hold
        self.sizes: dict[str, float] = {}
        self.groups: dict[str, Path] = {}

    @classmethod
    def create(cls, root: Path = CPU_ROOT) -> Boxes:
        name = f"rung-lab-{os.getpid()}"
        why = _unavailable(root)
        boxes = cls(root, name, why=why)
        if why is None:
            try:
                boxes.dir.mkdir(exist_ok=True)
            except OSError as e:
                boxes.why = f"cannot create a cgroup under {root}: {e.strerror}"
        return boxes

    @property
    def enforced(self) -> bool:
        return self.why is None

    def put(self, box: str, cpus: float, pids: Iterable[int]) -> None:
        """Limit box `box` to `cpus` CPUs and move `pids` and their descendants into it."""
        # The writes below (and in close) are to cgroup control files, not app state.
        self.sizes[box] = cpus
        if self.why is not None:
            return
        group = self.dir / re.sub(r"[^A-Za-z0-9_.-]+", "-", box)  # "haproxy+pgbouncer" too
        group.mkdir(exist_ok=True)
        self.groups[box] = group
        period = int((self.root / "cpu.cfs_period_us").read_text())
        quota = str(max(1000, int(cpus * period)))
        (group / "cpu.cfs_quota_us").write_text(quota)  # rung: ignore[RUNG201]
        for pid in _with_descendants(pids):
            with contextlib.suppress(ProcessLookupError, FileNotFoundError, OSError):
                (group / "cgroup.procs").write_text(str(pid))  # rung: ignore[RUNG201]

    def throttling(self) -> dict[str, tuple[int, int]]:
        """Per box, from its `cpu.stat`: the CFS periods in which it ran, and those in which
        it used up its quota and waited for the next."""
        counts: dict[str, tuple[int, int]] = {}
        for box, group in self.groups.items():
            with contextlib.suppress(OSError):
                stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
                counts[box] = (int(stat["nr_periods"]), int(stat["nr_throttled"]))
        return counts

    def throttled_since(self, before: dict[str, tuple[int, int]]) -> dict[str, float]:
        """Per box that ran since `before` (a `throttling()`): the share of its periods that
        ended at its quota. A box near 1.0 is the one that bounds throughput."""
        shares: dict[str, float] = {}
        for box, (periods, throttled) in self.throttling().items():
            periods0, throttled0 = before.get(box, (0, 0))
            if periods > periods0:
                shares[box] = round((throttled - throttled0) / (periods - periods0), 3)
        return shares

    def close(self) -> None:
        """Move every process back to the root group and remove the lab's groups."""
        if not self.dir.is_dir():
            return
        for group in [*sorted(p for p in self.dir.iterdir() if p.is_dir()), self.dir]:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.root / "cgroup.procs").write_text(pid)  # rung: ignore[RUNG201]
            if group != self.dir:
                with contextlib.suppress(OSError):
                    group.rmdir()
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def _unavailable(root: Path) -> str | None:
    if not (root / "cpu.cfs_quota_us").is_file():
        return f"no cgroup v1 cpu controller at {root}"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable (run as root to limit CPU per tier)"
    return None


def _with_descendants(pids: Iterable[int]) -> list[int]:
    """`pids` and every process descended from them (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found
