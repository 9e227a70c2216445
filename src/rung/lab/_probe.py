"""What the lab reads around each load step: statements per database node, cache counters.

    before = await Statements.read(nodes)          # {"primary": url, "replica1": url}
    ... load ...
    after = await Statements.read(nodes)
    per_node = after.since(before, seconds=3.0)    # statements/s and reads/s per node
    ms = await stats_query_ms(primary_url, link_ids)   # the stats query's plan, timed idle

Statements come from pg_stat_statements on each node (a replica counts the reads it
served). A read is a statement that begins with SELECT and calls no `pg_` function: rung's
own health polls and WAL-position queries are not the service's reads. Cache counters
come from each app instance's `/metrics` (rung.web), summed over instances.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from statistics import median
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from rung_links import stats

_READ = re.compile(r"\s*select\b(?!.*\bpg_)", re.IGNORECASE | re.DOTALL)
LINK_READ = "FROM links WHERE slug = $1"  # links.LOAD: a link record the cache missed

_SNAPSHOT = "SELECT queryid, query, calls FROM pg_stat_statements"


@dataclass
class Statements:
    """pg_stat_statements of every node at one moment: node -> queryid -> (query, calls)."""

    nodes: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)

    @classmethod
    async def read(cls, urls: Mapping[str, str]) -> Statements:
        async def one(url: str) -> dict[int, tuple[str, int]]:
            conn = await asyncpg.connect(url, timeout=5, statement_cache_size=0)
            try:
                rows = await conn.fetch(_SNAPSHOT, timeout=5)
            finally:
                await conn.close()
            return {r["queryid"]: (r["query"], r["calls"]) for r in rows}

        snapshots = await asyncio.gather(*(one(url) for url in urls.values()))
        return cls(dict(zip(urls, snapshots, strict=True)))

    def since(self, before: Statements, *, seconds: float) -> dict[str, Any]:
        """Per node: statements/s and reads/s; over all nodes: link record reads."""
        per_node: dict[str, dict[str, float]] = {}
        link_reads = 0
        for node, now in self.nodes.items():
            then = before.nodes.get(node, {})
            calls = reads = 0
            for queryid, (query, n) in now.items():
                _, n0 = then.get(queryid, ("", 0))
                delta = n - n0
                if delta <= 0 or query.startswith(_SNAPSHOT):
                    continue
                calls += delta
                if _READ.match(query):
                    reads += delta
                if LINK_READ in query:
                    link_reads += delta
            per_node[node] = {
                "statements_per_s": round(calls / seconds, 1),
                "reads_per_s": round(reads / seconds, 1),
            }
        return {"nodes": per_node, "link_reads": link_reads}


async def stats_query_ms(url: str, link_ids: list[int]) -> float:
    """The service's stats query on an idle node: the median over `link_ids` of the execution
    time EXPLAIN ANALYZE reports. Under load the query's time in pg_stat_statements includes
    the time the database's box spent throttled, which swamps what an index changes."""
    day = datetime.now(UTC).date()
    midnight = datetime.combine(day, time(), UTC)
    conn = await asyncpg.connect(url, timeout=5, statement_cache_size=0)
    try:
        times = []
        for link_id in link_ids:
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {stats.DAILY}",
                link_id,
                day,
                midnight,
                timeout=30,
            )
            times.append(float(json.loads(plan)[0]["Execution Time"]))
    finally:
        await conn.close()
    return round(median(times), 3)


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
