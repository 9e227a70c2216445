"""One contract for every rung object that holds connections or tasks: `open()`, `close()`
and `async with`; after `close()` nothing it started is still running (nor any connection
open: the suite turns a leaked socket's ResourceWarning into a failure)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

import rung
from rung.testing import RungStack


def others() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["Database", "Cache", "Queue", "Singleton"])
async def test_each_opens_closes_and_is_an_async_context(rung_stack: RungStack, kind: str) -> None:
    make = {
        "Database": lambda: rung.Database(rung_stack.primary_url, rung_stack.replica_urls),
        "Cache": lambda: rung.Cache(rung_stack.cache_url, namespace=secrets.token_hex(4)),
        "Queue": lambda: rung.Queue(rung_stack.queue_url, stream=secrets.token_hex(4)),
        "Singleton": lambda: rung.Singleton(rung_stack.queue_url, name=secrets.token_hex(4)),
    }[kind]
    before = others()
    resource = make()
    await resource.open()
    await resource.close()
    async with make() as entered:
        assert isinstance(entered, getattr(rung, kind))
    assert others() == before
