"""Rung 4: a queue-based load leveller that drains writes into PostgreSQL.

from rung.queue import Drain, HandlerSink, Queue, TableSink

The extension points: `Broker` (where a queue keeps its events; Redis Streams by default,
`rung.testing.MemoryBroker` in memory), `Sink` (where a drain writes them) and `Delivery`
(an event as a broker hands it to a drain and a drain to a sink).
"""

from rung.queue.broker import Broker, Delivery
from rung.queue.drain import Drain
from rung.queue.queue import Queue
from rung.queue.sinks import HandlerSink, Sink, TableSink

__all__ = ["Broker", "Delivery", "Drain", "HandlerSink", "Queue", "Sink", "TableSink"]
