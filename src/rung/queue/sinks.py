"""Where a drain writes: a PostgreSQL table (`TableSink`) or any async handler
(`HandlerSink`).

A sink writes a batch and answers which entries failed on their own (a bad row, a
handler that raised): those stay queued, are retried, and after `max_deliveries` go to the
dead letters. It raises when the whole batch failed (the database is down): then nothing
is acknowledged and the batch comes back later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import asyncpg

from rung.db import Database
from rung.queue.broker import Delivery

Failures = dict[int, str]  # index in the batch -> the error, as text


class Sink(Protocol):
    async def write(self, batch: Sequence[Delivery]) -> Failures:
        """Write `batch`; return the entries that failed on their own."""


# SQLSTATE classes that a single row causes: 22 data exception (a value that does not fit
# its column), 23 integrity constraint violation (NOT NULL, CHECK, FOREIGN KEY, ...).
_ROW_ERRORS = ("22", "23")


class TableSink:
    """Writes events as rows of a PostgreSQL table, each batch in one transaction: COPY into
    a staging table, then `INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING`. An event
    delivered twice (a drain died between commit and ack) is written once.

        sink = rung.TableSink(db, table="clicks", columns=("id", "link_id", "clicked_at"), key="id")

    Event fields map to columns by name and PostgreSQL converts them to the column types
    (`json_populate_record`): an ISO timestamp string fills a timestamptz, a UUID string a
    uuid. Fields that are not in `columns` are ignored. A batch that fails on a row is split
    in halves until the bad rows are alone; the rest is committed.
    """

    def __init__(self, db: Database, *, table: str, columns: Sequence[str], key: str) -> None:
        if not columns or key not in columns:
            raise ValueError(f"columns must name the key column {key!r}")
        self.db = db
        self.table = table
        target = _qualified(table)
        self._stage = "rung_stage_" + "_".join(table.split("."))  # a temp table per session
        stage = _ident(self._stage)
        cols = ", ".join(map(_ident, columns))
        picked = ", ".join(f"r.{_ident(c)}" for c in columns)
        self._create = f"CREATE TEMP TABLE IF NOT EXISTS {stage} (doc json) ON COMMIT DELETE ROWS"
        self._insert = (
            f"INSERT INTO {target} ({cols}) SELECT {picked} "
            f"FROM {stage} s, json_populate_record(NULL::{target}, s.doc) r "
            f"ON CONFLICT ({_ident(key)}) DO NOTHING"
        )

    async def write(self, batch: Sequence[Delivery]) -> Failures:
        await self.db.open()  # a factory need not have opened it (open is idempotent)
        return await self._isolate(batch, 0)

    async def _isolate(self, batch: Sequence[Delivery], offset: int) -> Failures:
        try:
            await self._copy(batch)
        except asyncpg.PostgresError as e:
            if not (e.sqlstate or "").startswith(_ROW_ERRORS):
                raise
            if len(batch) == 1:
                return {offset: f"{type(e).__name__}: {e}"}
            half = len(batch) // 2
            failed = await self._isolate(batch[:half], offset)
            failed.update(await self._isolate(batch[half:], offset + half))
            return failed
        return {}

    async def _copy(self, batch: Sequence[Delivery]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(self._create)
            records = [(d.raw.decode(),) for d in batch]
            await conn.copy_records_to_table(self._stage, records=records, columns=["doc"])
            await conn.execute(self._insert)


class HandlerSink:
    """Calls `await handler(event)` for each event (e-mails, notifications, webhooks), up
    to `concurrency` at once. A handler that raises fails only its own event.

        sink = rung.HandlerSink(send_welcome_email, concurrency=20)

    Delivery is at least once: a drain that dies after the handler ran but before the ack
    runs it again, so a handler should be idempotent (the event's `id` helps).
    """

    def __init__(
        self, handler: Callable[[dict[str, Any]], Awaitable[object]], *, concurrency: int = 10
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.handler = handler
        self.concurrency = concurrency

    async def write(self, batch: Sequence[Delivery]) -> Failures:
        slots = asyncio.Semaphore(self.concurrency)

        async def one(d: Delivery) -> None:
            async with slots:
                await self.handler(d.event())

        results = await asyncio.gather(*(one(d) for d in batch), return_exceptions=True)
        failed: Failures = {}
        for i, result in enumerate(results):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failed[i] = f"{type(result).__name__}: {result}"
        return failed


def _ident(name: str) -> str:
    if not name:
        raise ValueError("an empty identifier")
    return '"' + name.replace('"', '""') + '"'


def _qualified(name: str) -> str:
    return ".".join(_ident(part) for part in name.split("."))
