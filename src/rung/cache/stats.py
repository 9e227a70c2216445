"""What the cache did, counted in-process (one `Cache` object), for `cache.stats()`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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

    def snapshot(self) -> dict[str, Any]:
        """The counters plus `hit_rate` = hits / (hits + misses), 0.0 before any call."""
        out = asdict(self)
        calls = self.hits + self.misses
        out["hit_rate"] = self.hits / calls if calls else 0.0
        return out
