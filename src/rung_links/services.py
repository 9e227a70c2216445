"""What the routes share: the settings, rung's clients and the service's own parts.

services = app.state.services     # what create_app built; the lifespan opens its clients
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import rung
from rung_links.clicks import ClickRecorder
from rung_links.metrics import Metrics
from rung_links.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: rung.Database
    cache: rung.Cache
    queue: rung.Queue
    clicks: ClickRecorder
    metrics: Metrics

    async def cached(self, key: str, load: Callable[[], Awaitable[Any]], *, ttl: float) -> Any:
        """`cache.get_or_load`, or `load()` itself when the settings turn the cache off."""
        if not self.settings.cache:
            return await load()
        return await self.cache.get_or_load(key, load, ttl=ttl)
