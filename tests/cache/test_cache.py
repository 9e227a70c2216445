"""rung.Cache against the real stack: leases, herds, hit rate, TTL, invalidation after
commit, refills that observe the writer's token, tags, fail-open and the near cache."""

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack
from tests.helpers import in_fresh_context, poll


@pytest.fixture
def ns() -> str:
    """A namespace of its own for each test."""
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
async def cache(rung_stack: RungStack, ns: str) -> AsyncIterator[rung.Cache]:
    async with rung.Cache(rung_stack.cache_url, namespace=ns) as cache:
        yield cache


class Counting:
    """A loader that counts its calls and returns `value`, after `delay` seconds or, when
    `held`, once `finish()` is called; `started` is set once a call began (the caller then
    holds the key's lease)."""

    def __init__(self, value: Any = "v", delay: float = 0.0, *, held: bool = False) -> None:
        self.value, self.delay, self.calls = value, delay, 0
        self.started, self._finish = asyncio.Event(), asyncio.Event()
        if not held:
            self._finish.set()

    def finish(self) -> None:
        self._finish.set()

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        await self._finish.wait()
        return self.value


async def test_a_load_that_raced_an_invalidation_never_leaves_its_stale_value(
    rung_stack: RungStack, cache: rung.Cache, ns: str
) -> None:
    """1,000 randomized interleavings of a slow load of the old value and a write +
    invalidate: after the invalidation, a reader (another Cache, as another process would
    be) never sees the old value."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns) as reader:
        stale = 0
        for i in range(1000):
            key, row = f"race:{i}", ["old"]

            async def load(row: list[str] = row) -> str:
                seen = row[0]  # the read happens first, then the slow part
                await asyncio.sleep(random.uniform(0, 0.002))
                return seen

            async def write(key: str = key, row: list[str] = row) -> None:
                await asyncio.sleep(random.uniform(0, 0.002))
                row[0] = "new"
                await cache.invalidate(key)

            await asyncio.gather(cache.get_or_load(key, load), write())
            stale += await reader.get_or_load(key, Counting("new")) != "new"
        assert stale == 0
        assert cache.stats()["stale_fills_rejected"] > 0  # the race did happen, and was caught


async def test_a_herd_on_a_cold_key_runs_the_loader_once_across_two_caches(
    rung_stack: RungStack, ns: str
) -> None:
    """200 concurrent misses spread over two Cache objects with their own connections."""
    load = Counting({"big": "row"}, delay=0.05)
    async with (
        rung.Cache(rung_stack.cache_url, namespace=ns) as a,
        rung.Cache(rung_stack.cache_url, namespace=ns) as b,
    ):
        results = await asyncio.gather(
            *(c.get_or_load("hot", load) for _ in range(100) for c in (a, b))
        )
        assert load.calls == 1
        assert results == [{"big": "row"}] * 200
        assert a.stats()["coalesced"] + b.stats()["coalesced"] == 199


async def test_hit_rate_is_exact(cache: rung.Cache) -> None:
    """1,000 calls over 100 keys: 100 misses, 900 hits."""
    load = Counting()
    for i in range(1000):
        await cache.get_or_load(f"k{i % 100}", load)
    stats = cache.stats()
    assert (stats["misses"], stats["hits"], stats["loads"]) == (100, 900, 100)
    assert stats["hit_rate"] == 0.9
    assert load.calls == 100


async def test_an_entry_is_reloaded_once_its_ttl_has_passed(cache: rung.Cache) -> None:
    load = Counting()
    await cache.get_or_load("short", load, ttl=0.5)
    await cache.get_or_load("short", load, ttl=0.5)
    assert load.calls == 1
    await asyncio.sleep(1.0)  # the subject of the test: time passing, not synchronisation
    await cache.get_or_load("short", load, ttl=0.5)
    assert load.calls == 2


async def test_ttls_of_keys_written_together_are_spread_by_the_jitter(
    rung_stack: RungStack, cache: rung.Cache, ns: str
) -> None:
    await asyncio.gather(*(cache.set(f"j{i}", i, ttl=100.0) for i in range(200)))
    async with aioredis.Redis.from_url(rung_stack.cache_url) as r:
        ttls = [await r.pttl(f"{ns}:v:j{i}") for i in range(200)]
    assert all(89_000 <= t <= 100_000 for t in ttls)
    assert max(ttls) - min(ttls) > 5_000  # jitter 0.1 of 100 s spreads them over ~10 s


async def test_none_is_cached_and_distinct_from_a_miss(cache: rung.Cache) -> None:
    load = Counting(None)
    assert await cache.get_or_load("nothing", load) is None
    assert await cache.get_or_load("nothing", load) is None
    assert load.calls == 1
    assert await cache.get("nothing", default="miss") is None
    assert await cache.get("never-set", default="miss") == "miss"


async def test_hits_and_misses_return_the_same_json_round_trip(cache: rung.Cache) -> None:
    first = await cache.get_or_load("tuple", Counting((1, 2)))
    assert first == [1, 2]
    assert await cache.get_or_load("tuple", Counting((1, 2))) == first


async def test_a_value_json_cannot_hold_is_a_cache_error_and_frees_the_lease(
    cache: rung.Cache,
) -> None:
    with pytest.raises(rung.CacheError):
        await cache.get_or_load("odd", Counting(object()))
    await cache.get_or_load("odd", Counting("fine"))
    assert await cache.get("odd") == "fine"  # filled at once: the failed load's lease is gone


async def test_a_loader_error_reaches_every_waiter_and_frees_the_lease(cache: rung.Cache) -> None:
    async def broken() -> str:
        await asyncio.sleep(0.01)
        raise LookupError("db said no")

    results = await asyncio.gather(
        *(cache.get_or_load("broken", broken) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert await cache.get_or_load("broken", Counting("ok")) == "ok"
    assert await cache.get("broken") == "ok"


async def test_set_replaces_the_value_and_voids_a_fill_in_flight(cache: rung.Cache) -> None:
    slow = Counting("loaded-before-the-set", held=True)
    loading = asyncio.create_task(cache.get_or_load("s", slow))
    await slow.started.wait()
    await cache.set("s", "set")
    slow.finish()
    assert await loading == "loaded-before-the-set"  # its own caller still gets its value
    assert await cache.get("s") == "set"
    assert cache.stats()["stale_fills_rejected"] == 1


async def test_invalidate_tags_makes_every_tagged_key_miss(cache: rung.Cache) -> None:
    for i in range(10):
        await cache.get_or_load(f"owned:{i}", Counting(i), tags=("owner:7",))
    await cache.get_or_load("other", Counting("x"), tags=("owner:8",))
    await cache.invalidate_tags("owner:7")
    reload = Counting("new")
    for i in range(10):
        assert await cache.get_or_load(f"owned:{i}", reload, tags=("owner:7",)) == "new"
        assert await cache.get(f"owned:{i}") == "new"
    assert reload.calls == 10
    assert await cache.get("other") == "x"


async def test_a_tag_deleted_behind_rungs_back_makes_its_keys_miss(
    rung_stack: RungStack, cache: rung.Cache, ns: str
) -> None:
    """As if LRU had evicted the tag's generation key: a miss, never a stale hit."""
    await cache.get_or_load("a", Counting("old"), tags=("t",))
    await cache.get_or_load("b", Counting("old"), tags=("t", "u"))
    async with aioredis.Redis.from_url(rung_stack.cache_url) as r:
        assert await r.delete(f"{ns}:t:t") == 1
    assert await cache.get("a", default="miss") == "miss"
    assert await cache.get_or_load("b", Counting("new"), tags=("t", "u")) == "new"


