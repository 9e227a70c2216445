"""`diagnose`: every check, concurrently, each bounded in time, then the closing verdict.

    report = await diagnose(Targets(db="postgresql://app@127.0.0.1:5432/app"))

A component that does not answer (refused, hung, a wrong name) becomes one `unreachable`
finding naming it and why, within the check's bound; the other checks run regardless.
"""

from __future__ import annotations

import asyncio
import urllib.error
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from redis.exceptions import RedisError

from rung._aio import deadline
from rung.doctor._advice import advice
from rung.doctor._app import (
    Pools,
    app_findings,
    app_hit_rate,
    pools,
    pools_against_connections,
    scrape,
)
from rung.doctor._cache import check_cache
from rung.doctor._database import DatabaseFacts, check_database
from rung.doctor._instances import check_balancer, check_lint
from rung.doctor._model import AREAS, Finding, Report, unreachable
from rung.doctor._queue import check_queue
from rung.doctor._replicas import check_replica, reads_reach_replicas
from rung.doctor._targets import Targets
from rung.doctor._verdict import verdict

T = TypeVar("T")

# What a component that cannot be checked raises: the network, a timeout, the server's own
# refusal (a database that does not exist, a password), a driver's protocol error.
_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError, TimeoutError, urllib.error.URLError, RedisError,
    asyncpg.PostgresError, asyncpg.InterfaceError,
)  # fmt: skip


async def diagnose(
    targets: Targets,
    *,
    timeout: float = 5.0,
    sample: float = 1.0,
    large_rows: int = 10_000,
    max_lag: float = 5.0,
) -> Report:
    """Run every check `targets` allows. `timeout` bounds each connection and query (in
    seconds); `sample` is the interval rates are measured over; a table of `large_rows` rows
    or more should not be read by sequential scans; a replica `max_lag` seconds behind is
    out of service (rung.Database's default)."""
    if timeout <= 0 or sample < 0 or large_rows < 1 or max_lag <= 0:
        raise ValueError("timeout and max_lag must be > 0, sample >= 0, large_rows >= 1")
    bound = 4 * timeout + sample  # an area's whole run: a few bounded round trips and a sample

    async def guarded(area: str, component: str, work: Awaitable[T]) -> T | Finding:
        try:
            async with deadline(bound):
                return await work
        except _UNREACHABLE as e:
            return unreachable(area, component, _reason(e))

    findings: list[Finding] = []
    app = asyncio.ensure_future(
        guarded("app", "app", scrape(targets.app_url, timeout=timeout))
        if targets.app_url else _none()
    )  # fmt: skip
    # Each instance's pools; through the balancer only, the one instance that answers.
    instance_urls = list(targets.instance_urls) or ([targets.app_url] if targets.app_url else [])
    held = guarded("app", "app", pools(instance_urls, timeout=timeout)) if instance_urls \
        else _none()  # fmt: skip

    async def cache(url: str) -> list[Finding]:
        samples = await app
        rate = app_hit_rate(samples) if isinstance(samples, dict) else None
        return await check_cache(url, timeout=timeout, app_hit_rate=rate)

    database = (
        guarded("database", "database", check_database(
            targets.db, timeout=timeout, sample=sample, large_rows=large_rows))
        if targets.db else _none()
    )  # fmt: skip
    replicas = [
        guarded("database", f"replica{i}",
                check_replica(f"replica{i}", url, timeout=timeout, max_lag=max_lag))
        for i, url in enumerate(targets.replicas, 1)
    ]  # fmt: skip
    others = [
        *([guarded("cache", "cache", cache(targets.cache))] if targets.cache else []),
        *([guarded("queue", "queue", check_queue(targets.queue, streams=targets.streams,
                                                 timeout=timeout, sample=sample))]
          if targets.queue else []),
        *([guarded("instances", "load balancer",
                   check_balancer(targets.balancer_socket, timeout=timeout))]
          if targets.balancer_socket else []),
        *([guarded("instances", "rung lint", check_lint(targets.app))] if targets.app else []),
    ]  # fmt: skip
    db_result, replica_results, other_results, app_result, held_result = await asyncio.gather(
        database, asyncio.gather(*replicas), asyncio.gather(*others), app, held
    )
    if isinstance(db_result, DatabaseFacts):
        findings += db_result.findings
    elif isinstance(db_result, Finding):
        findings.append(db_result)
    replica_reads = {}
    for i, result in enumerate(replica_results, 1):
        if isinstance(result, Finding):
            findings.append(result)
        else:
            findings.append(result[0])
            replica_reads[f"replica{i}"] = result[1]
    if isinstance(db_result, DatabaseFacts) and db_result.statements:
        reachable = len(replica_reads) == len(targets.replicas)
        if reachable:
            findings.append(reads_reach_replicas(
                primary_reads=db_result.table_reads, replica_reads=replica_reads,
                read_share=db_result.read_share,
            ))  # fmt: skip
        findings += advice(db_result)
    for other in other_results:
        findings += other if isinstance(other, list) else [other]
    if isinstance(app_result, dict):
        findings += app_findings(app_result)
    elif isinstance(app_result, Finding):
        findings.append(app_result)
    connections = db_result.connections if isinstance(db_result, DatabaseFacts) else None
    if isinstance(held_result, Pools) and held_result.answered and connections:
        findings.append(pools_against_connections(
            held_result, in_use=connections[0], usable=connections[1]))  # fmt: skip
    findings.sort(key=lambda f: AREAS.index(f.area))
    return verdict(findings, checked_at=datetime.now(UTC).isoformat(timespec="seconds"))


async def _none() -> None:
    return None


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError) and not str(e):
        return "no answer in time (hung, or a firewall dropping packets)"
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, OSError) else f"{type(e).__name__}: {text}"
