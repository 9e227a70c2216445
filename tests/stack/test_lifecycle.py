"""A stack of its own per test module: up, re-up, failures, down. Uses the `rung` command."""

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.errors import ComponentFailed
from rung.stack import Stack, StackFile, proc, psql
from tests.helpers import rung


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rung-lifecycle-"))
    path.chmod(0o755)
    yield path
    Stack(path / "stack").down(purge=True)
    shutil.rmtree(path, ignore_errors=True)


def _pids(dir: Path) -> list[proc.Proc]:
    record = StackFile.load(dir / "stack.json")
    assert record is not None
    return [c.proc for c in record.components if c.proc is not None]


def test_up_twice_changes_nothing_and_down_leaves_no_process(workdir: Path) -> None:
    """A second `rung up` reports the running stack; `rung down` stops every process."""
    d = str(workdir / "stack")
    first = rung("up", "--dir", d, "--replicas", "1")
    assert first.returncode == 0, first.stderr
    before = _pids(workdir / "stack")
    assert len(before) == 5 and all(proc.alive(p) for p in before)
    again = rung("up", "--dir", d)
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert _pids(workdir / "stack") == before
    down = rung("down", "--dir", d)
    assert down.returncode == 0
    assert not any(proc.alive(p) for p in before)
    second_down = rung("down", "--dir", d)
    assert second_down.returncode == 0
    assert "nothing was running" in second_down.stdout


def test_up_after_down_keeps_the_data(workdir: Path) -> None:
    """Without --purge the databases survive a down/up cycle."""
    stack = Stack(workdir / "stack")
    primary = stack.up(replicas=1).stack.get("primary")
    assert primary is not None
    psql(primary.port, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    stack.down()
    primary = stack.up(replicas=1).stack.get("primary")
    assert primary is not None
    assert psql(primary.port, "SELECT x FROM kept") == "42"


def test_down_with_nothing_running_says_so() -> None:
    """`rung down` on an empty directory exits 0 with a message."""
    with tempfile.TemporaryDirectory() as d:
        done = rung("down", "--dir", d)
    assert done.returncode == 0
    assert "nothing was running" in done.stdout


def test_status_without_a_stack_is_one_clear_line() -> None:
    """`rung status` where no stack exists: exit 2, a one-line error, no traceback."""
    with tempfile.TemporaryDirectory() as d:
        done = rung("status", "--dir", d)
    assert done.returncode == 2
    assert "no stack in" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_start_stops_what_was_started_and_shows_the_log(workdir: Path) -> None:
    """A replica whose data directory is broken fails the start: the CLI prints its log tail
    and the primary started before it is stopped again."""
    d = workdir / "stack"
    broken = d / "servers" / "replica1"
    broken.mkdir(parents=True)
    (broken / "PG_VERSION").write_text("15\n")  # looks initialised, is not
    server = proc.server_user()
    for path in (d / "servers", broken, broken / "PG_VERSION"):
        if os.geteuid() == 0:
            os.chown(path, server.uid, server.gid)
    done = rung("up", "--dir", str(d), "--replicas", "1")
    assert done.returncode == 2
    assert "replica1" in done.stderr and "last lines of replica1's log" in done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads((d / "stack.json").read_text())
    assert all(c["pid"] is None for c in record["components"])


def test_start_on_a_taken_port_is_a_clear_error(workdir: Path) -> None:
    """A component whose port was taken while it was stopped fails with the port named."""
    stack = Stack(workdir / "stack")
    result = stack.up(replicas=0)
    cache = result.stack.get("cache")
    assert cache is not None
    port = cache.port
    stack.stop("cache")
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(ComponentFailed, match=f"port {port} is already in use"):
            stack.start("cache")
