"""Rung 2: cache-aside over Redis with lease-guarded fills and invalidation after commit.

from rung.cache import Cache
"""

from rung.cache.cache import Cache

__all__ = ["Cache"]
