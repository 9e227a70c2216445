"""Processes the stack starts: spawned detached, identified by pid *and* start time.

A pid alone can be reused by an unrelated process once ours has exited; the start time read
from /proc makes a stale pid file harmless: `alive()` is false and `stop()` does nothing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    """A process the stack started: `pid` plus its start time in clock ticks since boot."""

    pid: int
    started: int


@dataclass(frozen=True)
class User:
    """The unprivileged account that runs servers which refuse root (PostgreSQL, PgBouncer)."""

    name: str
    uid: int
    gid: int

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` prefixed so that it runs as this user (setpriv execs: the pid stays the same)."""
        if os.geteuid() == self.uid:
            return argv
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--reset-env",
            *argv,
        ]


def server_user(name: str = "postgres") -> User:
    """The user servers run as: ourselves, or `name` (created if missing) when we are root."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return User(me.pw_name, me.pw_uid, me.pw_gid)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(name)
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = _fields(stat)
    # A zombie leader whose other threads still run has not exited: those threads hold its
    # files, its listening socket among them (a killed uvicorn, for a few milliseconds).
    if fields[0] == "Z" and not _threads_running(pid):  # exited, waiting to be reaped
        _reap(pid)
        return None
    return int(fields[19])


def cpu_seconds(pid: int) -> float | None:
    """The CPU time the process has used (user and system), or None when there is no such pid."""
    try:
        fields = _fields(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fields(stat: str) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat[stat.rindex(")") + 2 :].split()


def _threads_running(pid: int) -> bool:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        with contextlib.suppress(OSError):
            if _fields((task / "stat").read_text())[0] not in ("Z", "X"):
                return True
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> Proc:
    """Start `argv` in its own session with stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawnp(
        argv[0], argv, dict(os.environ if env is None else env), file_actions=actions, setsid=True
    )
    started = start_time(pid)
    return Proc(pid, started if started is not None else -1)


def alive(proc: Proc) -> bool:
    """True while `proc` (that pid, started at that time) is running."""
    return start_time(proc.pid) == proc.started


def stop(proc: Proc, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send `sig`, wait up to `timeout` seconds for exit, then SIGKILL. A dead proc is a no-op."""
    stop_all([proc], sig=sig, timeout=timeout)


def stop_all(procs: Sequence[Proc], *, sig: signal.Signals, timeout: float) -> None:
    """`stop` for several processes at once: each gets `sig`, then all share one `timeout`
    (app instances drain in parallel, not one after the other)."""
    for current, wait in ((sig, timeout), (signal.SIGKILL, 5.0)):
        running = [p for p in procs if alive(p)]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, current)
        deadline = time.monotonic() + wait
        while any(alive(p) for p in running) and time.monotonic() < deadline:
            time.sleep(0.02)


def connected_to(proc: Proc, port: int) -> bool:
    """True when `proc` holds an established TCP connection to 127.0.0.1:`port`: a worker
    with no port of its own is working once it talks to its server."""
    try:
        fds = list(Path(f"/proc/{proc.pid}/fd").iterdir())
    except OSError:
        return False
    inodes = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    try:
        table = Path(f"/proc/{proc.pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in table:
        fields = line.split()
        # remote address is hex "0100007F:18EB"; state 01 is ESTABLISHED; field 9 the inode
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
            return alive(proc)  # the pid read above was still ours
    return False


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