async def test_a_tag_invalidated_during_a_load_voids_its_fill(cache: rung.Cache) -> None:
    slow = Counting("old", held=True)
    loading = asyncio.create_task(cache.get_or_load("p", slow, tags=("t",)))
    await slow.started.wait()
    await cache.invalidate_tags("t")
    slow.finish()
    await loading
    assert await cache.get("p", default="miss") == "miss"


async def test_the_decorator_fills_keys_and_tags_from_the_arguments(cache: rung.Cache) -> None:
    calls = []

    @cache.cached(key="link:{slug}", ttl=60.0, tags=("owner:{owner}",))
    async def load_link(slug: str, owner: int = 7) -> dict[str, Any]:
        calls.append(slug)
        return {"slug": slug, "owner": owner}

    assert await load_link("abc") == {"slug": "abc", "owner": 7}
    assert await load_link(slug="abc") == {"slug": "abc", "owner": 7}
    assert await cache.get("link:abc") == {"slug": "abc", "owner": 7}
    await cache.invalidate_tags("owner:7")
    await load_link("abc")
    assert calls == ["abc", "abc"]


def test_a_template_naming_no_parameter_is_refused_at_decoration(cache: rung.Cache) -> None:
    with pytest.raises(ValueError, match=r"names \['slugg'\]"):

        @cache.cached(key="link:{slugg}")
        async def load_link(slug: str) -> None: ...


