"""rung: take a Python web service past its scale inflection points.

    import rung
    db = rung.Database(primary=..., replicas=[...])
    cache = rung.Cache(cache_url, db=db)

The names below are the public API; everything else may change between releases.
"""

from rung.cache import Cache
from rung.db import Database
from rung.errors import (
    CacheError,
    CacheUnavailable,
    ComponentFailed,
    DatabaseError,
    LeadershipLost,
    MissingBinary,
    NoHealthyNode,
    PoolTimeout,
    PrimaryUnavailable,
    QueueError,
    QueueFull,
    QueueUnavailable,
    RungError,
    StackError,
)
from rung.queue import Drain, HandlerSink, Queue, TableSink
from rung.state import SessionMiddleware, Singleton

__all__ = [
    "Cache",
    "CacheError",
    "CacheUnavailable",
    "ComponentFailed",
    "Database",
    "DatabaseError",
    "Drain",
    "HandlerSink",
    "LeadershipLost",
    "MissingBinary",
    "NoHealthyNode",
    "PoolTimeout",
    "PrimaryUnavailable",
    "Queue",
    "QueueError",
    "QueueFull",
    "QueueUnavailable",
    "RungError",
    "SessionMiddleware",
    "Singleton",
    "StackError",
    "TableSink",
]
__version__ = "0.1.0"
