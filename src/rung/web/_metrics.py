"""`/metrics`: every `stats()` of the db, the cache and the queue as Prometheus series.

Names follow Prometheus conventions: a `rung_` prefix, the unit in the name, `_total` on
counters (prometheus-client adds it to a counter family's name).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rung.cache import Cache
from rung.db import Database
from rung.queue import Queue
from rung.types import DatabaseStats, QueueStats

# (stats key, metric name, help) per kind; a counter's name gets `_total` on the wire.
_DB_COUNTERS = [
    ("queries", "rung_db_queries", "Statements and blocks a node served."),
    ("errors", "rung_db_errors", "Connection-level failures on a node."),
    ("timeouts", "rung_db_timeouts", "Statements that ran past their timeout on a node."),
    ("causal_waits", "rung_db_causal_waits", "Reads that waited for a replica to replay."),
]
_DB_GAUGES = [
    ("healthy", "rung_db_node_healthy", "1 while the node serves."),
    ("pool_size", "rung_db_pool_connections", "Connections in the node's pool."),
    ("pool_max_size", "rung_db_pool_max_connections", "Connections the pool may grow to."),
    ("pool_in_use", "rung_db_pool_connections_in_use", "Pool connections in use."),
    ("pool_waiting", "rung_db_pool_waiting", "Acquires waiting for a free connection."),
    ("replay_lag_s", "rung_db_replica_lag_seconds", "How far a replica is behind, in time."),
    ("replay_lag_bytes", "rung_db_replica_lag_bytes", "How far a replica is behind, in WAL."),
    ("replay_stalled", "rung_db_replica_stalled", "1 while a replica's replay is stuck."),
]
_CACHE_COUNTERS = [
    ("hits", "rung_cache_hits", "Calls answered from the cache."),
    ("local_hits", "rung_cache_local_hits", "Hits answered by the near cache."),
    ("misses", "rung_cache_misses", "Calls that found no fresh value."),
    ("coalesced", "rung_cache_coalesced", "Misses served by another caller's load."),
    ("loads", "rung_cache_loads", "Loader calls."),
    ("load_seconds", "rung_cache_load_seconds", "Time spent in loaders."),
    ("refreshes", "rung_cache_refreshes", "Early refreshes started."),
    ("stale_fills_rejected", "rung_cache_stale_fills_rejected", "Fills voided by a race."),
    ("errors", "rung_cache_errors", "Redis calls that failed."),
]
_QUEUE_GAUGES = [
    ("depth", "rung_queue_depth", "Events accepted and not yet acknowledged."),
    ("pending", "rung_queue_pending", "Events delivered to a drain, not yet acknowledged."),
    ("lag", "rung_queue_lag", "Events not yet delivered to any drain."),
    ("oldest_age_s", "rung_queue_oldest_age_seconds", "Age of the oldest unacknowledged event."),
    ("dead", "rung_queue_dead", "Dead letters."),
]


class Stats(Collector):
    """Reads the stats `refresh` gathered (the queue's are async, a collector is not)."""

    def __init__(self, *, db: Database | None, cache: Cache | None, queue: Queue | None) -> None:
        self._db, self._cache, self._queue = db, cache, queue
        self._queue_stats: QueueStats | None = None

    async def refresh(self) -> None:
        if self._queue is not None:
            try:
                self._queue_stats = await self._queue.stats()
            except Exception:  # an unreachable queue: no queue series this scrape
                self._queue_stats = None

    def collect(self) -> Iterator[Metric]:
        if self._db is not None:
            yield from _per_node(self._db.stats())
        if self._cache is not None:
            stats: Mapping[str, Any] = self._cache.stats()  # a CacheStats, read by the keys above
            for key, name, doc in _CACHE_COUNTERS:
                yield CounterMetricFamily(name, doc, value=float(stats[key]))
            yield GaugeMetricFamily("rung_cache_hit_ratio", "Hits / (hits + misses).",
                                    value=float(stats["hit_rate"]))  # fmt: skip
            yield GaugeMetricFamily("rung_cache_breaker_open", "1 while calls skip Redis.",
                                    value=float(stats["breaker"] == "open"))  # fmt: skip
        if self._queue is not None and self._queue_stats is not None:
            queued: Mapping[str, Any] = self._queue_stats
            for key, name, doc in _QUEUE_GAUGES:
                gauge = GaugeMetricFamily(name, doc, labels=["stream"])
                gauge.add_metric([self._queue.stream], float(queued[key]))
                yield gauge


def _per_node(db: DatabaseStats) -> Iterator[Metric]:
    stats: Mapping[str, Mapping[str, Any]] = db  # NodeStats, read by the keys above
    for key, name, doc in _DB_COUNTERS:
        counter = CounterMetricFamily(name, doc, labels=["node", "role"])
        for node, s in stats.items():
            counter.add_metric([node, s["role"]], float(s[key]))
        yield counter
    for key, name, doc in _DB_GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["node", "role"])
        for node, s in stats.items():
            if s[key] is not None:
                gauge.add_metric([node, s["role"]], float(s[key]))
        yield gauge


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
