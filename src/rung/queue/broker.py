"""What a drain needs from a message broker, and nothing more: the seam where Redis
Streams (`rung.queue.streams`) sits today and SQS or Azure Service Bus can sit later,
without touching `Drain` or the sinks.

Semantics every broker must give: at-least-once delivery to one consumer of the group;
an entry stays the consumer's until acknowledged; entries a consumer has not renewed for
`idle` seconds can be reclaimed by another, with the delivery count going up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(slots=True)
class Delivery:
    """One event handed to a consumer.

    `ref` is the broker's handle (ack with it); `raw` the event as JSON; `token` the
    producer's consistency token (None: it had none); `deliveries` how many times the
    entry has been handed out, this time included."""

    ref: str
    raw: bytes
    token: str | None
    deliveries: int

    def event(self) -> dict[str, Any]:
        """The event, decoded."""
        data: dict[str, Any] = orjson.loads(self.raw)
        return data


class Broker(Protocol):
    async def put(
        self, events: Sequence[tuple[str, bytes]], token: str | None, *, max_depth: int,
        reserve: int = 0,
    ) -> int:  # fmt: skip
        """Append events `(id, JSON)`, all or none, in one call, skipping each id it accepted
        in its dedupe window (and repeats within the call); how many it added. `QueueFull`
        when the new events plus `reserve` would take the depth past `max_depth`,
        `QueueUnavailable` when the broker cannot be reached (the call may have landed)."""

    async def read(self, consumer: str, count: int, *, wait: float) -> list[Delivery]:
        """Up to `count` new entries for `consumer`, waiting up to `wait` seconds for one."""

    async def reclaim(self, consumer: str, *, idle: float, count: int) -> list[Delivery]:
        """Up to `count` entries no consumer has renewed for `idle` seconds, now
        `consumer`'s (a dead consumer's, or this one's own failures due for a retry)."""

    async def renew(self, consumer: str, refs: list[str]) -> None:
        """Keep `refs` from being reclaimed: `consumer` is still working on them."""

    async def ack(self, refs: list[str]) -> None:
        """Done: the entries leave the queue."""

    async def bury(self, dead: list[tuple[Delivery, str]]) -> None:
        """Move entries, each with its error, to the dead letters (and ack them)."""

    async def replay_dead(self) -> int:
        """Move every dead letter back onto the queue; how many."""

    async def forget(self, *, idle: float) -> None:
        """Drop the records of consumers idle for `idle` seconds that hold nothing."""

    async def stats(self) -> dict[str, Any]:
        """depth, pending, lag, oldest_age_s, dead."""

    async def open(self) -> None:
        """Connect; a broker that is down is no error here (the calls then raise
        `QueueUnavailable` until it is back)."""

    async def close(self) -> None: ...
