"""What the cache did, counted in-process (one `Cache` object), for `cache.stats()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rung.types import CacheStats


@dataclass(slots=True)
class Stats:
    hits: int = 0  # calls answered from the cache (Redis or the near cache)
    local_hits: int = 0  # of those, answered by the near cache without Redis
    misses: int = 0  # calls that found no fresh value
    coalesced: int = 0  # misses served by another caller's load (in-process or not)
    loads: int = 0  # loader calls, early refreshes included
    load_seconds: float = 0.0  # time spent in loaders
    refreshes: int = 0  # early refreshes started (XFetch)
    stale_fills_rejected: int = 0  # fills voided by an invalidation that came during the load
    errors: int = 0  # Redis operations that failed (the caller got the loader's value)

    def snapshot(
        self, *, breaker: Literal["closed", "open"], near: Literal["off", "live", "dark"]
    ) -> CacheStats:
        """The counters plus `hit_rate` = hits / (hits + misses), 0.0 before any call."""
        calls = self.hits + self.misses
        return {
            "hits": self.hits,
            "local_hits": self.local_hits,
            "misses": self.misses,
            "hit_rate": self.hits / calls if calls else 0.0,
            "coalesced": self.coalesced,
            "loads": self.loads,
            "load_seconds": self.load_seconds,
            "refreshes": self.refreshes,
            "stale_fills_rejected": self.stale_fills_rejected,
            "errors": self.errors,
            "breaker": breaker,
            "near": near,
        }
