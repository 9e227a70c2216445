"""What the lab reads around each load step: statements per database node, cache counters.

    before = await Statements.read(nodes)          # {"primary": url, "replica1": url}
    ... load ...
    after = await Statements.read(nodes)
    per_node = after.since(before, seconds=3.0)    # statements/s and reads/s per node

Statements come from pg_stat_statements on each node (a replica counts the reads it
served). A read is a statement that begins with SELECT and calls no `pg_` function: rung's
own health polls and WAL-position queries are not the service's reads. Cache counters
come from each app instance's `/metrics` (rung.web), summed over instances.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

_READ = re.compile(r"\s*select\b(?!.*\bpg_)", re.IGNORECASE | re.DOTALL)
LINK_READ = "FROM links WHERE slug = $1"  # links.LOAD: a link record the cache missed
STATS_READ = "FROM link_daily_stats"  # stats.DAILY

_SNAPSHOT = "SELECT queryid, query, calls, total_exec_time FROM pg_stat_statements"


@dataclass
class Statements:
    """pg_stat_statements of every node at one moment: node -> queryid -> (query, calls, ms)."""

    nodes: dict[str, dict[int, tuple[str, int, float]]] = field(default_factory=dict)

    @classmethod
    async def read(cls, urls: Mapping[str, str]) -> Statements:
        async def one(url: str) -> dict[int, tuple[str, int, float]]:
            conn = await asyncpg.connect(url, timeout=5, statement_cache_size=0)
            try:
                rows = await conn.fetch(_SNAPSHOT, timeout=5)
            finally:
                await conn.close()
            return {r["queryid"]: (r["query"], r["calls"], r["total_exec_time"]) for r in rows}

        snapshots = await asyncio.gather(*(one(url) for url in urls.values()))
        return cls(dict(zip(urls, snapshots, strict=True)))

    def since(self, before: Statements, *, seconds: float) -> dict[str, Any]:
        """Per node: statements/s and reads/s; over all nodes: link record reads, stats
        query calls and its mean time in ms."""
        per_node: dict[str, dict[str, float]] = {}
        link_reads = stats_calls = 0
        stats_ms = 0.0
        for node, now in self.nodes.items():
            then = before.nodes.get(node, {})
            calls = reads = 0
            for queryid, (query, n, ms) in now.items():
                _, n0, ms0 = then.get(queryid, ("", 0, 0.0))
                delta = n - n0
                if delta <= 0 or query.startswith(_SNAPSHOT):
                    continue
                calls += delta
                if _READ.match(query):
                    reads += delta
                if LINK_READ in query:
                    link_reads += delta
                elif STATS_READ in query:
                    stats_calls += delta
                    stats_ms += ms - ms0
            per_node[node] = {
                "statements_per_s": round(calls / seconds, 1),
                "reads_per_s": round(reads / seconds, 1),
            }
        return {
            "nodes": per_node,
            "link_reads": link_reads,
            "stats_calls": stats_calls,
            "stats_query_ms": round(stats_ms / stats_calls, 3) if stats_calls else None,
        }


def cache_counters(app_urls: list[str]) -> dict[str, float]:
    """`rung_cache_hits_total` and `rung_cache_misses_total` summed over `app_urls`."""
    total = {"hits": 0.0, "misses": 0.0}
    wanted = {"rung_cache_hits_total": "hits", "rung_cache_misses_total": "misses"}
    for url in app_urls:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    total[wanted[sample.name]] += sample.value
    return total
