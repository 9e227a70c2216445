"""What a queue and its drain need from a message broker, and nothing more: the seam where
Redis Streams (`rung.queue.RedisStreams`) and the in-memory `rung.testing.MemoryBroker` sit, and
SQS or Azure Service Bus can sit later, without touching `Queue`, `Drain` or the sinks.

    queue = rung.Queue(broker=MemoryBroker(stream="clicks"))    # any Broker

Semantics every broker must give: at-least-once delivery to one consumer of the group;
an entry stays the consumer's until acknowledged; entries a consumer has not renewed for
`idle` seconds can be reclaimed by another, with the delivery count going up. The tests in
`tests/queue/test_broker_contract.py` hold every broker to these promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import orjson

from rung.types import QueueStats


class Delivery(NamedTuple):
    """One event handed to a consumer.

    `ref` is the broker's handle (ack with it); `raw` the event as JSON; `token` the
    producer's consistency token (None: it had none); `deliveries` how many times the
    entry has been handed out, this time included.

    A tuple, not a dataclass: the collector stops tracking a tuple of strings and numbers,
    so a batch of thousands held while it is written costs no full collections."""

    ref: str
    raw: bytes
    token: str | None
    deliveries: int

    def event(self) -> dict[str, Any]:
        """The event, decoded."""
        data: dict[str, Any] = orjson.loads(self.raw)
        return data


@runtime_checkable
class Broker(Protocol):
    """A queue's storage: `Queue` puts into it, `Drain` reads, renews, acks and buries.

    `stream` names the queue (in stats and metrics); `dedupe_window` is how many seconds an
    accepted id is remembered (`put` skips it meanwhile), which bounds a drain's
    `claim_idle`.
    """

    stream: str
    dedupe_window: float

    async def put(
        self, events: Sequence[tuple[str, bytes]], token: str | None, *, max_depth: int,
        reserve: int = 0,
    ) -> int:  # fmt: skip
        """Append events `(id, JSON)`, all or none, in one call, skipping each id it accepted
        in its dedupe window (and repeats within the call); how many it added. `QueueFull`
        when the new events plus `reserve` would take the depth past `max_depth`,
        `QueueUnavailable` when the broker cannot be reached (the call may have landed)."""

    async def read(self, consumer: str, count: int, *, wait: float) -> list[Delivery]:
        """Up to `count` entries never handed out before, oldest first, now `consumer`'s;
        waits up to `wait` seconds for one when there is none."""

    async def reclaim(self, consumer: str, *, idle: float, count: int) -> list[Delivery]:
        """Up to `count` entries no consumer has renewed for `idle` seconds, now
        `consumer`'s (a dead consumer's, or this one's own failures due for a retry)."""

    async def renew(self, consumer: str, refs: list[str]) -> None:
        """Keep `refs` from being reclaimed: `consumer` is still working on them."""

    async def ack(self, refs: list[str]) -> None:
        """Done: the entries leave the queue (refs it no longer holds are ignored)."""

    async def bury(self, dead: list[tuple[Delivery, str]]) -> None:
        """Move entries, each with its error, to the dead letters (and ack them)."""

    async def replay_dead(self) -> int:
        """Move every dead letter back onto the queue, as new entries (their delivery
        count starts again); how many."""

    async def forget(self, *, idle: float) -> None:
        """Drop the records of consumers idle for `idle` seconds that hold nothing (a
        consumer holding entries is kept, and so are its entries)."""

    async def stats(self) -> QueueStats:
        """`depth` (accepted, not acknowledged), `pending` (handed out, not acknowledged),
        `lag` (not handed out yet), `oldest_age_s` (age of the oldest entry, seconds),
        `dead` (dead letters)."""

    async def open(self) -> None:
        """Connect; a broker that is down is no error here (the calls then raise
        `QueueUnavailable` until it is back)."""

    async def close(self) -> None: ...
