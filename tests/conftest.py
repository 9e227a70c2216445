"""Fixtures shared by the rung tests (the stack itself comes from `rung.testing`)."""

import secrets
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

import rung
from rung.testing import RungStack


@pytest.fixture
async def table(rung_stack: RungStack) -> str:
    """A new table `(k int PRIMARY KEY, v int)`, already on every replica."""
    name = f"t_{secrets.token_hex(4)}"
    rung_stack.sql("primary", f"CREATE TABLE {name} (k int PRIMARY KEY, v int)")
    rung_stack.wait_for_replicas()
    return name


@pytest.fixture
async def db(rung_stack: RungStack) -> AsyncIterator[rung.Database]:
    # max_lag is generous: these tests pause replay on purpose and still want the replica.
    async with rung.Database(rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0) as db:
        yield db


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A Redis URL whose port accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()
