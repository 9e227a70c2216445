"""Fixtures of the queue tests: a fresh stream, a Queue on it, a table for events."""

import secrets
from collections.abc import AsyncIterator

import pytest

import rung
from rung.testing import RungStack


@pytest.fixture
def stream() -> str:
    return f"s{secrets.token_hex(4)}"


@pytest.fixture
async def queue(rung_stack: RungStack, stream: str) -> AsyncIterator[rung.Queue]:
    async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
        yield queue


@pytest.fixture
def events(rung_stack: RungStack) -> str:
    """A table for events `{id, n}`: n must be >= 0."""
    name = f"ev_{secrets.token_hex(4)}"
    rung_stack.sql(
        "primary", f"CREATE TABLE {name} (id uuid PRIMARY KEY, n int NOT NULL CHECK (n >= 0))"
    )
    return name
