import sys
from pathlib import Path

import pytest

from rung.errors import MissingBinary
from rung.stack import binaries, proc
from rung.testing import wait_until


def test_spawn_logs_and_stop_ends_the_process(tmp_path: Path) -> None:
    """A spawned process writes to its log, is alive, and is gone after stop()."""
    log = tmp_path / "p.log"
    code = "import time; print('hello', flush=True); time.sleep(60)"
    p = proc.spawn([sys.executable, "-c", code], log=log)
    assert proc.alive(p)
    wait_until(lambda: "hello" in log.read_text())
    proc.stop(p, timeout=5)
    assert not proc.alive(p)


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    """A stale record (same pid, other start time) is not alive and stop() leaves it alone."""
    p = proc.spawn([sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "l")
    stale = proc.Proc(p.pid, p.started - 1)
    assert not proc.alive(stale)
    proc.stop(stale)
    assert proc.alive(p)
    proc.stop(p)


def test_missing_binary_names_the_package() -> None:
    """A binary that is not installed raises MissingBinary naming the package to install."""
    binaries.PACKAGES["rung-no-such-server"] = "rung-server-package"
    try:
        with pytest.raises(MissingBinary, match="rung-server-package"):
            binaries.find("rung-no-such-server")
    finally:
        del binaries.PACKAGES["rung-no-such-server"]


def test_postgres_server_binaries_are_found_off_path() -> None:
    """initdb lives in /usr/lib/postgresql/<major>/bin on Debian, off PATH."""
    assert Path(binaries.find("initdb")).name == "initdb"


def test_a_process_whose_main_thread_exited_is_alive_while_a_thread_runs(tmp_path: Path) -> None:
    """The leader shows as a zombie once its own thread exits, but the process keeps its
    files (a listening socket) until every thread has: it is still alive, then it is not."""
    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('done', flush=True))).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    p = proc.spawn([sys.executable, "-c", code], log=tmp_path / "log")
    wait_until(lambda: Path(f"/proc/{p.pid}/stat").read_text().split(") ")[1][0] == "Z")
    assert proc.alive(p)  # the control: the leader is a zombie, its thread runs
    wait_until(lambda: not proc.alive(p))
    assert "done" in (tmp_path / "log").read_text()
