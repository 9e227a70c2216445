"""Click events: onto the queue, never into a table on the request path, and never lost.

    await clicks.record(link_id=7, referrer=None, user_agent="curl/8")   # once it is safe

`record` returns once the event is durable: accepted by the queue (the drain writes it into
`clicks`), or, when the queue raised `QueueFull` or `QueueUnavailable`, inserted into
`clicks` directly with the same id (`ON CONFLICT (id) DO NOTHING`, so an event that reached
the queue after all is still one row). Each direct insert counts in
`rung_links_click_fallbacks_total`. After the queue was unreachable, clicks go straight to
the table for `cooldown` seconds instead of each waiting out the queue's timeout.

With `direct=True` (RUNG_LINKS_CLICKS=direct) there is no queue: each click is one INSERT
the request waits for, as an app without the queue rung would do it.

Group commit: concurrent `record` calls share one `put_many` (one Redis round trip) while
the previous one is in flight, as PostgreSQL's commits share a WAL flush. Alone, a click is
one round trip; under load, a round trip carries the clicks that arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import rung
from rung_links.metrics import Metrics

log = logging.getLogger("rung_links.clicks")

COLUMNS = ("id", "link_id", "clicked_at", "referrer", "user_agent")
MAX_REFERRER = 2048
MAX_USER_AGENT = 512
_BATCH = 1000  # events per put_many: one round trip of rung.Queue
_RETRIED = uuid.UUID("6f7e0c3a-5b1d-4c2e-9a8f-2d4b6e8a0c1f")  # namespace of X-Rung-Request ids
_REQUEST_ID = re.compile(r"[0-9A-Za-z-]{1,64}")

INSERT_DIRECT = """
INSERT INTO clicks (id, link_id, clicked_at, referrer, user_agent)
SELECT c.id::uuid, c.link_id, c.clicked_at::timestamptz, c.referrer, c.user_agent
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
    AS c (id, link_id, clicked_at, referrer, user_agent)
