"""What a cache entry holds in Redis, and when to refresh it early.

An entry is one orjson array: `[expires_at, delta, stamps, value]`: the wall-clock expiry
(Unix seconds), how long the load took (XFetch's δ), the tag generations it was filled
under (`{tag: generation}`) and the value itself. One `orjson.loads` decodes all of it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from rung.errors import CacheError


@dataclass(slots=True)
class Entry:
    expires_at: float
    delta: float
    stamps: dict[str, str]
    value: Any

    def fresh(self, tags: Sequence[str], generations: Sequence[bytes | None]) -> bool:
        """True when every stamp matches the current generation of its tag (`generations`
        lines up with `tags`; a missing tag key, b'', never matches)."""
        if len(self.stamps) != len(tags):
            return False
        stamps = self.stamps
        for tag, generation in zip(tags, generations, strict=True):
            stamp = stamps.get(tag)
            if stamp is None or stamp.encode() != generation:
                return False
        return True

    def refresh_early(
        self, beta: float, *, now: float | None = None, draw: float | None = None
    ) -> bool:
        """XFetch (Vattani et al., VLDB 2015): refresh when `now - δ·β·ln(rand) >= expiry`,
        so the chance rises smoothly as expiry nears and one caller goes first. `now` (Unix
        seconds) and `draw` (uniform in [0, 1)) default to the clock and `random.random()`."""
        if beta <= 0 or self.delta <= 0:
            return False
        now = time.time() if now is None else now
        draw = random.random() if draw is None else draw
        return now - self.delta * beta * math.log(1.0 - draw) >= self.expires_at


def decode(raw: bytes) -> Entry | None:
    """The entry, or None for bytes that are not one (treated as a miss and overwritten)."""
    try:
        expires_at, delta, stamps, value = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    if not (_number(expires_at) and _number(delta) and isinstance(stamps, dict)):
        return None
    if not all(isinstance(g, str) for g in stamps.values()):
        return None
    return Entry(float(expires_at), float(delta), stamps, value)


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def encode(key: str, value: Any, *, ttl: float, delta: float, stamps: dict[str, str]) -> bytes:
    """The bytes to store for `value`; `CacheError` when orjson cannot serialize it."""
    try:
        return orjson.dumps((time.time() + ttl, delta, stamps, value))
    except orjson.JSONEncodeError as e:
        raise CacheError(f"cannot cache {key!r}: {e}") from e


def decoded(raw: bytes) -> Entry:
    """What a hit on `raw`, as `encode` just wrote it, returns: the value's JSON round trip."""
    expires_at, delta, stamps, value = orjson.loads(raw)
    return Entry(expires_at, delta, stamps, value)


def jittered(ttl: float, jitter: float) -> float:
    """`ttl` shortened by a random fraction up to `jitter`, so keys filled together do not
    expire together."""
    return ttl * (1.0 - jitter * random.random())
