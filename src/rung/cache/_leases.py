"""Lease-guarded fills over plain Redis (Facebook memcache's leases, in Lua).

Per cached key there are three Redis keys (see `KeySpace`): the value, the lease and the
invalidation marker; per tag one generation key. A miss takes a lease token; the fill is
written only if that token is still the current lease and every tag generation it saw is
still current; `invalidate` deletes value and lease, so a load that began before it can
never write its stale result. Every script runs atomically in Redis.

Consistency tokens (PostgreSQL LSNs, 'X/Y') ride along: an invalidation stores the later
of its token and the marker's; a lease returns the marker and the tags' tokens, so the
next fill reads no replica that lacks the write.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

from rung._redis import RELEASE_IF_OWNER, Store
from rung.cache._entry import Entry, decode
from rung.db import _lsn as lsn

# later(a, b) of two LSNs 'X/Y' in Lua: hi and lo are 32-bit hex parts. Anything that is not
# an LSN (absent: '', or written behind rung's back) counts as absent, so it is overwritten.
_LATER = """
local function lsn(t)
  if #t > 17 then return nil end
  local h, l = string.match(t, '^(%x%x?%x?%x?%x?%x?%x?%x?)/(%x%x?%x?%x?%x?%x?%x?%x?)$')
  if not h then return nil end
  return tonumber(h, 16), tonumber(l, 16)
end
local function later(a, b)
  local ah, al = lsn(a)
  local bh, bl = lsn(b)
  if not ah then return bh and b or '' end
  if not bh then return a end
  if ah > bh or (ah == bh and al >= bl) then return a end
  return b
end
"""

# KEYS: value, lease, marker, tag...   ARGV: mode, token, lease_ms, generation_ms, fresh
# generation per tag. mode 'miss': return the value if there is one; 'free': ignore a
# value; 'force': take over any lease. Our own lease counts as free, so a retry of a take
# whose reply was lost gets it. Replies: {'v', value, tag...} | {'w'} (someone else holds
# the lease) | {'l', marker, tag...} (the lease is ours; tag generations are created where
# missing, and kept alive for generation_ms).
_TAKE = """
local mode = ARGV[1]
if mode == 'miss' then
  local v = redis.call('GET', KEYS[1])
  if v then
    local out = {'v', v}
    for i = 4, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or '' end
    return out
  end
