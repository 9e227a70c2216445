"""rung.Queue: the producer side of the load leveller, and the queue's health.

    queue = rung.Queue("redis://127.0.0.1:6381/0", stream="clicks", max_depth=1_000_000)
    event_id = await queue.put({"link_id": 7, "clicked_at": "2026-11-26T10:00:00Z"})

`put` is one round trip: a Lua script checks the depth and appends, all or nothing. An
event gets an `id` (a UUIDv7) when it has none; the sink writes each id once. Past
`max_depth` unacknowledged events `put` raises `QueueFull` (answer 503 with Retry-After);
nothing accepted is ever trimmed. With `db`, each event carries the producer's
consistency token, and the drain's sink runs under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from rung.errors import QueueError
from rung.queue.broker import Broker
from rung.queue.ids import new_id
from rung.queue.streams import RedisStreams

if TYPE_CHECKING:
    from rung.db import Database


class Queue:
    """A queue of events on the durable Redis (see the module docstring).

    Keyword-only: `stream` names it; `max_depth` bounds what is accepted and not yet
    acknowledged; `db` lends each event this context's consistency token; `timeout`
    (seconds) bounds each call to Redis, so `put` fails fast with `QueueUnavailable`.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        max_depth: int = 1_000_000,
        db: Database | None = None,
        timeout: float = 1.0,
    ) -> None:
        if max_depth < 1 or timeout <= 0:
            raise ValueError("max_depth must be >= 1 and timeout > 0")
        if not stream:
            raise ValueError("stream must be a non-empty name")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"unsupported queue URL {url!r}: rung speaks Redis Streams")
        self.stream = stream
        self.max_depth = max_depth
        self.db = db
        self.broker: Broker = RedisStreams(url, stream, timeout=timeout)

    async def close(self) -> None:
        await self.broker.close()

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def put(self, event: Mapping[str, Any]) -> str:
        """Accept one event; its id. `QueueFull` past `max_depth`, `QueueUnavailable` when
        Redis cannot be reached."""
        event_id, raw = _encode(event)
        await self.broker.put([raw], self._token(), max_depth=self.max_depth)
        return event_id

    async def put_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Accept several events in one round trip, all or none; their ids."""
        encoded = [_encode(e) for e in events]
        if encoded:
            raws = [raw for _, raw in encoded]
            await self.broker.put(raws, self._token(), max_depth=self.max_depth)
        return [event_id for event_id, _ in encoded]

    async def stats(self) -> dict[str, Any]:
        """`depth` (accepted, not yet acknowledged), `pending` (handed to a drain, not yet
        acknowledged), `lag` (not yet handed out), `oldest_age_s` (age of the oldest
        unacknowledged event, by Redis's clock), `dead` (dead letters)."""
        return await self.broker.stats()

    async def replay_dead(self) -> int:
        """Move every dead letter back onto the queue (after fixing what failed them);
        how many."""
        return await self.broker.replay_dead()

    def _token(self) -> str | None:
        return self.db.token() if self.db is not None else None


def _encode(event: Mapping[str, Any]) -> tuple[str, bytes]:
    if not isinstance(event, Mapping):
        raise QueueError(f"an event is a mapping of field names to values, not {type(event)}")
    event_id = event.get("id")
    if event_id is None:
        event_id = new_id()
        event = {**event, "id": event_id}
    elif not isinstance(event, dict):
        event = dict(event)
    try:
        return str(event_id), orjson.dumps(event)
    except orjson.JSONEncodeError as e:
        raise QueueError(f"cannot queue the event: {e}") from e
