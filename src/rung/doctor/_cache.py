"""Cache checks from the cache Redis's INFO: hit rate, evictions, maxmemory and its policy
against usage and against keys without a TTL.

    findings = await check_cache("redis://127.0.0.1:6380/0", timeout=5.0)

A cache Redis wants `maxmemory` and an `allkeys-*` policy: `noeviction` fails writes once
full, and under `volatile-*` keys without a TTL can never be evicted. Under `allkeys-*`
anything may go, rung's invalidation records too: evictions then make fills fall back to
the primary until the record is rewritten, so they are worth watching.
"""

from __future__ import annotations

from typing import Any

from rung._aio import deadline
from rung._redis import client
from rung.doctor._model import Evidence, Finding, Verdict

MIN_LOOKUPS = 1000  # fewer keyspace lookups than this say nothing about the hit rate


async def redis_info(url: str, *, timeout: float) -> dict[str, Any]:
    """INFO everything, within `timeout` seconds in total."""
    redis = client(url, timeout=timeout, max_connections=2)
    try:
        async with deadline(timeout):
            info: dict[str, Any] = await redis.info("all")
            return info
    finally:
        await redis.aclose()


async def check_cache(
    url: str, *, timeout: float, app_hit_rate: float | None = None
) -> list[Finding]:
    info = await redis_info(url, timeout=timeout)
    return [_hit_rate(info, app_hit_rate), _memory(info), _evictions(info)]


def _hit_rate(info: dict[str, Any], app_hit_rate: float | None) -> Finding:
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    lookups = hits + misses
    evidence: dict[str, int | float | str | bool | None] = {
        "keyspace_hits": hits, "keyspace_misses": misses,
        "hit_rate": round(hits / lookups, 3) if lookups else None,
    }  # fmt: skip
    if app_hit_rate is not None:  # the app's own count: its lookups only, not rung's metadata
        evidence["app_hit_rate"] = round(app_hit_rate, 3)
        rate: float | None = app_hit_rate
    else:
        rate = hits / lookups if lookups >= MIN_LOOKUPS else None
    if rate is None:
        return Finding(
            "cache",
            "hit rate",
            Verdict.ok,
            f"{lookups} lookups: too few to judge",
            "nothing",
            evidence,
        )
    verdict = Verdict.ok if rate >= 0.8 else Verdict.watch if rate >= 0.5 else Verdict.act
    return Finding(
        "cache", "hit rate", verdict, f"{rate:.0%} of lookups hit",
        "nothing" if verdict is Verdict.ok else "cache what is read repeatedly with longer "
        "TTLs; check that keys do not embed per-request values; see the cache candidates",
        evidence, rung="cache",
    )  # fmt: skip


def _memory(info: dict[str, Any]) -> Finding:
    policy = str(info.get("maxmemory_policy", "noeviction"))
    maxmemory, used = int(info.get("maxmemory", 0)), int(info.get("used_memory", 0))
    keys = expires = 0
    for name, db in info.items():
        if name.startswith("db") and name[2:].isdigit() and isinstance(db, dict):
            keys += int(db.get("keys", 0))
            expires += int(db.get("expires", 0))
    no_ttl = keys - expires
    evidence: dict[str, int | float | str | bool | None] = {
        "maxmemory_policy": policy, "maxmemory_bytes": maxmemory, "used_memory_bytes": used,
        "keys": keys, "keys_without_ttl": no_ttl,
        "used_share": round(used / maxmemory, 3) if maxmemory else None,
    }  # fmt: skip
    fix = "CONFIG SET maxmemory-policy allkeys-lru (and in the config file)"
    if maxmemory == 0:
        return Finding("cache", "memory policy", Verdict.act,
                       f"no maxmemory: the cache grows until the OS kills Redis ({used} bytes now)",
                       f"set maxmemory and {fix}", evidence, rung="cache")  # fmt: skip
    if policy == "noeviction":
        return Finding("cache", "memory policy", Verdict.act,
                       f"noeviction with {no_ttl} keys without a TTL: once {maxmemory} bytes "
                       "are used every write fails", fix, evidence, rung="cache")  # fmt: skip
    if policy.startswith("volatile-") and no_ttl:
        return Finding("cache", "memory policy", Verdict.act,
                       f"{policy} with {no_ttl} of {keys} keys without a TTL: those are never "
                       "evicted", f"give every cache key a TTL, or {fix}", evidence,
                       rung="cache")  # fmt: skip
    share = used / maxmemory
    if share >= 0.9:
        return Finding(
            "cache",
            "memory policy",
            Verdict.watch,
            f"{policy}, {share:.0%} of maxmemory used",
            "raise maxmemory if the evictions cost hits",
            evidence,
            rung="cache",
        )
    return Finding(
        "cache",
        "memory policy",
        Verdict.ok,
        f"{policy}, {share:.0%} of {maxmemory} bytes used",
        "nothing",
        evidence,
    )


def _evictions(info: dict[str, Any]) -> Finding:
    evicted = int(info.get("evicted_keys", 0))
    policy = str(info.get("maxmemory_policy", ""))
    evidence: dict[str, Evidence] = {"evicted_keys": evicted, "maxmemory_policy": policy}
    if not evicted:
        return Finding("cache", "evictions", Verdict.ok, "no key evicted", "nothing", evidence)
    return Finding(
        "cache", "evictions", Verdict.watch,
        f"{evicted} keys evicted: under {policy} invalidation records go as well as values",
        "raise maxmemory until evictions stay rare, or cache less (shorter TTLs)",
        evidence, rung="cache",
    )  # fmt: skip