end
if mode ~= 'force' then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[2] then return {'w'} end
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local out = {'l', redis.call('GET', KEYS[3]) or ''}
for i = 4, #KEYS do
  local g = redis.call('GET', KEYS[i])
  if g then
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  else
    g = ARGV[i + 1]
    redis.call('SET', KEYS[i], g, 'PX', ARGV[4])
  end
  out[#out + 1] = g
end
return out
"""

# KEYS: value, lease, tag...   ARGV: token, entry, ttl_ms, channel, message ('' for none),
# generation per tag (as leased). A `set` tells near caches (message); a fill need not.
_FILL = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 3] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
"""

# KEYS: value, lease, marker   ARGV: token ('' for none), marker_ms, channel, message
_INVALIDATE = (
    _LATER
    + """
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[3], later(redis.call('GET', KEYS[3]) or '', ARGV[1]), 'PX', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 0
"""
)

# KEYS: tag...   ARGV: token ('' for none), channel, generation_ms, new generation per tag
# A generation is 'random' or 'random|lsn'; the lsn part only ever moves forward.
_INVALIDATE_TAGS = (
    _LATER
    + """
for i = 1, #KEYS do
  local old = redis.call('GET', KEYS[i]) or ''
  local token = later(string.match(old, '|(.*)$') or '', ARGV[1])
  if token ~= '' then token = '|' .. token end
  redis.call('SET', KEYS[i], ARGV[i + 3] .. token, 'PX', ARGV[3])
end
redis.call('PUBLISH', ARGV[2], '*')
return 0
"""
)

Mode = Literal["miss", "free", "force"]
Args = list[bytes | str | int | float]  # a script's ARGV


@dataclass(frozen=True, slots=True)
class Busy:
    """Another caller holds the lease."""


@dataclass(frozen=True, slots=True)
class Found:
    """The value was there after all (another fill landed), fresh by the asked tags."""

    entry: Entry


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease is ours: fill with `token`; `generations` as they were when it was taken;
    `token_lsn` is the consistency token the loader must observe (None: none recorded)."""

    token: str
    generations: list[bytes]
    token_lsn: str | None

    def stamps(self, tags: tuple[str, ...]) -> dict[str, str]:
        """The entry's stamps: each of `tags` (as asked) with the generation leased."""
        return {t: g.decode() for t, g in zip(tags, self.generations, strict=True)}


class KeySpace:
    """Redis key names under a namespace: `{ns}:v:{key}` value, `{ns}:l:{key}` lease,
    `{ns}:i:{key}` invalidation marker, `{ns}:t:{tag}` tag generation, `{ns}:inv` the
    channel that tells near caches what to drop."""

    def __init__(self, namespace: str) -> None:
        self.channel = f"{namespace}:inv"
        self._v, self._l, self._i, self._t = (f"{namespace}:{c}:" for c in "vlit")

    def value(self, key: str) -> str:
        return self._v + key

    def lease(self, key: str) -> str:
        return self._l + key

    def marker(self, key: str) -> str:
        return self._i + key

    def tag(self, tag: str) -> str:
        return self._t + tag


class Leases:
    """The scripts, bound to one Store and namespace. Every marker and tag generation they
    write has a TTL: `marker_ms` outlives any lag a replica may have; a tag generation lives
    `generation_ms` past its last use (an expired one costs a miss, never a stale hit)."""

    def __init__(
        self, store: Store, keys: KeySpace, *, lease_ms: int, marker_ms: int, generation_ms: int
    ) -> None:
        self.keys = keys
        self._store = store
        self._lease_ms = lease_ms
        self._marker_ms = marker_ms
        self._generation_ms = generation_ms
        redis = store.redis
        self._take = redis.register_script(_TAKE)
        self._fill = redis.register_script(_FILL)
        self._release = redis.register_script(RELEASE_IF_OWNER)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._invalidate_tags = redis.register_script(_INVALIDATE_TAGS)

    async def take(
        self, key: str, tags: tuple[str, ...], *, free: bool = False
    ) -> Found | Lease | Busy:
        """Ask once for the lease on `key` (a tag without a generation gets a new one);
        `free` takes it even over a value there (an early refresh), else a fresh value is
        returned instead. A value that is no entry, or stale by its tags, counts as none."""
        token = _random()
        reply = await self._run_take("free" if free else "miss", key, tags, token)
        kind = reply[0]
        if kind == b"v":
            entry = decode(reply[1])
            if entry is not None and entry.fresh(tags, reply[2:]):
                return Found(entry)
            return await self.take(key, tags, free=True)
        if kind == b"w":
            return Busy()
        return _lease(token, reply)

    async def force(self, key: str, tags: tuple[str, ...]) -> Lease:
        """Take the lease over any holder (a `set`: whatever they load is older)."""
        token = _random()
        return _lease(token, await self._run_take("force", key, tags, token))

    async def _run_take(self, mode: Mode, key: str, tags: tuple[str, ...], token: str) -> Any:
        k = self.keys
        keys = [k.value(key), k.lease(key), k.marker(key), *map(k.tag, tags)]
        args: Args = [mode, token, self._lease_ms, self._generation_ms, *map(_fresh, tags)]
        return await self._store.run(lambda _: self._take(keys=keys, args=args), idempotent=True)

    async def fill(
        self,
        key: str,
        tags: tuple[str, ...],
        lease: Lease,
        entry: bytes,
        ttl_ms: int,
        *,
        notify: bool = False,
    ) -> bool:
        """Write `entry` if `lease` is still current; False when an invalidation voided it.
        `notify` tells near caches to drop the key (a `set` replaces a value they may hold).
        Not retried: a second run after a lost reply would report a fill as voided."""
        k = self.keys
        keys = [k.value(key), k.lease(key), *map(k.tag, tags)]
        args: Args = [lease.token, entry, ttl_ms, k.channel, "k:" + key if notify else "",
                      *lease.generations]  # fmt: skip
        return bool(await self._store.run(lambda _: self._fill(keys=keys, args=args)))

    async def release(self, key: str, lease: Lease) -> None:
        """Give the lease back unused (the loader failed), so waiters need not wait it out."""
        keys, args = [self.keys.lease(key)], [lease.token]
        await self._store.run(lambda _: self._release(keys=keys, args=args), idempotent=True)

    async def invalidate(self, key: str, token: str | None) -> None:
        """Void the value and any lease; remember `token` for the next fills."""
        k = self.keys
        keys = [k.value(key), k.lease(key), k.marker(key)]
        args: Args = [token or "", self._marker_ms, k.channel, "k:" + key]
        await self._store.run(lambda _: self._invalidate(keys=keys, args=args), idempotent=True)

    async def invalidate_tags(self, tags: tuple[str, ...], token: str | None) -> None:
        """Give each tag a new generation: every entry stamped with an old one misses."""
        keys = [self.keys.tag(t) for t in tags]
        args: Args = [token or "", self.keys.channel, self._generation_ms, *map(_fresh, tags)]
        await self._store.run(
            lambda _: self._invalidate_tags(keys=keys, args=args), idempotent=True
        )


def _lease(token: str, reply: Any) -> Lease:
    """A {'l', marker, generation...} reply: the consistency token is the latest of the
    marker's and the generations' (after their '|'); anything not an LSN is ignored."""
    generations: list[bytes] = reply[2:]
    position = None
    for recorded in [reply[1], *(g.partition(b"|")[2] for g in generations)]:
        text = recorded.decode(errors="replace")
        if lsn.valid(text):  # anything else (written behind rung's back) is ignored
            position = lsn.later(position, text)
    return Lease(token, generations, position)


def ms(seconds: float) -> int:
    """Seconds as the whole milliseconds Redis takes (PX), at least 1."""
    return max(1, round(seconds * 1000))


def _random() -> str:
    """A lease token or a tag generation: 64 random bits."""
    return secrets.token_hex(8)


def _fresh(_tag: str) -> str:
    """A new generation for a tag."""
    return _random()
