"""The Redis Streams broker: one stream, one consumer group, dead letters beside it.

Layout: the stream `<stream>` holds entries `e` (the event's JSON) and, when the producer
had one, `t` (its consistency token); the group `rung` drains it; `<stream>:dead` holds
dead letters with `error`, `deliveries` and the original `ref`. An entry is deleted once
acknowledged (XACK + XDEL in one script), so the stream's length is the depth: accepted,
not yet acknowledged. Nothing is ever trimmed.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from rung.errors import QueueFull, QueueUnavailable
from rung.queue.broker import Delivery

GROUP = "rung"

# KEYS: stream   ARGV: max_depth, token ('' none), raw...
_PUT = """
local n = #ARGV - 2
if redis.call('XLEN', KEYS[1]) + n > tonumber(ARGV[1]) then return -1 end
for i = 3, #ARGV do
  if ARGV[2] == '' then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  else
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i], 't', ARGV[2])
  end
end
return n
"""

# KEYS: stream   ARGV: group, ref...
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
"""

# KEYS: stream, dead   ARGV: group, then (ref, raw, token, error, deliveries) per entry
_BURY = """
for i = 2, #ARGV, 5 do
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[i + 1], 't', ARGV[i + 2], 'error', ARGV[i + 3],
             'deliveries', ARGV[i + 4], 'ref', ARGV[i])
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return 0
"""

# KEYS: stream, dead   ARGV: count. Moves up to `count` dead letters back; returns how many.
_REPLAY = """
local entries = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[1])
for _, entry in ipairs(entries) do
  local f = entry[2]
  local raw, token = nil, ''
  for i = 1, #f, 2 do
    if f[i] == 'e' then raw = f[i + 1] elseif f[i] == 't' then token = f[i + 1] end
  end
  if token == '' then
    redis.call('XADD', KEYS[1], '*', 'e', raw)
  else
    redis.call('XADD', KEYS[1], '*', 'e', raw, 't', token)
  end
  redis.call('XDEL', KEYS[2], entry[1])
end
return #entries
"""

# KEYS: stream   ARGV: group, consumer, min_idle_ms, count
# Claims idle entries and returns {ref, fields, deliveries} for each.
_RECLAIM = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
                           'COUNT', ARGV[4])
