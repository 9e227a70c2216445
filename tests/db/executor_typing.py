"""Checked by mypy in `make lint`, never run: rung.Database, an asyncpg connection and a
pooled asyncpg connection each fit rung.Executor, so a repository function annotated with
it takes any of them."""

import asyncpg
from asyncpg.pool import PoolConnectionProxy

import rung


async def find(conn: rung.Executor, slug: str) -> object:
    return await conn.fetchval("SELECT target_url FROM links WHERE slug = $1", slug)


async def each(db: rung.Database, conn: asyncpg.Connection, pooled: PoolConnectionProxy) -> None:
    await find(db, "a")
    await find(conn, "a")
    await find(pooled, "a")
    async with db.transaction() as tx:
        await find(tx, "a")
