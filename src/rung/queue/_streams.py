"""The Redis Streams broker: one stream, one consumer group, dead letters beside it.

Layout: the stream `<stream>` holds entries `e` (the event's JSON) and, when the producer
had one, `t` (its consistency token); the group `rung` drains it; `<stream>:dead` holds
dead letters with `error`, `deliveries` and the original `ref`. An entry is removed once
acknowledged (XACK, then XTRIM below the oldest entry still pending, or XDEL, in one
script), so the stream's length is the depth: accepted, not yet acknowledged. Nothing
unacknowledged is ever trimmed. `<stream>:id:<event id>` marks an id the
put script accepted, for `window` seconds, so a put repeated with the same id adds nothing.

Every call goes through `rung._redis.Store`: bounded in total by `timeout`, mapped to
`QueueUnavailable` (Redis cannot serve) or `QueueError` (Redis refused what it was given),
and retried once inside the bound only where running it twice is harmless.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, RedisError

from rung._redis import Store
from rung.errors import QueueError, QueueFull, QueueUnavailable
from rung.queue._broker import Delivery
from rung.types import QueueStats

GROUP = "rung"

# KEYS: stream, then one id marker per event   ARGV: max_depth, token ('' none), window_ms,
# reserve, then one event (JSON) per marker, in the same order.
# Adds each event whose marker is absent (and whose id did not come earlier in this call),
# and sets its marker for window_ms. Adds nothing and returns -1 when the new events plus `reserve`
# (events a caller will put next, in later calls) would take the stream past max_depth;
# else returns how many it added.
_PUT = """
local new, seen = {}, {}
for i = 2, #KEYS do
  local marker = KEYS[i]
  if not seen[marker] then
    seen[marker] = true
    if redis.call('EXISTS', marker) == 0 then new[#new + 1] = i end
  end
end
local wanted = #new + tonumber(ARGV[4])
if wanted > 0 and redis.call('XLEN', KEYS[1]) + wanted > tonumber(ARGV[1]) then return -1 end
for _, i in ipairs(new) do
  if ARGV[2] == '' then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 3])
  else
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 3], 't', ARGV[2])
  end
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[3])
end
return #new
"""

# KEYS: stream   ARGV: group, the refs joined by spaces (one argument: redis-py encodes
# each argument in Python, which for a batch of thousands costs more than the call).
# Acks in chunks (Lua's unpack takes a few thousand values at most), then removes what is
# acknowledged. Every entry below the line (the oldest pending entry, or, with none
# pending, the first never delivered) has been acknowledged or buried: XTRIM MINID drops
# them a whole stream node at a time, a tenth of what XDEL costs per entry. When it drops
# fewer entries than were just acknowledged, some lie above the line (a batch committed
# before an older one): those are deleted one by one. So the stream holds exactly what is
# not acknowledged (an entry left above the line would only be trimmed later).
_ACK = """
local function id(text)
  local ms, seq = string.match(text, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local refs = {}
for ref in string.gmatch(ARGV[2], '%S+') do refs[#refs + 1] = ref end
local acked = 0
for i = 1, #refs, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(refs, i, math.min(i + 999, #refs)))
end
local line
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then
  line = pending[2]
else
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then
      local ms, seq = id(fields['last-delivered-id'])
      line = string.format('%d-%d', ms, seq + 1)
    end
  end
end
if not line or redis.call('XTRIM', KEYS[1], 'MINID', line) >= acked then return 0 end
local lms, lseq = id(line)
local above = {}
for _, ref in ipairs(refs) do
  local ms, seq = id(ref)
  if ms and (ms > lms or (ms == lms and seq >= lseq)) then above[#above + 1] = ref end
end
for i = 1, #above, 1000 do
  redis.call('XDEL', KEYS[1], unpack(above, i, math.min(i + 999, #above)))
end
return #above
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
    """`Broker` on Redis Streams (see the module docstring); `rung.Queue(url, stream=...)`
    makes one. `timeout` seconds bounds each call; `dedupe_window` seconds is how long an
    accepted id is remembered.

        broker = RedisStreams("redis://127.0.0.1:6381/0", "clicks", timeout=1.0, dedupe_window=60.0)
    """

    def __init__(self, url: str, stream: str, *, timeout: float, dedupe_window: float) -> None:
        self.stream = stream
        self.dead = f"{stream}:dead"
        self.dedupe_window = dedupe_window
        self.timeout = timeout
        self._window_ms = max(1, round(dedupe_window * 1000))
        self._store = Store(url, timeout=timeout, unavailable=QueueUnavailable,
                            rejected=QueueError)  # fmt: skip
        redis = self._store.redis
        redis.set_response_callback("XREADGROUP", _entries)  # this client's only reader
        self._put = redis.register_script(_PUT)
        self._ack = redis.register_script(_ACK)
        self._bury = redis.register_script(_BURY)
        self._replay = redis.register_script(_REPLAY)
        self._reclaim = redis.register_script(_RECLAIM)
        self._group_ready = False

    async def open(self) -> None:
        await self._store.open()

    async def close(self) -> None:
        await self._store.close()

    async def put(
        self, events: Sequence[tuple[str, bytes]], token: str | None, *, max_depth: int,
        reserve: int = 0,
    ) -> int:  # fmt: skip
        keys = [self.stream, *(f"{self.stream}:id:{event_id}" for event_id, _ in events)]
        args: list[Any] = [max_depth, token or "", self._window_ms, reserve]
        args += [raw for _, raw in events]
        try:
            # Idempotent by id: a script that ran before its connection broke added its
            # events and their markers, so running it again adds nothing.
            added: int = await self._store.run(
                lambda r: self._put(keys=keys, args=args, client=r), idempotent=True
            )
        except QueueUnavailable as e:
            if _out_of_memory(e.__cause__):  # noeviction and maxmemory reached: full, not down
                raise QueueFull(f"the queue Redis is out of memory: {e.__cause__}") from e.__cause__
            raise
        if added < 0:
            raise QueueFull(
                f"stream {self.stream!r} holds {max_depth} or more unacknowledged events "
                f"(max_depth={max_depth}); retry later"
            )
        return added

    async def read(self, consumer: str, count: int, *, wait: float) -> list[Delivery]:
        await self._ensure_group()
        block = max(1, round(min(wait, self.timeout / 2) * 1000))
        entries = await self._call(
            lambda r: r.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block)
        )
        return [_delivery(ref, flat, 1) for ref, flat in entries]

    async def reclaim(self, consumer: str, *, idle: float, count: int) -> list[Delivery]:
        await self._ensure_group()
        args: list[Any] = [GROUP, consumer, round(idle * 1000), count]
        reply = await self._call(lambda r: self._reclaim(keys=[self.stream], args=args, client=r))
        return [_delivery(ref, flat, int(n)) for ref, flat, n in reply]

    async def renew(self, consumer: str, refs: list[str]) -> None:
        if refs:  # JUSTID: resets the idle time without counting a delivery
            await self._call(
                lambda r: r.xclaim(self.stream, GROUP, consumer, 0, list[Any](refs), justid=True),
                idempotent=True,
            )

    async def ack(self, refs: list[str]) -> None:
        if refs:
            args = [GROUP, " ".join(refs)]
            await self._call(
                lambda r: self._ack(keys=[self.stream], args=args, client=r), idempotent=True
            )

    async def bury(self, dead: list[tuple[Delivery, str]]) -> None:
        if not dead:
            return
        args: list[Any] = [GROUP]
        for d, error in dead:
            args += [d.ref, d.raw, d.token or "", error, d.deliveries]
        await self._call(lambda r: self._bury(keys=[self.stream, self.dead], args=args, client=r))

    async def replay_dead(self) -> int:
        moved = 0
        keys = [self.stream, self.dead]
        while True:
            n: int = await self._call(lambda r: self._replay(keys=keys, args=[500], client=r))
            moved += n
            if n < 500:
                return moved

    async def forget(self, *, idle: float) -> None:
        await self._ensure_group()  # on a stream no one has read yet, XINFO fails
        consumers = await self._call(
            lambda r: r.xinfo_consumers(self.stream, GROUP), idempotent=True
        )
        for c in consumers:
            if c["pending"] == 0 and c["idle"] >= idle * 1000:
                await self._call(functools.partial(_delconsumer, self.stream, c["name"]),
                                 idempotent=True)  # fmt: skip

    async def stats(self) -> QueueStats:
        """depth, pending, lag, oldest_age_s, dead (see `rung.Queue.stats`)."""

        async def read(r: Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            pipe.xlen(self.stream)
            pipe.xlen(self.dead)
            pipe.xrange(self.stream, count=1)
            pipe.time()
            pipe.xinfo_groups(self.stream)
            return await pipe.execute(raise_on_error=False)

        depth, dead, first, now, groups = await self._store.run(read, idempotent=True)
        for value in (depth, dead, first, now):
            if isinstance(value, RedisError):
                raise self._store.error(value) from value
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
            await self._store.run(
                lambda r: r.xgroup_create(self.stream, GROUP, id="0", mkstream=True),
                idempotent=True,
            )
        except QueueError as e:
            if "BUSYGROUP" not in str(e):  # the group is there already
                raise
        self._group_ready = True

    async def _call(
        self, call: Callable[[Redis], Awaitable[Any]], *, idempotent: bool = False
    ) -> Any:
        """`call` through the store. NOGROUP (the stream was deleted behind our back) is
        waited out like an outage: the group is made again on the next call."""
        try:
            return await self._store.run(call, idempotent=idempotent)
        except QueueError as e:
            if "NOGROUP" not in str(e.__cause__):
                raise
            self._group_ready = False
            raise QueueUnavailable(f"the queue's consumer group is gone: {e.__cause__}") from e


async def _delconsumer(stream: str, name: str, r: Redis) -> Any:
    return await r.xgroup_delconsumer(stream, GROUP, name)


def _out_of_memory(error: BaseException | None) -> bool:
    return isinstance(error, OutOfMemoryError) or str(error).startswith("OOM")


def _entries(response: Any, **kwargs: Any) -> list[Any]:
    """XREADGROUP's reply as the entries of its one stream, each `[ref, [field, value,
    ...]]`: RESP2's `[[stream, entries]]` or RESP3's `{stream: entries}`, left unparsed.
    redis-py's own parsing builds a dict per entry, a third of a drain's time."""
    if not response:
        return []
    entries: list[Any] = (
        next(iter(response.values())) if isinstance(response, dict) else response[0][1]
    )
    return entries


def _delivery(ref: bytes, flat: list[bytes], deliveries: int) -> Delivery:
    """An entry as rung's producer writes it (`e`: the event's JSON, `t`: a token), or one
    another producer added with plain XADD field-value pairs: those fields are the event."""
    if len(flat) == 2 and flat[0] == b"e":  # the producer's, with no token: most entries
        return Delivery(ref.decode(), flat[1], None, deliveries)
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
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
