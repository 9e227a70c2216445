"""pytest plugin: a real rung stack for your tests (installed with rung, entry point `rung`).

    def test_replica_sees_writes(rung_stack):
        rung_stack.pause_replay(0)          # replica1 stops replaying WAL: reads there go stale
        ...
        rung_stack.resume_replay(0)

`rung_stack` is session-scoped: it starts a throwaway stack in a temporary directory and
always takes it down, even when tests fail. With `RUNG_DIR` naming a running stack, it uses
that one and leaves it running. The ini option `rung_replicas` (default 1) sets the replica
count of a throwaway stack.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rung.errors import StackError
from rung.stack import Stack
from rung.stack.postgres import psql
from rung.stack.stackfile import StackFile

__all__ = ["RungStack", "rung_stack", "wait_until"]


class RungStack:
    """A running stack: its URLs, and helpers to make lag and failures on demand."""

    def __init__(self, stack: Stack, record: StackFile) -> None:
        self.stack = stack
        self.dir = stack.dir
        urls = record.urls()
        self.primary_url: str = urls["primary_url"]
        self.replica_urls: list[str] = urls["replica_urls"]
        self.pooled_primary_url: str = urls["pooled_primary_url"]
        self.pooled_replica_urls: list[str] = urls["pooled_replica_urls"]
        self.cache_url: str = urls["cache_url"]
        self.queue_url: str = urls["queue_url"]
        self.ports = {c.name: c.port for c in record.components}

    def _replica(self, replica: int | str) -> str:
        name = replica if isinstance(replica, str) else f"replica{replica + 1}"
        if name not in self.ports or not name.startswith("replica"):
            raise StackError(f"no replica {replica!r}: this stack has {len(self.replica_urls)}")
        return name

    def pause_replay(self, replica: int | str = 0, *, timeout: float = 10.0) -> None:
        """Stop WAL replay on `replica` (index into `replica_urls`, or a name such as
        'replica1'); returns once replay is paused, so its reads go stale from now on."""
        port = self.ports[self._replica(replica)]
        psql(port, "SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: psql(port, "SELECT pg_get_wal_replay_pause_state()") == "paused", timeout
        )

    def resume_replay(self, replica: int | str = 0) -> None:
        """Resume WAL replay on `replica`."""
        psql(self.ports[self._replica(replica)], "SELECT pg_wal_replay_resume()")

    def wait_for_replicas(self, *replicas: int | str, timeout: float = 10.0) -> None:
        """Return once `replicas` (default: all) have replayed everything the primary has
        written so far: a sync point after DDL or setup writes."""
        lsn = psql(self.ports["primary"], "SELECT pg_current_wal_lsn()")
        query = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
        for replica in replicas or range(len(self.replica_urls)):
            port = self.ports[self._replica(replica)]
            wait_until(functools.partial(_is_true, port, query), timeout)

    def stop(self, name: str) -> None:
        """Stop one component ('primary', 'replica1', 'pgbouncer', 'cache', 'queue')."""
        self.stack.stop(name)

    def start(self, name: str) -> None:
        """Start a stopped component again, on its port; returns once it answers."""
        self.stack.start(name)

    def sql(self, name: str, query: str) -> str:
        """Run `query` on PostgreSQL node `name` through psql; its unaligned output."""
        return psql(self.ports[name], query)


def _is_true(port: int, query: str) -> bool:
    return psql(port, query) == "t"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` every 10 ms until it is true; `TimeoutError` after `timeout` seconds.

    >>> wait_until(lambda: replica_has_row(), timeout=2.0)
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(0.01)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("rung_replicas", "replicas in the throwaway stack of `rung_stack`", default="1")


@pytest.fixture(scope="session")
def rung_stack(request: pytest.FixtureRequest) -> Iterator[RungStack]:
    """A running rung stack for the test session (see the module docstring)."""
    shared = os.environ.get("RUNG_DIR")
    if shared:
        stack = Stack(shared)
        record = stack.running()
        if record is None:
            raise StackError(f"RUNG_DIR={shared} names no running stack: run `rung up` there")
        yield RungStack(stack, record)
        return
    workdir = Path(tempfile.mkdtemp(prefix="rung-test-"))
    workdir.chmod(0o755)  # the unprivileged server user must reach it
    stack = Stack(workdir / "stack")
    try:
        result = stack.up(replicas=int(request.config.getini("rung_replicas")))
        yield RungStack(stack, result.stack)
    finally:
        stack.down(purge=True)
        shutil.rmtree(workdir, ignore_errors=True)