local out = {}
for _, entry in ipairs(claimed[2]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
  out[#out + 1] = {entry[1], entry[2], p[1][4]}
end
return out
"""


class RedisStreams:
    """`Broker` on Redis Streams (see the module docstring)."""

    def __init__(self, url: str, stream: str, *, timeout: float) -> None:
        self.stream = stream
        self.dead = f"{stream}:dead"
        self._timeout = timeout
        # One retry, at once: a pooled connection may be stale after a Redis restart. A
        # retried put may add an event twice; its id makes the sink write it once.
        self._redis = Redis.from_url(url, retry=Retry(NoBackoff(), 1), socket_timeout=timeout,
                                     socket_connect_timeout=timeout)  # fmt: skip
        self._put = self._redis.register_script(_PUT)
        self._ack = self._redis.register_script(_ACK)
        self._bury = self._redis.register_script(_BURY)
        self._replay = self._redis.register_script(_REPLAY)
        self._reclaim = self._redis.register_script(_RECLAIM)
        self._group_ready = False

    async def close(self) -> None:
        await self._redis.aclose()

    async def put(self, raws: list[bytes], token: str | None, *, max_depth: int) -> None:
        try:
            added = await self._put(keys=[self.stream], args=[max_depth, token or "", *raws])
        except ResponseError as e:
            if str(e).startswith("OOM"):  # noeviction and maxmemory reached: full, not down
                raise QueueFull(f"the queue Redis is out of memory: {e}") from e
            raise self._unavailable(e) from e
        except RedisError as e:
            raise self._unavailable(e) from e
        if added < 0:
            raise QueueFull(
                f"stream {self.stream!r} holds {max_depth} or more unacknowledged events "
                f"(max_depth={max_depth}); retry later"
            )

    async def read(self, consumer: str, count: int, *, wait: float) -> list[Delivery]:
        await self._ensure_group()
        block = max(1, round(min(wait, self._timeout / 2) * 1000))
        reply = await self._call(
            self._redis.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block)
        )
        if not reply:
            return []
        _, entries = reply[0]
        return [_delivery(ref, fields, 1) for ref, fields in entries]

    async def reclaim(self, consumer: str, *, idle: float, count: int) -> list[Delivery]:
        await self._ensure_group()
        reply = await self._call(
            self._reclaim(keys=[self.stream], args=[GROUP, consumer, round(idle * 1000), count])
        )
        return [_delivery(ref, _pairs(fields), int(n)) for ref, fields, n in reply]

    async def renew(self, consumer: str, refs: list[str]) -> None:
        if refs:
            await self._call(
                self._redis.xclaim(self.stream, GROUP, consumer, 0, list[Any](refs), justid=True)
            )

    async def ack(self, refs: list[str]) -> None:
        if refs:
            await self._call(self._ack(keys=[self.stream], args=[GROUP, *refs]))

    async def bury(self, dead: list[tuple[Delivery, str]]) -> None:
        if not dead:
            return
        args: list[Any] = [GROUP]
        for d, error in dead:
            args += [d.ref, d.raw, d.token or "", error, d.deliveries]
        await self._call(self._bury(keys=[self.stream, self.dead], args=args))

    async def replay_dead(self) -> int:
        moved = 0
        while True:
            n: int = await self._call(self._replay(keys=[self.stream, self.dead], args=[500]))
            moved += n
            if n < 500:
                return moved

    async def forget(self, *, idle: float) -> None:
        consumers = await self._call(self._redis.xinfo_consumers(self.stream, GROUP))
        for c in consumers:
            if c["pending"] == 0 and c["idle"] >= idle * 1000:
                await self._call(self._redis.xgroup_delconsumer(self.stream, GROUP, c["name"]))

    async def stats(self) -> dict[str, Any]:
        """depth, pending, lag, oldest_age_s, dead (see `rung.Queue.stats`)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.xlen(self.stream)
        pipe.xlen(self.dead)
        pipe.xrange(self.stream, count=1)
        pipe.time()
        pipe.xinfo_groups(self.stream)
        try:
            depth, dead, first, now, groups = await pipe.execute(raise_on_error=False)
        except RedisError as e:
            raise self._unavailable(e) from e
        for value in (depth, dead, first, now):
            if isinstance(value, Exception):
                raise self._unavailable(value) from value
        group = {} if isinstance(groups, Exception) else _group(groups)  # no stream yet
        pending = group.get("pending", 0)
        lag = group.get("lag")
        if lag is None:  # Redis could not tell (or no group yet): what is not handed out
            lag = max(0, depth - pending)
        oldest_age_s = 0.0
        if first:
            ms = int(first[0][0].split(b"-")[0])
            oldest_age_s = max(0.0, (now[0] * 1000 + now[1] // 1000 - ms) / 1000)
        return {
            "depth": depth,
            "pending": pending,
            "lag": lag,
            "oldest_age_s": round(oldest_age_s, 3),
            "dead": dead,
        }

    async def _ensure_group(self) -> None:
        """Create the group once, at the start of the stream: events put before any
        drain existed are drained too."""
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise self._unavailable(e) from e
        except RedisError as e:
            raise self._unavailable(e) from e
        self._group_ready = True

    async def _call(self, aw: Any) -> Any:
        try:
            return await aw
        except RedisError as e:
            if "NOGROUP" in str(e):  # the stream was deleted behind our back: make it again
                self._group_ready = False
            raise self._unavailable(e) from e

    def _unavailable(self, error: Exception) -> QueueUnavailable:
        return QueueUnavailable(f"the queue Redis cannot do it: {error}")


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _delivery(ref: bytes, fields: dict[bytes, bytes], deliveries: int) -> Delivery:
    """An entry as rung's producer writes it (`e`: the event's JSON, `t`: a token), or one
    another producer added with plain XADD field-value pairs: those fields are the event."""
    raw = fields.get(b"e")
    token = fields.get(b"t")
    if raw is None:
        plain = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
        raw, token = orjson.dumps(plain), None
    return Delivery(ref.decode(), raw, token.decode() if token else None, deliveries)


def _group(groups: list[dict[str, Any]]) -> dict[str, Any]:
    for g in groups:
        name = g["name"]
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            return g
    return {}
