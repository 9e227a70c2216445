"""rung.Cache against a hung Redis, hostile tokens and options, and data written behind its
back, on the real stack. Outcomes only: bench/faults.py measures how long each bound took."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack
from tests.helpers import in_fresh_context, poll


@pytest.fixture
def ns() -> str:
    return f"f{secrets.token_hex(4)}"


@pytest.fixture
async def redis(rung_stack: RungStack) -> AsyncIterator[aioredis.Redis]:
    async with aioredis.Redis.from_url(rung_stack.cache_url) as r:
        yield r


async def loader() -> str:
    return "from-db"


async def test_with_the_cache_redis_hung_reads_fail_open_and_writes_raise(
    rung_stack: RungStack, ns: str
) -> None:
    """SIGSTOPped cache Redis: get_or_load returns the loader's value, get the default;
    set, invalidate and invalidate_tags raise CacheUnavailable. After SIGCONT it serves."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns, timeout=0.3) as cache:
        await cache.set("k", "cached")
        rung_stack.freeze("cache")
        try:
            assert await cache.get_or_load("k", loader) == "from-db"
            assert await cache.get("k", default="miss") == "miss"
            for write in (
                cache.set("k", "x"), cache.invalidate("k"), cache.invalidate_tags("t"),
            ):  # fmt: skip
                with pytest.raises(rung.CacheUnavailable):
                    await write
        finally:
            rung_stack.thaw("cache")

        async def serving() -> bool:
            return await cache.get("k") == "cached"

        await poll(serving)


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), float("inf"), 1e17])
async def test_a_ttl_out_of_range_is_a_value_error_naming_it(
    rung_stack: RungStack, ns: str, ttl: float
) -> None:
    """Refused before Redis is asked: ttl=0 does not mean "the default" and 1e17 never
    reaches Redis to be taken for an outage."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns) as cache:
        with pytest.raises(ValueError, match="ttl"):
            await cache.get_or_load("k", loader, ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            await cache.set("k", "v", ttl=ttl)
        with pytest.raises(ValueError, match="ttl"):
            cache.cached(key="k", ttl=ttl)
        assert cache.stats()["breaker"] == "closed"
        assert cache.stats()["errors"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_ttl": float("nan")}, {"timeout": float("nan")}, {"timeout": 0},
        {"lease_timeout": float("inf")}, {"early_refresh": -1.0}, {"jitter": float("nan")},
        {"max_connections": 0}, {"local_size": 1.5},
    ],
)  # fmt: skip
def test_bad_options_are_refused_naming_the_option(kwargs: dict[str, Any]) -> None:
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        rung.Cache("redis://127.0.0.1:1/0", **kwargs)


async def test_a_command_redis_refuses_is_not_an_outage(
    rung_stack: RungStack, ns: str, redis: aioredis.Redis
) -> None:
    """Hashes where a value and a tag generation belong (WRONGTYPE): reads fail open, a
    write raises a plain CacheError, and the breaker stays closed for every other key."""
    await redis.hset(f"{ns}:v:k", "field", "x")
    await redis.hset(f"{ns}:t:t", "field", "x")
    async with rung.Cache(rung_stack.cache_url, namespace=ns) as cache:
        assert await cache.get_or_load("k", loader) == "from-db"
        with pytest.raises(rung.CacheError) as raised:
            await cache.invalidate_tags("t")
        assert not isinstance(raised.value, rung.CacheUnavailable)
        assert cache.stats()["errors"] > 0
        assert cache.stats()["breaker"] == "closed"
        await cache.set("other", "fine")
        assert await cache.get("other") == "fine"


async def test_a_token_from_nowhere_is_never_stored_and_tags_keep_working(
    rung_stack: RungStack, ns: str, redis: aioredis.Redis, db: rung.Database
) -> None:
    """An invalidation under 'FFFFFFFF/FFFFFFFF' stores the primary's position instead;
    a token ending in a newline cannot even be observed; invalidate_tags keeps working."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns, db=db) as cache:
        with pytest.raises(rung.InvalidToken), db.observe("0/1\n"):
            pass

        async def invalidate_from_nowhere() -> None:
            with db.observe("FFFFFFFF/FFFFFFFF"):
                await cache.invalidate_tags("t")
                await cache.invalidate("k")

        await in_fresh_context(invalidate_from_nowhere())
        generation = (await redis.get(f"{ns}:t:t")).decode()
        marker = (await redis.get(f"{ns}:i:k")).decode()
        for stored in (generation.partition("|")[2], marker):
            assert rung.Token.valid(stored)
            assert not rung.Token.later(stored, "FFFF/0")  # the primary's, not the forged one
        await cache.get_or_load("k", loader, tags=("t",))
        await cache.invalidate_tags("t")
        assert await cache.get_or_load("k", lambda: asyncio.sleep(0, "new"), tags=("t",)) == "new"


@pytest.mark.parametrize(
    "junk", [b"gen|0/1\n", b"gen|FFFFFFFFF/0", b"gen|" + b"9" * 5000, b"\xff\xfe|x/y"]
)
async def test_a_malformed_generation_in_redis_is_overwritten_not_fatal(
    rung_stack: RungStack, ns: str, redis: aioredis.Redis, db: rung.Database, junk: bytes
) -> None:
    """Written behind rung's back: invalidate_tags replaces it, and fills work around it."""
    await redis.set(f"{ns}:t:t", junk)
    await redis.set(f"{ns}:i:k", junk)
    async with rung.Cache(rung_stack.cache_url, namespace=ns, db=db) as cache:
        await db.execute("SELECT 1", primary=True)  # a token to record
        await cache.invalidate_tags("t")
        await cache.invalidate("k")
        assert (await redis.get(f"{ns}:t:t")).partition(b"|")[2] == db.token().encode()
        assert await cache.get_or_load("k", loader, tags=("t",)) == "from-db"
        assert cache.stats()["errors"] == 0


async def test_markers_and_tag_generations_all_expire(
    rung_stack: RungStack, ns: str, redis: aioredis.Redis, db: rung.Database
) -> None:
    """Nothing rung writes lives forever: tag generations and markers carry a TTL."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns, db=db) as cache:
        await db.execute("SELECT 1", primary=True)  # a token to record with the invalidations
        await cache.get_or_load("k", loader, tags=("t", "u"))
        await cache.invalidate_tags("u")
        await cache.invalidate("k")
        keys = [k async for k in redis.scan_iter(f"{ns}:*")]
        assert sorted(k.decode() for k in keys) == [f"{ns}:i:k", f"{ns}:t:t", f"{ns}:t:u"]
        for key in keys:
            assert await redis.pttl(key) > 0, key


async def test_a_loop_of_near_cache_hits_lets_other_tasks_run(
    rung_stack: RungStack, ns: str
) -> None:
    """10,000 near hits in a tight loop: a task beside it gets a turn at least every few
    dozen hits (a hit awaits nothing, so without yielding it would get none)."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns, local_size=10) as cache:
        await poll(lambda: cache.stats()["near"] == "live")
        await cache.get_or_load("k", loader)
        await cache.get_or_load("k", loader)
        assert cache.stats()["local_hits"] == 1
        turns = 0
        done = False

        async def beside() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(beside())
        await asyncio.sleep(0)
        for _ in range(10_000):
            await cache.get("k")
        done = True
        await other
        assert cache.stats()["local_hits"] == 10_001
        assert turns >= 10_000 // 32
