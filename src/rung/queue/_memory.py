"""A `Broker` in this process's memory: the queue for tests and examples that need no Redis,
with the Redis Streams broker's semantics and a clock the test can move.

    now = [0.0]                                          # the default clock: time.monotonic
    queue = rung.Queue(broker=MemoryBroker(stream="clicks", clock=lambda: now[0]))
    ...
    now[0] += 5.0             # a drain's entries not renewed since are reclaimable now

Entries live in one process and die with it: nothing here is durable, and two processes
never share a queue. Every rule that depends on time (reclaiming after `idle`, the dedupe
window, `oldest_age_s`, forgetting idle consumers) reads `clock`; only `read`'s wait for a
new entry is real time, as a blocking read on a server is.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rung._aio import wait_set
from rung._options import seconds
from rung.errors import QueueFull
from rung.queue._broker import Delivery
from rung.types import QueueStats


@dataclass(slots=True)
class _Entry:
    raw: bytes
    token: str | None
    added: float  # clock time of the put


@dataclass(slots=True)
class _Held:
    consumer: str
    deliveries: int
    since: float  # clock time of the last delivery or renewal


class MemoryBroker:
    """`rung.Broker` in memory (see the module docstring). Keyword-only: `stream` names it;
    `dedupe_window` seconds an accepted id is remembered; `clock` returns seconds (any
    origin) and must never go back.

        broker = MemoryBroker(stream="clicks", dedupe_window=60.0, clock=time.monotonic)
    """

    def __init__(
        self,
        *,
        stream: str = "memory",
        dedupe_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not stream:
            raise ValueError("stream must be a non-empty name")
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds, not {clock!r}")
        self.stream = stream
        self.dedupe_window = seconds("dedupe_window", dedupe_window, positive=True)
        self.clock = clock
        self._last_ref = 0
        self._entries: dict[int, _Entry] = {}  # every entry not acknowledged, by ref
        self._fresh: deque[int] = deque()  # refs never handed out, oldest first
        self._held: dict[int, _Held] = {}  # refs handed out, not acknowledged
        self._dead: list[tuple[Delivery, str]] = []
        self._seen: dict[str, float] = {}  # consumer -> clock time it last called
        self._ids: dict[str, float] = {}  # accepted event id -> clock time it is forgotten
        self._expiry: deque[tuple[float, str]] = deque()  # the same, in order of expiry
        self._waiting: set[asyncio.Event] = set()  # a reader's each (an Event is one loop's)

    @property
    def dead_letters(self) -> list[tuple[Delivery, str]]:
        """The dead letters, oldest first: each entry as it was last delivered, with its
        error (what Redis Streams keeps in `<stream>:dead`)."""
        return list(self._dead)

    @property
    def consumers(self) -> set[str]:
        """The consumers it has a record of (as Redis's XINFO CONSUMERS lists them)."""
        return set(self._seen)

    async def open(self) -> None:
        """Nothing to connect: the entries are in this process."""

    async def close(self) -> None:
        """Nothing to release; the entries stay, as on a server, for the next `open`."""

    async def put(
        self, events: Sequence[tuple[str, bytes]], token: str | None, *, max_depth: int,
        reserve: int = 0,
    ) -> int:  # fmt: skip
        now = self.clock()
        self._expire_ids(now)
        new: dict[str, bytes] = {}
        for event_id, raw in events:
            if event_id not in self._ids and event_id not in new:
                new[event_id] = raw
        wanted = len(new) + reserve
        if wanted > 0 and len(self._entries) + wanted > max_depth:
            raise QueueFull(
                f"stream {self.stream!r} holds {len(self._entries)} unacknowledged events "
                f"(max_depth={max_depth}); retry later"
            )
        forget_at = now + self.dedupe_window
        for event_id, raw in new.items():
            self._add(raw, token, now)
            self._ids[event_id] = forget_at
            self._expiry.append((forget_at, event_id))
        return len(new)

    async def read(self, consumer: str, count: int, *, wait: float) -> list[Delivery]:
        if not self._fresh and wait > 0:
            arrived = asyncio.Event()
            self._waiting.add(arrived)
            try:
                await wait_set(arrived, wait)
            finally:
                self._waiting.discard(arrived)
        now = self.clock()
        out: list[Delivery] = []
        while self._fresh and len(out) < count:
            ref = self._fresh.popleft()
            if ref in self._entries:  # else acknowledged before it was handed out
                self._held[ref] = _Held(consumer, 1, now)
                out.append(self._delivery(ref))
        self._touch(consumer, now, handed=bool(out))
        return out

    async def reclaim(self, consumer: str, *, idle: float, count: int) -> list[Delivery]:
        now = self.clock()
        out: list[Delivery] = []
        for ref in sorted(self._held):
            if len(out) == count:
                break
            held = self._held[ref]
            if now - held.since >= idle:
                held.consumer, held.since = consumer, now
                held.deliveries += 1
                out.append(self._delivery(ref))
        self._touch(consumer, now, handed=bool(out))
        return out

    async def renew(self, consumer: str, refs: list[str]) -> None:
        now = self.clock()
        held = [self._held[int(ref)] for ref in refs if int(ref) in self._held]
        for h in held:  # as XCLAIM: the entry is `consumer`'s now, idle from now
            h.consumer, h.since = consumer, now
        self._touch(consumer, now, handed=bool(held))

    async def ack(self, refs: list[str]) -> None:
        for ref in map(int, refs):
            self._entries.pop(ref, None)
            self._held.pop(ref, None)

    async def bury(self, dead: list[tuple[Delivery, str]]) -> None:
        self._dead += dead
        await self.ack([d.ref for d, _ in dead])

    async def replay_dead(self) -> int:
        now = self.clock()
        dead, self._dead = self._dead, []
        for d, _ in dead:
            self._add(d.raw, d.token, now)
        return len(dead)

    async def forget(self, *, idle: float) -> None:
        now = self.clock()
        holding = {held.consumer for held in self._held.values()}
        for consumer, seen in list(self._seen.items()):
            if consumer not in holding and now - seen >= idle:
                del self._seen[consumer]

    async def stats(self) -> QueueStats:
        """depth, pending, lag, oldest_age_s, dead (see `rung.Queue.stats`)."""
        oldest = next(iter(self._entries.values()), None)  # refs, and so times, ascend
        depth, pending = len(self._entries), len(self._held)
        return {
            "depth": depth,
            "pending": pending,
            "lag": depth - pending,
            "oldest_age_s": 0.0 if oldest is None else round(self.clock() - oldest.added, 3),
            "dead": len(self._dead),
        }

    def _add(self, raw: bytes, token: str | None, now: float) -> None:
        self._last_ref += 1
        self._entries[self._last_ref] = _Entry(raw, token, now)
        self._fresh.append(self._last_ref)
        for arrived in self._waiting:
            arrived.set()

    def _touch(self, consumer: str, now: float, *, handed: bool) -> None:
        """`consumer` called now. As Redis 7.0 does, a consumer is on record from the
        first call that hands it an entry."""
        if handed or consumer in self._seen:
            self._seen[consumer] = now

    def _delivery(self, ref: int) -> Delivery:
        entry = self._entries[ref]
        return Delivery(str(ref), entry.raw, entry.token, self._held[ref].deliveries)

    def _expire_ids(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            forget_at, event_id = self._expiry.popleft()
            if self._ids.get(event_id) == forget_at:
                del self._ids[event_id]
