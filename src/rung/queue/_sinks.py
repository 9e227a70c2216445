"""Where a drain writes: a PostgreSQL table (`TableSink`) or any async handler
(`HandlerSink`).

A sink writes a batch and answers which entries failed on their own (a handler that
raised): those stay queued, are retried, and after `max_deliveries` go to the dead letters.
It raises when the batch failed as a whole; the drain then decides, by the error
(`rung.queue._faults`), whether to wait and write it again (the database is down) or to
split it until the rows that fail are alone (a bad row).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Sequence
from operator import itemgetter
from typing import Any, Protocol

import asyncpg
import orjson

from rung._options import count
from rung.db import Database
from rung.queue._broker import Delivery

Failures = dict[int, str]  # index in the batch -> the error, as text


class Sink(Protocol):
    async def write(self, batch: Sequence[Delivery]) -> Failures:
        """Write `batch`; return the entries that failed on their own. A drain writes two
        batches at once, so two calls may run concurrently."""


class TableSink:
    """Writes events as rows of a PostgreSQL table, each batch in one transaction: COPY
    straight into the table. A batch that meets a key already there goes again, through a
    staging table with the target's column types and `INSERT ... SELECT ... ON CONFLICT
    (key) DO NOTHING`. So an event delivered twice (a drain died between commit and ack)
    is written once, and so is a batch written again after a failure.

        sink = rung.TableSink(db, table="clicks", columns=("id", "link_id", "clicked_at"), key="id")

    Event fields map to columns by name, and PostgreSQL reads each value as it reads text in
    COPY: an ISO timestamp string fills a timestamptz, a UUID string a uuid, a list or an
    object a json column. A missing field or null is NULL; fields that are not in `columns`
    are ignored. A batch that fails raises the driver's error, unchanged, for the drain to
    classify (a value a column cannot take is SQLSTATE class 22); each statement is bounded
    by the Database's `statement_timeout`.
    """

    def __init__(self, db: Database, *, table: str, columns: Sequence[str], key: str) -> None:
        if not columns or key not in columns:
            raise ValueError(f"columns must name the key column {key!r}")
        self.db = db
        self.table = table
        self.columns = tuple(columns)
        schema, _, self._name = table.rpartition(".")
        self._schema = schema or None
        target = _qualified(table)
        # A temp table per session (so per server connection behind PgBouncer), emptied at
        # each commit; its name is new with each layout, since a pooler's sessions outlive
        # the app that made them.
        self._stage = "rung_copy_" + "_".join(table.split("."))
        stage = _ident(self._stage)
        cols = ", ".join(map(_ident, columns))
        self._create = (
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
            f"AS SELECT {cols} FROM {target} WITH NO DATA"
        )
        self._insert = (
            f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} "
            f"ON CONFLICT ({_ident(key)}) DO NOTHING"
        )

    async def write(self, batch: Sequence[Delivery]) -> Failures:
        await self.db.open()  # a factory need not have opened it (open is idempotent)
        bound = self.db.statement_timeout  # the block's statements are ours to bound
        rows = copy_text(batch, self.columns)
        try:  # most batches are new rows: COPY straight into the table, at bulk speed
            async with self.db.transaction() as conn:
                await conn.copy_to_table(
                    self._name, schema_name=self._schema, source=io.BytesIO(rows),
                    columns=list(self.columns), timeout=bound,
                )  # fmt: skip
        except asyncpg.UniqueViolationError:
            # A key that is there already (a redelivery, a batch written again) or twice in
            # the batch: through the staging table, which skips it. A violation of another
            # unique constraint fails here too, for the drain to split the batch.
            async with self.db.transaction() as conn:
                await conn.execute(self._create, timeout=bound)
                await conn.copy_to_table(
                    self._stage, source=io.BytesIO(rows), columns=list(self.columns),
                    timeout=bound,
                )  # fmt: skip
                await conn.execute(self._insert, timeout=bound)
        return {}


def copy_text(batch: Sequence[Delivery], columns: Sequence[str]) -> bytes:
    """`batch` as COPY's text format: a line per event, its `columns` tab-separated."""
    pick = itemgetter(*columns)
    lines: list[str] = []
    # CHUNK events parsed at once as one JSON array: a third of the time of a parse per
    # event, and few enough objects alive at once to leave the collector idle
    for start in range(0, len(batch), CHUNK):
        raws = [d.raw for d in batch[start : start + CHUNK]]
        joined = b",".join(raws)
        try:
            events = orjson.loads(b"[" + joined + b"]")
        except orjson.JSONDecodeError:
            events = []
        if len(events) != len(raws):  # an entry that is not one JSON value: raise at it
            events = [orjson.loads(raw) for raw in raws]
        try:  # the fast way, when every column is there: most events
            rows = list(map(pick, events)) if len(columns) > 1 else [(pick(e),) for e in events]
        except KeyError:
            rows = [[e.get(c) for c in columns] for e in events]
        if b"\\" in joined:  # JSON escapes every backslash, tab and line break
            lines += ["\t".join(map(_field, row)) for row in rows]
        else:  # so without one, no string needs escaping: most chunks
            lines += [
                "\t".join([v if v.__class__ is str else _field(v) for v in row]) for row in rows
            ]
    lines.append("")
    return "\n".join(lines).encode()


CHUNK = 200


def _field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if value.__class__ is int:  # the commonest after str, which the caller takes
        return str(value)
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        return repr(value)
    else:
        text = orjson.dumps(value).decode()
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_ESCAPES)
    return text


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


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
        self.handler = handler
        self.concurrency = count("concurrency", concurrency, least=1)

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
