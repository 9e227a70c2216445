"""rung: take a Python web service past its scale inflection points.

    import rung
    db = rung.Database(primary=..., replicas=[...])
    cache = rung.Cache(cache_url, db=db)

The names below are the public API; everything else may change between releases.
`rung.web` (the ASGI glue, `pip install 'rung[web]'`) is imported on first use.
"""

import importlib

from rung import _aio, _redis
from rung.cache import Cache
from rung.db import Database, Token
from rung.errors import (
    AfterCommitFailed,
    CacheError,
    CacheUnavailable,
    ComponentFailed,
    DatabaseError,
    InvalidToken,
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
    StatementTimeout,
)
from rung.queue import Broker, Delivery, Drain, HandlerSink, Queue, Sink, TableSink
from rung.state import SessionMiddleware, Singleton
from rung.types import (
    CacheStats,
    DatabaseStats,
    DrainStats,
    Executor,
    NodeStats,
    QueueStats,
)

__all__ = [
    "AfterCommitFailed",
    "Broker",
    "Cache",
    "CacheError",
    "CacheStats",
    "CacheUnavailable",
    "ComponentFailed",
    "Database",
    "DatabaseError",
    "DatabaseStats",
    "Delivery",
    "Drain",
    "DrainStats",
    "Executor",
    "HandlerSink",
    "InvalidToken",
    "LeadershipLost",
    "MissingBinary",
    "NoHealthyNode",
    "NodeStats",
    "PoolTimeout",
    "PrimaryUnavailable",
    "Queue",
    "QueueError",
    "QueueFull",
    "QueueStats",
    "QueueUnavailable",
    "RungError",
    "SessionMiddleware",
    "Singleton",
    "Sink",
    "StackError",
    "StatementTimeout",
    "TableSink",
    "Token",
]
__version__ = "0.1.0"

# The shared helpers under public names, for their own unit tests (`from rung import aio`);
# modules, so not in __all__ (tests/test_public_api.py pins this list).
aio = _aio
redis = _redis


def __getattr__(name: str) -> object:
    if name == "web":  # an extra's module: `import rung` needs none of its dependencies
        return importlib.import_module("rung.web")
    raise AttributeError(f"module 'rung' has no attribute {name!r}")