ON CONFLICT (id) DO NOTHING
"""

# One row, no arrays: asyncpg introspects an array type once per connection (a slow catalog
# query), which a connection per statement (RUNG_LINKS_DB_MAX_QUERIES=1) would pay each time.
INSERT_ONE = """
INSERT INTO clicks (id, link_id, clicked_at, referrer, user_agent)
VALUES ($1::text::uuid, $2, $3::text::timestamptz, $4, $5)
ON CONFLICT (id) DO NOTHING
"""

Event = dict[str, Any]


def new_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so the clicks primary key grows at its end."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & (2**62 - 1)
    h = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, for a third of the time
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _header(value: str | None, limit: int) -> str | None:
    # Headers arrive latin-1 decoded; a NUL would be refused by PostgreSQL's text.
    return None if value is None else value[:limit].replace("\x00", "")


def event(link_id: int, *, referrer: str | None, user_agent: str | None,
          request_id: str | None = None) -> Event:  # fmt: skip
    """A click event: the fields of one `clicks` row, with its id. Behind rung's HAProxy a
    request carries `X-Rung-Request`, the same on every retry of it: the id then comes
    from it, so a redirect HAProxy sends again (its instance died after queueing the
    click) writes one row, not two."""
    return {
        "id": str(uuid.uuid5(_RETRIED, request_id))
        if request_id and _REQUEST_ID.fullmatch(request_id)
        else new_id(),
        "link_id": link_id,
        "clicked_at": datetime.now(UTC).isoformat(),
        "referrer": _header(referrer, MAX_REFERRER),
        "user_agent": _header(user_agent, MAX_USER_AGENT),
    }


class ClickRecorder:
    """Puts click events on `queue`, falling back to `db` (see the module docstring)."""

    def __init__(
        self, queue: rung.Queue, db: rung.Database, metrics: Metrics, *, cooldown: float = 1.0,
        direct: bool = False,
    ) -> None:  # fmt: skip
        self.queue = queue
        self.db = db
        self.metrics = metrics
        self.cooldown = cooldown
        self.direct = direct
        self._direct: set[asyncio.Task[None]] = set()  # direct inserts in flight
        self._waiting: list[tuple[Event, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._queue_down_until = 0.0

    async def record(self, link_id: int, *, referrer: str | None, user_agent: str | None,
                     request_id: str | None = None) -> None:  # fmt: skip
        """Return once the click is on the queue or in the table (or, with both down,
        counted as lost: the redirect itself still happens)."""
        click = event(link_id, referrer=referrer, user_agent=user_agent, request_id=request_id)
        if self.direct:  # no queue, no group commit: an INSERT per click, on the request path
            await self._insert_one(click)
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((click, done))
        if self._flusher is None:
            # Its own context: the flush belongs to no request (and to no request's token).
            self._flusher = asyncio.create_task(
                self._flush(), name="rung-links-clicks", context=contextvars.Context()
            )
        await done  # a client that hangs up cancels only this wait: the click is still written

    async def close(self) -> None:
        """Wait for the clicks in flight (a flush that ends may be followed by another)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
        await asyncio.gather(*self._direct)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:_BATCH], self._waiting[_BATCH:]
                try:
                    await self._store([e for e, _ in batch])
                except Exception:  # the next batch still goes; no request waits forever
                    self._lost(len(batch))
                finally:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._flusher = None
            leftover, self._waiting = self._waiting, []  # only when the flush was cancelled
            if leftover:
                self._lost(len(leftover), why="the flush was cancelled (shutting down)")
                for _, done in leftover:
                    if not done.done():
                        done.set_result(None)

    def _lost(self, n: int, *, why: str = "neither the queue nor the database took them") -> None:
        log.error("%d clicks lost: %s", n, why, exc_info=sys.exc_info()[0] is not None)
        self.metrics.clicks_lost.inc(n)

    async def _store(self, events: list[Event]) -> None:
        if time.monotonic() < self._queue_down_until:
            await self._insert(events)
            return
        self.metrics.click_puts.inc()
        try:
            await self.queue.put_many(events)
        except rung.QueueFull:
            await self._insert(events)  # nothing was accepted
        except rung.QueueUnavailable as e:
            # The head of the list was accepted; the tail (e.ids) may or may not have been.
            self._queue_down_until = time.monotonic() + self.cooldown
            log.warning("queue unreachable, %d clicks go to the table directly: %s", len(e.ids), e)
            self.metrics.clicks_queued.inc(len(events) - len(e.ids))
            await self._insert(events[len(events) - len(e.ids) :])
        except rung.QueueError as e:  # refused before anything was accepted
            log.warning(
                "queue refused %d clicks, they go to the table directly: %s", len(events), e
            )
            await self._insert(events)
        else:
            self.metrics.clicks_queued.inc(len(events))

    async def _insert_one(self, click: Event) -> None:
        # Its own context, as a flush has: the click is no write the visitor reads back, so
        # it sets no consistency token (and no cookie) on the redirect.
        # A visitor who hangs up cancels only the wait (shield): the row is still written.
        task = asyncio.create_task(self._write_one(click), context=contextvars.Context())
        self._direct.add(task)
        task.add_done_callback(self._direct.discard)
        await asyncio.shield(task)

    async def _write_one(self, click: Event) -> None:
        try:
            await self.db.execute(INSERT_ONE, *(click[c] for c in COLUMNS))
        except Exception:
            self._lost(1)

    async def _insert(self, events: list[Event]) -> None:
        if not events:
            return
        columns = [[e[c] for e in events] for c in COLUMNS]
        try:
            await self.db.execute(INSERT_DIRECT, *columns)
        except Exception:
            # The redirect still happens: losing the click beats failing the visitor.
            self._lost(len(events))
            return
        self.metrics.click_fallbacks.inc(len(events))
