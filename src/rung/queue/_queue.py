"""rung.Queue: the producer side of the load leveller, and the queue's health.

    queue = rung.Queue("redis://127.0.0.1:6381/0", stream="clicks", max_depth=1_000_000)
    event_id = await queue.put({"link_id": 7, "clicked_at": "2026-11-26T10:00:00Z"})
    queue = rung.Queue(broker=MemoryBroker(stream="clicks"))     # or over any `rung.Broker`

`put` is one round trip: a Lua script checks the depth and appends, all or nothing. An
event gets an `id` (a UUIDv7) when it has none; the sink writes each id once. Puts are
idempotent by id: an id accepted in the last `dedupe_window` seconds is not added again, so
a put that failed (`QueueUnavailable` carries the ids) can be repeated with its ids. Past
`max_depth` unacknowledged events `put` raises `QueueFull` (answer 503 with Retry-After);
nothing accepted is ever trimmed. With `db`, each event carries the producer's consistency
token, and the drain's sink runs under it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from rung._options import count, seconds
from rung.errors import QueueError, QueueUnavailable
from rung.queue._broker import Broker
from rung.queue._ids import new_id
from rung.queue._streams import RedisStreams
from rung.types import QueueStats

if TYPE_CHECKING:
    from rung.db import Database

# One put call carries at most this much, so that Redis runs it in a few milliseconds and
# no call can outlive the timeout: 400,000 events in one script took seconds, the client
# gave up, and Redis added them all anyway.
CHUNK_EVENTS = 1000
CHUNK_BYTES = 512 * 1024

Encoded = tuple[str, bytes]  # the event's id, its JSON


class Queue:
    """A queue of events on the durable Redis, or on any `broker` (see the module docstring).

    Give either a Redis `url` with its keyword-only options, or `broker=` (a `rung.Broker`,
    which carries its own). The Redis options: `stream` names the stream; `timeout`
    (seconds, default 1.0) bounds each call to Redis, so `put` fails fast with
    `QueueUnavailable`; `dedupe_window` (seconds, default 60.0) is how long an accepted id
    is remembered: a put of that id adds nothing within it (it costs about 130 bytes of
    Redis memory per event). Either way: `max_depth` bounds what is accepted and not yet
    acknowledged; `db` lends each event this context's consistency token.

    Public attributes, what a `Drain` works with: `broker` (where the events are),
    `stream` and `dedupe_window` (the broker's), `db` (a drain writes each batch under
    `db.observe` of the tokens its events carry; None: no token is observed), and
    `max_depth`, `timeout` (None with `broker=`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        stream: str | None = None,
        broker: Broker | None = None,
        max_depth: int = 1_000_000,
        db: Database | None = None,
        timeout: float | None = None,
        dedupe_window: float | None = None,
    ) -> None:
        self.max_depth = count("max_depth", max_depth, least=1)
        self.db = db
        self.timeout: float | None = None
        if broker is None:
            broker = _redis(url, stream, timeout, dedupe_window)
            self.timeout = broker.timeout
        else:
            given = {"url": url, "stream": stream, "timeout": timeout,
                     "dedupe_window": dedupe_window}  # fmt: skip
            if any(value is not None for value in given.values()):
                named = ", ".join(name for name, value in given.items() if value is not None)
                raise ValueError(f"{named}: a Queue over broker= takes these from the broker")
            if not isinstance(broker, Broker):
                raise ValueError(f"broker must be a rung.Broker, not {type(broker).__name__}")
        self.broker: Broker = broker
        self.stream = self.broker.stream
        self.dedupe_window = self.broker.dedupe_window

    async def open(self) -> None:
        """Connect now rather than on the first call; a Redis that is down is no error here
        (calls then raise `QueueUnavailable` until it is back)."""
        await self.broker.open()

    async def close(self) -> None:
        await self.broker.close()

    async def __aenter__(self) -> Queue:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def put(self, event: Mapping[str, Any]) -> str:
        """Accept one event; its id. Nothing is added when that id was accepted in the last
        `dedupe_window` seconds.

        - `QueueFull`: not accepted (past `max_depth`, or Redis is out of memory).
        - `QueueUnavailable`: Redis did not answer within `timeout`; the event may have
          landed. `e.ids == [its id]`: put it again with that id (`{**event, "id": e.ids[0]}`)
          and it is in the queue once.
        - `QueueError`: not accepted (not a mapping, not JSON, or Redis refused the call).
        """
        encoded = _encode(event)
        try:
            await self.broker.put([encoded], self._token(), max_depth=self.max_depth)
        except QueueUnavailable as e:
            e.ids = [encoded[0]]
            raise
        return encoded[0]

    async def put_many(self, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Accept several events; their ids, in order. In one round trip up to
        `CHUNK_EVENTS` events (`CHUNK_BYTES`); a bigger call goes in chunks, in order, each
        its own bounded call. What the caller knows after each exception:

        - `QueueError` (not a mapping, not JSON): raised before anything is sent; nothing
          is accepted. The same when Redis refuses the first chunk.
        - `QueueFull`: nothing is accepted. The first chunk checks the room for the whole
          call (later chunks do not check again), so a call is never cut by `max_depth`.
        - `QueueUnavailable`: `e.ids` are the ids of the last `len(e.ids)` events, in
          order; every event before them is accepted. Of `e.ids`, the first chunk's
          (at most `CHUNK_EVENTS`) may have landed and the rest were not sent. Putting
          those events again with these ids adds each once:

              rest = events[len(events) - len(e.ids):]
              await queue.put_many([{**ev, "id": i} for ev, i in zip(rest, e.ids)])

          A failure of any kind after a first chunk was accepted is raised as
          `QueueUnavailable` too (the original is its `__cause__`), so that these ids are
          never lost.
        """
        encoded: list[Encoded] = []
        for event in events:
            encoded.append(_encode(event))
            if len(encoded) % CHUNK_EVENTS == 0:
                # Encoding 400,000 events takes seconds: let the loop's other tasks (and
                # their timeouts) run meanwhile.
                await asyncio.sleep(0)
        chunks = list(_chunks(encoded))
        token = self._token()
        done = 0
        for i, chunk in enumerate(chunks):
            later = len(encoded) - done - len(chunk)
            try:
                # The first chunk reserves room for the whole call; later ones go in
                # regardless, so QueueFull always means "none of these".
                depth = self.max_depth if i == 0 else _NO_LIMIT
                await self.broker.put(chunk, token, max_depth=depth, reserve=later if i == 0 else 0)
            except QueueUnavailable as e:
                e.ids = [event_id for event_id, _ in encoded[done:]]
                raise
            except QueueError as e:
                if i == 0:
                    raise
                raise QueueUnavailable(
                    f"accepted the first {done} of {len(encoded)} events, then: {e}",
                    ids=[event_id for event_id, _ in encoded[done:]],
                ) from e
            done += len(chunk)
        return [event_id for event_id, _ in encoded]

    async def stats(self) -> QueueStats:
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


def _redis(
    url: str | None, stream: str | None, timeout: float | None, dedupe_window: float | None
) -> RedisStreams:
    """The broker of the URL form, its options checked."""
    if url is None:
        raise ValueError("a Queue needs a Redis url, or broker=")
    if not isinstance(url, str):
        raise ValueError(f"url must be a Redis URL, not a {type(url).__name__} (a broker "
                         f"goes in broker=)")  # fmt: skip
    bound = seconds("timeout", 1.0 if timeout is None else timeout, positive=True, most=3600.0)
    window = seconds("dedupe_window", 60.0 if dedupe_window is None else dedupe_window,
                     positive=True)  # fmt: skip
    if not stream:
        raise ValueError("stream must be a non-empty name")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"unsupported queue URL {url!r}: rung speaks Redis Streams")
    return RedisStreams(url, stream, timeout=bound, dedupe_window=window)


_NO_LIMIT = 2**53  # a depth no stream reaches (and Lua's numbers hold exactly)


def _chunks(encoded: Sequence[Encoded]) -> Iterator[list[Encoded]]:
    """Runs of at most CHUNK_EVENTS events and CHUNK_BYTES (at least one event each)."""
    chunk: list[Encoded] = []
    size = 0
    for item in encoded:
        if chunk and (len(chunk) == CHUNK_EVENTS or size + len(item[1]) > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item[1])
    if chunk:
        yield chunk


def _encode(event: Mapping[str, Any]) -> Encoded:
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
