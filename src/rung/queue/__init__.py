"""Rung 4: a queue-based load leveller that drains writes into PostgreSQL.

from rung.queue import Drain, HandlerSink, Queue, TableSink

The extension points: `Broker` (where a queue keeps its events; Redis Streams by default,
`rung.testing.MemoryBroker` in memory), `Sink` (where a drain writes them) and `Delivery`
(an event as a broker hands it to a drain and a drain to a sink).
"""

from rung.queue import _faults, _ids, _pacing
from rung.queue._broker import Broker, Delivery
from rung.queue._drain import Drain
from rung.queue._queue import CHUNK_EVENTS, Queue
from rung.queue._sinks import Failures, HandlerSink, Sink, TableSink
from rung.queue._streams import RedisStreams

__all__ = [
    "CHUNK_EVENTS",
    "Broker",
    "Delivery",
    "Drain",
    "Failures",
    "HandlerSink",
    "Queue",
    "RedisStreams",
    "Sink",
    "TableSink",
]

# Internal modules under public names, for their own unit tests
# (`from rung.queue import pacing`); modules, so not in __all__ (tests/test_public_api.py
# pins this list).
faults = _faults
ids = _ids
pacing = _pacing