@pytest.mark.parametrize(
    "kwargs",
    [{"default_ttl": 0}, {"jitter": 1.0}, {"local_size": -1}, {"namespace": "a:b"}],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rung.Cache("redis://127.0.0.1:1/0", **kwargs)


async def test_early_refresh_reloads_a_hot_key_before_it_expires(
    rung_stack: RungStack, ns: str
) -> None:
    """XFetch with a large β: the key is refreshed in the background; callers never miss."""
    versions = iter(range(1, 1000))

    async def load() -> int:
        await asyncio.sleep(0.02)
        return next(versions)

    async with rung.Cache(rung_stack.cache_url, namespace=ns, early_refresh=50.0) as hot:
        assert await hot.get_or_load("k", load, ttl=2.0) == 1
        for _ in range(500):
            if await hot.get_or_load("k", load, ttl=2.0) > 1:
                break
            await asyncio.sleep(0.005)
        stats = hot.stats()
        assert stats["refreshes"] >= 1
        assert stats["misses"] == 1


# --- invalidation after commit, and refills that observe the writer's token ------------------


async def test_invalidation_after_commit_and_never_on_rollback(
    rung_stack: RungStack, db: rung.Database, table: str, ns: str
) -> None:
    async with rung.Cache(rung_stack.cache_url, namespace=ns, db=db) as cache:
        await cache.set("row:1", "cached")
        async with db.transaction():
            await db.execute(f"INSERT INTO {table} VALUES (1, 1)")
            db.after_commit(cache.invalidate, "row:1")
            assert await cache.get("row:1", default="miss") == "cached"  # not before commit
        assert await cache.get("row:1", default="miss") == "miss"

        await cache.set("row:1", "cached")
        with pytest.raises(ZeroDivisionError):
            async with db.transaction():
                await db.execute(f"UPDATE {table} SET v = 2 WHERE k = 1")
                db.after_commit(cache.invalidate, "row:1")
                1 / 0  # noqa: B018
        assert await cache.get("row:1", default="miss") == "cached"


@pytest.mark.parametrize("by", ["key", "tag"])
async def test_a_refill_in_another_instance_never_reads_the_lagging_replica(
    rung_stack: RungStack, db: rung.Database, table: str, ns: str, by: str
) -> None:
    """Replay paused on every replica. Instance A updates a row and invalidates after
    commit (the key, or a tag of it); instance B, with no token of its own, refills from
    the primary, not from the replica that still has the old row."""
    await db.execute(f"INSERT INTO {table} VALUES (1, 10)")
    rung_stack.wait_for_replicas()
    async with (
        rung.Cache(rung_stack.cache_url, namespace=ns, db=db) as cache_a,
        rung.Database(rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0) as db_b,
        rung.Cache(rung_stack.cache_url, namespace=ns, db=db_b) as cache_b,
    ):
        query = f"SELECT v FROM {table} WHERE k = 1"

        def read_in_b() -> Awaitable[int]:
            load = cache_b.get_or_load("row", lambda: db_b.fetchval(query), tags=("rows",))
            return in_fresh_context(load)

        assert await read_in_b() == 10
        for i in range(len(rung_stack.replica_urls)):
            rung_stack.pause_replay(i)
        try:
            async with db.transaction():
                await db.execute(f"UPDATE {table} SET v = 20 WHERE k = 1")
                if by == "key":
                    db.after_commit(cache_a.invalidate, "row")
                else:
                    db.after_commit(cache_a.invalidate_tags, "rows")
            # the control: without the cache's token a fresh read in B is stale
            assert await in_fresh_context(db_b.fetchval(query)) == 10
            assert await read_in_b() == 20
            assert await cache_a.get("row") == 20
        finally:
            for i in range(len(rung_stack.replica_urls)):
                rung_stack.resume_replay(i)


# --- Redis unreachable -------------------------------------------------------------------------


async def test_with_redis_stopped_reads_fail_open_behind_the_breaker(
    rung_stack: RungStack, ns: str
) -> None:
    """1,000 calls all get the loader's value and raise nothing; the breaker keeps all but a
    few of them off Redis; writes raise CacheUnavailable; back up, the cache serves again."""
    async with rung.Cache(rung_stack.cache_url, namespace=ns) as cache:
        await cache.get_or_load("k", Counting("cached"))
        rung_stack.stop("cache")
        try:
            load = Counting("from-db")
            results = [await cache.get_or_load(f"k{i % 10}", load) for i in range(1000)]
            assert results == ["from-db"] * 1000
            assert load.calls == 1000
            stats = cache.stats()
            assert 1 <= stats["errors"] <= 5
            assert stats["breaker"] == "open"
            with pytest.raises(rung.CacheUnavailable):
                await cache.invalidate("k")
        finally:
            rung_stack.start("cache")

        async def serving() -> bool:
            await cache.get_or_load("back", Counting("v"))
            return await cache.get("back") == "v"

        await poll(serving)


async def test_a_redis_that_never_answers_costs_one_timeout_not_one_per_call(
    blackhole: str,
) -> None:
    async with rung.Cache(blackhole, timeout=0.2) as cache:
        load = Counting("from-db")
        results = await asyncio.gather(*(cache.get_or_load(f"k{i}", load) for i in range(200)))
        results += [await cache.get_or_load("k", load) for _ in range(200)]
        assert results == ["from-db"] * 400
        assert cache.stats()["errors"] <= 200 + 2  # the first, concurrent wave; then closed off
        errors = cache.stats()["errors"]
        for _ in range(200):
            await cache.get_or_load("k", load)
        assert cache.stats()["errors"] - errors <= 2


# --- the near cache --------------------------------------------------------------------------


@pytest.fixture
async def near_pair(rung_stack: RungStack, ns: str) -> AsyncIterator[tuple[rung.Cache, rung.Cache]]:
    """Two caches with near caches, as two processes would have; both subscribed."""
    async with (
        rung.Cache(rung_stack.cache_url, namespace=ns, local_size=100) as a,
        rung.Cache(rung_stack.cache_url, namespace=ns, local_size=100) as b,
    ):
        await poll(lambda: _live(a) and _live(b))
        yield a, b


async def test_the_near_cache_serves_locally_and_drops_what_another_process_invalidates(
    near_pair: tuple[rung.Cache, rung.Cache],
) -> None:
    a, b = near_pair
    assert await a.get_or_load("k", Counting("old")) == "old"
    assert await b.get_or_load("k", Counting("unused")) == "old"
    assert await b.get_or_load("k", Counting("unused")) == "old"
    assert b.stats()["local_hits"] == 1

    await a.invalidate("k")

    async def b_sees_new() -> bool:
        return await b.get_or_load("k", Counting("new")) == "new"

    await poll(b_sees_new)
    await a.set("k", "set-by-a")

    async def b_sees_set() -> bool:
        return await b.get("k") == "set-by-a"

    await poll(b_sees_set)


async def test_the_near_cache_is_cleared_by_tag_invalidation(
    near_pair: tuple[rung.Cache, rung.Cache],
) -> None:
    a, b = near_pair
    await b.get_or_load("k", Counting("old"), tags=("t",))
    await b.get_or_load("k", Counting("old"), tags=("t",))
    assert b.stats()["local_hits"] == 1
    await a.invalidate_tags("t")

    async def b_misses() -> bool:
        return await b.get_or_load("k", Counting("new"), tags=("t",)) == "new"

    await poll(b_misses)


def _live(cache: rung.Cache) -> bool:
    return cache.stats()["near"] == "live"


async def test_garbage_written_behind_rungs_back_is_a_miss_not_a_crash(
    rung_stack: RungStack, cache: rung.Cache, ns: str
) -> None:
    async with aioredis.Redis.from_url(rung_stack.cache_url) as r:
        await r.set(f"{ns}:v:k", b"not an entry")
        await r.set(f"{ns}:t:t", b"gen|not-an-lsn")
        await r.set(f"{ns}:i:k", b"also not an lsn")
    assert await cache.get_or_load("k", Counting("fresh"), tags=("t",)) == "fresh"
    assert await cache.get("k") == "fresh"
