"""App checks from its `/metrics` (Prometheus text, as rung.web serves it): pool waits and
statement timeouts, the cache hit rate the app itself counted, queue fallbacks.

    samples = await scrape("http://127.0.0.1:8000", timeout=5.0)
    findings = app_findings(samples)
    held = await pools(["http://127.0.0.1:8001", "http://127.0.0.1:8002"], timeout=5.0)
    finding = pools_against_connections(held, in_use=12, usable=97)

The pools' sums are what each instance's pools may grow to (`rung_db_pool_max_connections`,
the configured max_size) and hold now (`rung_db_pool_connections`), summed over the
instances that answered: one instance when only `--app-url` (the balancer) is known, each
instance when the doctor has a stack's directory.
"""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from rung.doctor._model import Finding, Verdict

# `name{labels} value` or `name value`; comments and timestamps aside.
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"')


async def scrape(app_url: str, *, timeout: float) -> dict[str, float]:
    """Each metric's samples summed over their labels."""
    return parse(await _metrics(app_url, timeout))


async def _metrics(app_url: str, timeout: float) -> str:
    return await asyncio.to_thread(_get, app_url.rstrip("/") + "/metrics", timeout)


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
    for name, _, value in samples(text):
        sums[name] += value
    return dict(sums)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition as (name, labels, value).

    >>> samples('rung_db_pool_connections{node="primary",role="primary"} 4.0')
    [('rung_db_pool_connections', {'node': 'primary', 'role': 'primary'}, 4.0)]
    """
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            try:
                value = float(match[3])
            except ValueError:
                continue
            found.append((match[1], dict(_LABEL.findall(match[2] or "")), value))
    return found


@dataclass(frozen=True)
class Pools:
    """Connections the instances' pools hold and may grow to, by node role, and how many
    instances told."""

    by_role: dict[str, float]
    max_by_role: dict[str, float]
    answered: int
    asked: int


async def pools(urls: list[str], *, timeout: float) -> Pools:
    """The pools of each app instance at `urls`; an instance that does not answer is left
    out of the sum (the balancer check says which instance is down)."""

    async def one(url: str) -> str | None:
        try:
            return await _metrics(url, timeout)
        except (OSError, urllib.error.URLError, TimeoutError):
            return None

    texts = await asyncio.gather(*(one(url) for url in urls))
    by_role: dict[str, float] = defaultdict(float)
    max_by_role: dict[str, float] = defaultdict(float)
    for text in texts:
        for name, labels, value in samples(text or ""):
            if name == "rung_db_pool_connections":
                by_role[labels.get("role", "")] += value
            elif name == "rung_db_pool_max_connections":
                max_by_role[labels.get("role", "")] += value
    return Pools(dict(by_role), dict(max_by_role), sum(t is not None for t in texts), len(urls))


def pools_against_connections(held: Pools, *, in_use: int, usable: int) -> Finding:
    """The instances' primary pools against the primary's usable connections: each pool can
    grow to its max_size, and more instances multiply them. The verdict is on what the
    pools may grow to (what they hold now, from an instance too old to say)."""
    primary = held.by_role.get("primary", 0.0)
    configured = held.max_by_role.get("primary", primary)
    share = configured / max(usable, 1)
    evidence: dict[str, int | float | str | bool | None] = {
        "pool_connections_primary": primary,
        "pool_max_connections_primary": configured,
        "pool_connections_replicas": held.by_role.get("replica", 0.0),
        "instances_answered": held.answered, "instances_asked": held.asked,
        "in_use": in_use, "usable_connections": usable, "share": round(share, 3),
    }  # fmt: skip
    seen = f"{held.answered} of {held.asked} instance{'s' * (held.asked != 1)}"
    verdict = Verdict.act if share >= 0.8 else Verdict.watch if share >= 0.6 else Verdict.ok
    return Finding(
        "app", "pools against max_connections", verdict,
        f"the pools of {seen} may grow to {configured:.0f} connections to the primary and "
        f"hold {primary:.0f}; it has {in_use} in use of {usable} usable",
        "nothing" if verdict is Verdict.ok else "put PgBouncer (transaction mode) between the "
        "instances and the primary, or lower each instance's max_size so that their sum "
        "stays under max_connections", evidence, rung="pooling",
    )  # fmt: skip


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
