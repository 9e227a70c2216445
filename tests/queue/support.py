"""Helpers of the queue tests: run a drain, wait for an empty queue, read what landed."""

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack
from tests.helpers import poll


@contextlib.asynccontextmanager
async def running(drain: rung.Drain) -> AsyncIterator[rung.Drain]:
    task = asyncio.create_task(drain.run())
    try:
        yield drain
    finally:
        drain.stop()
        await asyncio.wait_for(task, 10.0)


async def drained(queue: rung.Queue, within: float = 30.0) -> None:
    async def empty() -> bool:
        stats = await queue.stats()
        return stats["depth"] == 0 and stats["pending"] == 0

    await poll(empty, within)


async def on_primary(db: rung.Database, query: str) -> Any:
    """What the drain committed, read where every commit is: the drain wrote from its own
    task, so this context holds no token that would keep a read off a lagging replica."""
    async with db.primary() as conn:
        return await conn.fetchval(query)


def sink(db: rung.Database, table: str) -> rung.TableSink:
    return rung.TableSink(db, table=table, columns=("id", "n"), key="id")


async def dead_letters(rung_stack: RungStack, stream: str) -> list[dict[bytes, bytes]]:
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        return [fields for _, fields in await r.xrange(f"{stream}:dead")]


async def ids_in_stream(rung_stack: RungStack, stream: str) -> Counter[str]:
    """How many entries of `stream` carry each event id (read straight from Redis)."""
    seen: Counter[str] = Counter()
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        start = "-"
        while True:
            page = await r.xrange(stream, min=start, count=10_000)
            for _, fields in page:
                seen[orjson.loads(fields[b"e"])["id"]] += 1
            if len(page) < 10_000:
                return seen
            start = "(" + page[-1][0].decode()
