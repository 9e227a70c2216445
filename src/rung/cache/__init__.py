"""Rung 2: cache-aside over Redis with lease-guarded fills and invalidation after commit.

from rung.cache import Cache
"""

from rung.cache import _breaker, _entry, _flights, _lease_client, _leases
from rung.cache._cache import Cache

__all__ = ["Cache"]

# Internal modules under public names, for their own unit tests
# (`from rung.cache import breaker`); modules, so not in __all__ (tests/test_public_api.py
# pins this list).
breaker = _breaker
entry = _entry
flights = _flights
lease_client = _lease_client
leases = _leases
