"""The hot path of rung_links, measured two ways in one run.

1. Throughput of a cached `GET /r/{slug}` through one uvicorn process of rung_links (near
   cache on, as shipped, and off), against a bare Starlette JSON endpoint served by uvicorn
   the same way (same flags, same load generator: wrk, keep-alive, 16 connections, 1
   thread), and a bare FastAPI one (what FastAPI's routing costs by itself). Rounds are
   interleaved; medians of 5 are reported, the ratio (goal >= 0.6) and each round's.
   A disabled link's `/r/{slug}` (410: the same lookup, no click) shows what the click
   costs.
2. Database reads per redirect over a Zipf key mix tuned to a ~90 % hit rate (a cold
   cache, each key's first request a miss): the link loader's calls on every node, from
   pg_stat_statements, divided by the redirects (goal <= 0.11), cross-checked with the
   cache's hits and misses from the app's /metrics.

    python bench/redirect.py               # a throwaway stack, or RUNG_DIR's
    python bench/redirect.py --seconds 5   # longer rounds

The app runs as `rung up --instances N` runs it: through PgBouncer, settings from the
environment. Its clicks go to a stream of the bench's own, deleted at the end, with the
links the bench made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).parent))
from _common import report, running_stack

from rung.stack import ports


async def _hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


bare_app = Starlette(routes=[Route("/hello", _hello)])  # the peer: `redirect:bare_app`
fastapi_app = FastAPI()  # what FastAPI's routing costs on its own: `redirect:fastapi_app`


@fastapi_app.get("/hello")
async def _fastapi_hello() -> JSONResponse:
    return JSONResponse({"hello": "world"})


UVICORN = ["--no-access-log", "--log-level", "warning"]
LOAD_QUERY = "FROM links WHERE slug = $1"  # rung_links.links.LOAD, as pg_stat_statements shows it


@contextmanager
def served(target: str, env: dict[str, str]) -> Iterator[str]:
    """`python -m uvicorn TARGET` on a free port outside the ephemeral range; its base URL.
    (Not `--fd`: uvicorn takes an inherited socket for a Unix one and leaves Nagle on.)"""
    port = ports.pick()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(Path(__file__).parent), *UVICORN]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _answers(base + ("/healthz" if target.startswith("rung_links") else "/hello")):
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                raise SystemExit(f"{target} did not start:\n{err}")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def wrk(url: str, seconds: float, *, gone: bool = False) -> float:
    """Requests/s of wrk (1 thread, 16 keep-alive connections). Any error fails the bench;
    with `gone`, every answer must be one (the 410s of a disabled link)."""
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds:g}s", url], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    total = re.search(r"(\d+) requests in", out)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert total and rate, out
    if (int(refused[1]) if refused else 0) != (int(total[1]) if gone else 0):
        raise SystemExit(f"wrk saw unexpected answers on {url}:\n{out}")
    if "Socket errors" in out:
        raise SystemExit(f"wrk saw socket errors on {url}:\n{out}")
    return float(rate[1])


def app_env(urls: dict[str, Any], tag: str, **extra: str) -> dict[str, str]:
    """The environment `rung up --instances N` gives an instance (pooled URLs)."""
    return {
        **os.environ,
        "RUNG_PRIMARY_URL": urls["pooled_primary_url"],
        "RUNG_REPLICA_URLS": ",".join(urls["pooled_replica_urls"]),
        "RUNG_CACHE_URL": urls["cache_url"],
        "RUNG_QUEUE_URL": urls["queue_url"],
        "RUNG_SECRET": secrets.token_hex(32),
        "RUNG_INSTANCE": f"bench-{tag}",
        "RUNG_LINKS_NAMESPACE": f"bench{tag}",
        "RUNG_LINKS_STREAM": f"bench{tag}-clicks",
        "RUNG_LINKS_JOBS": "0",
        **extra,
    }


# --- 1. throughput ------------------------------------------------------------------------


def throughput(
    urls: dict[str, Any], tag: str, slug: str, seconds: float, rounds: int
) -> dict[str, Any]:
    near = app_env(urls, f"{tag}n")
    redis_only = app_env(urls, f"{tag}r", RUNG_LINKS_NEAR_CACHE="0")
    with served("redirect:bare_app", dict(os.environ)) as bare, \
         served("redirect:fastapi_app", dict(os.environ)) as fastapi, \
         served("rung_links.app:app", near) as links_near, \
         served("rung_links.app:app", redis_only) as links_redis:  # fmt: skip
        targets = {
            "bare": f"{bare}/hello",
            "fastapi": f"{fastapi}/hello",
            "near": f"{links_near}/r/{slug}",
            "redis": f"{links_redis}/r/{slug}",
            "gone": f"{links_near}/r/bench-{tag}-gone",  # the same path, with no click
        }
        for name, url in targets.items():  # warm: the link cached, connections made
            wrk(url, 1, gone=name == "gone")
        rates: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, url in targets.items():
                rates[name].append(wrk(url, seconds, gone=name == "gone"))
        counts = metrics(links_near)
    median = {name: statistics.median(r) for name, r in rates.items()}
    ratios = [n / b for n, b in zip(rates["near"], rates["bare"], strict=True)]
    return {
        "bare Starlette JSON (req/s)": round(median["bare"]),
        "bare FastAPI JSON (req/s)": round(median["fastapi"]),
        "rung_links /r/{slug}, near cache (req/s)": round(median["near"]),
        "rung_links /r/{slug}, Redis only (req/s)": round(median["redis"]),
        "rung_links /r/{disabled}: no click (req/s)": round(median["gone"]),
        "ratio, near cache (goal >= 0.6)": round(median["near"] / median["bare"], 2),
        "ratio per round, near cache": " ".join(f"{r:.2f}" for r in ratios),
        "ratio, Redis only": round(median["redis"] / median["bare"], 2),
        "ratio, no click": round(median["gone"] / median["bare"], 2),
        "ratio, bare FastAPI": round(median["fastapi"] / median["bare"], 2),
        "clicks per queue round trip": round(
            counts["rung_links_clicks_queued_total"] / counts["rung_links_click_puts_total"], 1
        ),
    }


# --- 2. database reads per redirect ---------------------------------------------------------


def zipf_exponent(keys: int, requests: int, miss_ratio: float) -> float:
    """The Zipf exponent s at which `requests` draws over `keys` ranks hit about
    `miss_ratio * requests` distinct keys (each key's first request is the miss)."""

    def distinct(s: float) -> float:
        weights = [1 / (k**s) for k in range(1, keys + 1)]
        total = sum(weights)
        return sum(1 - (1 - w / total) ** requests for w in weights)

    low, high = 0.5, 3.0
    for _ in range(40):
        mid = (low + high) / 2
        if distinct(mid) > miss_ratio * requests:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def draws(keys: int, requests: int, s: float, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    weights = [1 / (k**s) for k in range(1, keys + 1)]
    return rng.choices(range(keys), weights=weights, k=requests)


async def statement_calls(node_urls: list[str]) -> int:
    """Calls of the link loader's statement on every node since the last reset."""
    total = 0
    for url in node_urls:
        conn = await asyncpg.connect(url)
        try:
            total += await conn.fetchval(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
                "WHERE query LIKE '%' || $1 || '%'",
                LOAD_QUERY,
            )
        finally:
            await conn.close()
    return total


async def reset_statements(node_urls: list[str]) -> None:
    for url in node_urls:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_stat_statements_reset()")
        finally:
            await conn.close()


async def hammer(base: str, paths: list[str], tasks: int = 16) -> int:
    """Send every path (keep-alive, `tasks` at once); how many were 302."""
    redirects = 0
    queue = iter(paths)
    limits = httpx.Limits(max_connections=tasks, max_keepalive_connections=tasks)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal redirects
            for path in queue:
                answer = await client.get(path)
                if answer.status_code != 302:
                    raise SystemExit(f"{path}: {answer.status_code} {answer.text}")
                redirects += 1

        await asyncio.gather(*(worker() for _ in range(tasks)))
    return redirects


def metrics(base: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        for sample in family.samples:
            if sample.name in (
                "rung_cache_hits_total",
                "rung_cache_misses_total",
                "rung_links_clicks_queued_total",
                "rung_links_click_puts_total",
            ):
                out[sample.name] = sample.value
            elif sample.name == "rung_db_queries_total":
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def reads_per_redirect(
    urls: dict[str, Any], tag: str, slugs: list[str], requests: int
) -> dict[str, Any]:
    s = zipf_exponent(len(slugs), requests, 0.10)
    paths = [f"/r/{slugs[k]}" for k in draws(len(slugs), requests, s)]
    nodes = [urls["primary_url"], *urls["replica_urls"]]
    with served("rung_links.app:app", app_env(urls, f"{tag}z")) as base:
        before = metrics(base)
        asyncio.run(reset_statements(nodes))
        redirects = asyncio.run(hammer(base, paths))
        loads = asyncio.run(statement_calls(nodes))
        after = metrics(base)
    hits = after["rung_cache_hits_total"] - before["rung_cache_hits_total"]
    misses = after["rung_cache_misses_total"] - before["rung_cache_misses_total"]
    return {
        "links": len(slugs),
        "redirects": redirects,
        "zipf exponent": round(s, 3),
        "distinct links requested": len(set(paths)),
        "cache hit rate (app /metrics)": round(hits / (hits + misses), 3),
        "link loads on all nodes (pg_stat_statements)": loads,
        "database reads per redirect (goal <= 0.11)": round(loads / redirects, 4),
        "app statements per redirect (rung_db_queries_total)": round(
            (after["rung_db_queries_total"] - before["rung_db_queries_total"]) / redirects, 4
        ),
    }


# --- setup and cleanup ----------------------------------------------------------------------


async def make_links(primary: str, tag: str, count: int) -> list[str]:
    """`count` links (and their owner) straight into the tables; their slugs."""
    conn = await asyncpg.connect(primary)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        owner = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
            f"bench-{tag}@example.com",
        )
        slugs = [f"bench-{tag}-{i}" for i in range(count)]
        await conn.execute(
            "INSERT INTO links (slug, target_url, owner_id) "
            "SELECT s, 'https://example.com/' || s, $2 FROM unnest($1::text[]) s",
            slugs,
            owner,
        )
        await conn.execute(
            "INSERT INTO links (slug, target_url, owner_id, disabled) "
            "VALUES ($1, 'https://example.com/', $2, true)",
            f"bench-{tag}-gone",
            owner,
        )
        return slugs
    finally:
        await conn.close()


async def remove(primary: str, tag: str) -> None:
    conn = await asyncpg.connect(primary)
    try:
        await conn.execute(
            "DELETE FROM clicks WHERE link_id IN (SELECT id FROM links WHERE slug LIKE $1)",
            f"bench-{tag}-%",
        )
        await conn.execute("DELETE FROM links WHERE slug LIKE $1", f"bench-{tag}-%")
        await conn.execute("DELETE FROM users WHERE email = $1", f"bench-{tag}@example.com")
    finally:
        await conn.close()


def forget_streams(urls: dict[str, Any], tag: str) -> None:
    for url in (urls["queue_url"], urls["cache_url"]):
        client = redis.Redis.from_url(url)
        try:
            for pattern in (f"bench{tag}*", f"rung:singleton:bench{tag}*"):
                keys = list(client.scan_iter(match=pattern, count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()


def migrate(urls: dict[str, Any], tag: str) -> None:
    """Start an instance once, so the schema is there before links are written."""
    with served("rung_links.app:app", app_env(urls, f"{tag}m")):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--links", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/redirect.py needs wrk (scripts/bootstrap installs it)")
    tag = secrets.token_hex(3)
    with running_stack(replicas=1) as stack:
        record = stack.running()
        assert record is not None
        urls = record.urls()
        migrate(urls, tag)
        slugs = asyncio.run(make_links(urls["primary_url"], tag, args.links))
        try:
            load = os.getloadavg()[0]
            out = throughput(urls, tag, slugs[0], args.seconds, args.rounds)
            out.update(reads_per_redirect(urls, tag, slugs, args.requests))
        finally:
            forget_streams(urls, tag)
            asyncio.run(remove(urls["primary_url"], tag))
    out["cores"] = os.cpu_count()
    out["load average before (1 min)"] = round(load, 2)
    out["wrk"] = "1 thread, 16 connections, shares the cores with the server and Redis"
    report(out, "value")


if __name__ == "__main__":
    main()
