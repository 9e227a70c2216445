"""Queue checks on the queue Redis: for each stream, its depth, the consumer group's lag and
pending entries, the oldest entry's age, dead letters (`<stream>:dead`), and the time the
backlog takes to drain at the rate measured over `sample` seconds.

    findings = await check_queue("redis://127.0.0.1:6381/0", streams=(), timeout=5.0,
                                 sample=1.0)

rung's layout (rung.queue.streams): an entry is deleted once acknowledged, so the stream's
length is the depth. What was drained between the two samples is read from each consumer
group's progress: entries read minus the growth of its pending list is what it acknowledged
(Redis 7's `entries-read`); the slowest group sets the rate. Where a group's `entries-read`
is unknown (Redis < 7, or a group created past deleted entries), entries added minus the
length's growth stands in. A backlog "never drains" only when nothing moved; a slow drain
gets a finite estimate, the current depth at the measured rate.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from rung._aio import deadline
from rung._redis import client
from rung.doctor._model import Finding, Verdict

MAX_AGE = 60.0  # seconds: an older oldest entry, or a longer drain, is a backlog


async def check_queue(
    url: str, *, streams: tuple[str, ...], timeout: float, sample: float
) -> list[Finding]:
    redis = client(url, timeout=timeout, max_connections=2)
    try:
        async with deadline(timeout):
            names = list(streams) or await _streams(redis)
            first = {name: await _facts(redis, name) for name in names}
        await asyncio.sleep(sample)
        async with deadline(timeout):
            second = {name: await _facts(redis, name) for name in names}
    finally:
        await redis.aclose()
    if not names:
        return [Finding("queue", "streams", Verdict.ok, "no stream on the queue Redis",
                        "nothing", {"streams": 0})]  # fmt: skip
    return [_finding(name, first[name], second[name]) for name in names]


async def _streams(redis: Redis) -> list[str]:
    found = []
    async for key in redis.scan_iter(match="*", count=1000, _type="stream"):
        name = key.decode()
        if not name.endswith(":dead"):
            found.append(name)
    return sorted(found)


async def _facts(redis: Redis, stream: str) -> dict[str, Any]:
    seconds, micros = await redis.time()
    facts: dict[str, Any] = {"at": time.monotonic(), "now_ms": seconds * 1000 + micros // 1000}
    if not await redis.exists(stream):
        facts.update(length=0, added=0, first_ms=None, groups=[], dead=0, missing=True)
        return facts
    info = await redis.xinfo_stream(stream)
    first = info.get("first-entry")
    facts.update(
        length=int(info["length"]),
        added=int(info.get("entries-added", 0)),
        first_ms=int(first[0].decode().split("-")[0]) if first else None,
        groups=await redis.xinfo_groups(stream),
        dead=int(await redis.xlen(f"{stream}:dead")),
        missing=False,
    )
    return facts


def _finding(stream: str, first: dict[str, Any], second: dict[str, Any]) -> Finding:
    if second["missing"]:
        return Finding("queue", f"stream {stream}", Verdict.ok, f"no stream {stream!r}",
                       "nothing", {"depth": 0})  # fmt: skip
    seconds = max(second["at"] - first["at"], 1e-3)
    depth = second["length"]
    drained = _acknowledged(first["groups"], second["groups"])
    source = "consumer groups"
    if drained is None:
        drained = (second["added"] - first["added"]) - (second["length"] - first["length"])
        source = "stream length"
    rate = max(drained, 0) / seconds
    accepted = (second["added"] - first["added"]) / seconds
    age = (second["now_ms"] - second["first_ms"]) / 1000 if second["first_ms"] else 0.0
    groups = second["groups"]
    pending = sum(int(g.get("pending", 0)) for g in groups)
    lag = sum(int(g.get("lag") or 0) for g in groups)
    consumers = sum(int(g.get("consumers", 0)) for g in groups)
    drain_s = depth / rate if rate > 0 else None
    evidence: dict[str, int | float | str | bool | None] = {
        "depth": depth, "group_lag": lag, "pending": pending, "consumers": consumers,
        "oldest_age_s": round(age, 1), "dead_letters": second["dead"],
        "accepted_per_s": round(accepted, 1), "drained_per_s": round(rate, 1),
        "drain_estimate_s": None if drain_s is None else round(drain_s, 1),
        "sampled_s": round(seconds, 2), "drained_measured_from": source,
    }  # fmt: skip
    if depth and drain_s is None:
        return Finding(
            "queue", f"stream {stream}", Verdict.act,
            f"{depth} events waiting, the oldest {age:.0f}s old, and none drained in "
            f"{seconds:.1f}s: at this rate the backlog never drains",
            "start drain workers: `rung drain MODULE:FACTORY` (rung up --workers N)",
            evidence, rung="queue",
        )  # fmt: skip
    if depth and (age >= MAX_AGE or (drain_s or 0) >= MAX_AGE):
        growing = f", while {accepted:.0f}/s more arrive" if accepted > rate else ""
        return Finding(
            "queue", f"stream {stream}", Verdict.act,
            f"{depth} events waiting, the oldest {age:.0f}s old; draining at {rate:.0f}/s "
            f"takes about {drain_s:.0f}s{growing}",
            "add drain workers, or raise their batch size or max_rate if the database has room",
            evidence, rung="queue",
        )  # fmt: skip
    if second["dead"]:
        return Finding(
            "queue", f"stream {stream}", Verdict.watch,
            f"{second['dead']} dead letters in {stream}:dead",
            f"read their `error`, fix the cause, then `rung replay-dead {stream}`",
            evidence, rung="queue",
        )  # fmt: skip
    summary = f"{depth} events waiting" + (f", draining in about {drain_s:.0f}s" if drain_s else "")
    return Finding("queue", f"stream {stream}", Verdict.ok, summary, "nothing", evidence)


def _acknowledged(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> int | None:
    """Entries the slowest group acknowledged between two XINFO GROUPS samples; None when a
    group's progress is unknown (no group, no `entries-read`, a group made in between)."""
    before = {g["name"]: g for g in first}
    counts = []
    for group in second:
        earlier = before.get(group["name"])
        if earlier is None or group.get("entries-read") is None:
            return None
        if earlier.get("entries-read") is None:
            return None
        read = int(group["entries-read"]) - int(earlier["entries-read"])
        counts.append(read - (int(group["pending"]) - int(earlier["pending"])))
    return min(counts) if counts else None
