"""The near cache: an in-process LRU in front of Redis, kept honest by invalidation
messages (`Cache(..., local_size=N)`).

Every `invalidate` publishes 'k:<key>' on `{ns}:inv` in the same Lua script that deletes it,
and every `invalidate_tags` publishes '*'; each near cache drops the key (or everything).
It serves only while its subscription is confirmed and a ping answers within `timeout`:
when the link drops it empties itself and steps aside until it is subscribed again, since
messages sent meanwhile are lost. A fill that raced an invalidation message is not kept:
each message bumps an epoch, and an entry read under an older epoch is not stored.

Staleness bound: another process's invalidation reaches this one when Redis delivers the
message (well under a millisecond on one host); entries never outlive their TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rung._redis import client
from rung.cache._entry import Entry

_YIELD_EVERY = 16  # near hits in a row before one gives the event loop a turn


class NearCache:
    def __init__(self, url: str, channel: str, *, size: int, timeout: float) -> None:
        self.size = size
        self.epoch = 0
        self._url = url
        self._channel = channel
        self._timeout = timeout
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._live = False
        self._task: asyncio.Task[None] | None = None
        self._hits = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="rung-near-cache")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: a cancellation lost inside the client must not hang close()
            await asyncio.wait({self._task}, timeout=2 * self._timeout)
            self._task = None
        self._went_dark()

    @property
    def live(self) -> bool:
        return self._live

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= time.time():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def due_a_yield(self) -> bool:
        """Count a hit; True every `_YIELD_EVERY` hits. A near hit awaits nothing, so a
        loop of them would never let another task run: the caller yields when told."""
        self._hits += 1
        if self._hits < _YIELD_EVERY:
            return False
        self._hits = 0
        return True

    def put(self, key: str, entry: Entry, epoch: int) -> None:
        """Keep `entry`, read from Redis when `self.epoch` was `epoch`, unless an
        invalidation arrived since or the link is down."""
        if not self._live or epoch != self.epoch:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self.epoch += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._entries.clear()

    def _went_dark(self) -> None:
        self._live = False
        self.clear()

    async def _listen(self) -> None:
        # No retries inside redis-py: a reconnect it hid would hide lost messages.
        redis = client(self._url, timeout=self._timeout, max_connections=1)
        try:
            while True:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await self._follow(redis)
                self._went_dark()
                await asyncio.sleep(self._timeout)
        finally:
            self._went_dark()
            await redis.aclose()

    async def _follow(self, redis: Redis) -> None:
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(self._channel)
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=self._timeout)
                if message is None:
                    if pinged:
                        return  # no pong within `timeout`: the link is dead
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                kind = message["type"]
                if kind == "subscribe":
                    self.clear()
                    self._live = True
                elif kind == "message":
                    data: bytes = message["data"]
                    if data.startswith(b"k:"):
                        self.drop(data[2:].decode())
                    else:
                        self.clear()
