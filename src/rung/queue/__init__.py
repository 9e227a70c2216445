"""Rung 4: a queue-based load leveller that drains writes into PostgreSQL.

from rung.queue import Drain, HandlerSink, Queue, TableSink
"""

from rung.queue.drain import Drain
from rung.queue.queue import Queue
from rung.queue.sinks import HandlerSink, Sink, TableSink

__all__ = ["Drain", "HandlerSink", "Queue", "Sink", "TableSink"]
