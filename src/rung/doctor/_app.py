"""App checks from its `/metrics` (Prometheus text, as rung.web serves it): pool waits and
statement timeouts, the cache hit rate the app itself counted, queue fallbacks.

    samples = await scrape("http://127.0.0.1:8000", timeout=5.0)
    findings = app_findings(samples)
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections import defaultdict

from rung.doctor._model import Finding, Verdict

# `name{labels} value` or `name value`; comments and timestamps aside.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)")


async def scrape(app_url: str, *, timeout: float) -> dict[str, float]:
    """Each metric's samples summed over their labels."""
    text = await asyncio.to_thread(_get, app_url.rstrip("/") + "/metrics", timeout)
    return parse(text)


def _get(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def parse(text: str) -> dict[str, float]:
    """Prometheus text exposition, summed by metric name.

    >>> parse('rung_db_pool_waiting{node="primary"} 2.0\\nrung_db_pool_waiting{node="r1"} 1')
    {'rung_db_pool_waiting': 3.0}
    """
    sums: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            try:
                sums[match[1]] += float(match[2])
            except ValueError:
                continue
    return dict(sums)


def app_findings(samples: dict[str, float]) -> list[Finding]:
    findings = []
    if "rung_db_pool_waiting" in samples:
        waiting = samples["rung_db_pool_waiting"]
        timeouts = samples.get("rung_db_timeouts_total", 0.0)
        pool = samples.get("rung_db_pool_connections", 0.0)
        in_use = samples.get("rung_db_pool_connections_in_use", 0.0)
        evidence: dict[str, int | float | str | bool | None] = {
            "pool_waiting": waiting, "statement_timeouts": timeouts,
            "pool_connections": pool, "pool_in_use": in_use,
        }  # fmt: skip
        busy = waiting > 0 or timeouts > 0
        findings.append(Finding(
            "app", "database pools", Verdict.watch if busy else Verdict.ok,
            f"{waiting:.0f} acquires waiting, {timeouts:.0f} statement timeouts, "
            f"{in_use:.0f} of {pool:.0f} pooled connections in use (this instance)",
            "index or cache the slow statements first; then raise max_size within "
            "max_connections, or add PgBouncer" if busy else "nothing", evidence,
            rung="pooling",
        ))  # fmt: skip
    fallbacks = {k: v for k, v in samples.items() if k.endswith("fallbacks_total")}
    if fallbacks:
        count = sum(fallbacks.values())
        findings.append(Finding(
            "app", "queue fallbacks", Verdict.watch if count else Verdict.ok,
            f"{count:.0f} writes went to the database directly: the queue was full or "
            "unreachable" if count else "every write the queue took stayed on it",
            "check the queue's depth and its drain workers" if count else "nothing",
            dict(fallbacks), rung="queue",
        ))  # fmt: skip
    return findings


def app_hit_rate(samples: dict[str, float]) -> float | None:
    """The app's own cache hit rate, when it has counted enough lookups to judge."""
    hits = samples.get("rung_cache_hits_total", 0.0)
    misses = samples.get("rung_cache_misses_total", 0.0)
    return hits / (hits + misses) if hits + misses >= 1000 else None
