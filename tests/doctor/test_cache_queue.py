"""Cache and queue checks on the real stack, and a component that does not answer."""

import asyncio
import secrets
from collections.abc import Iterator

import pytest
import redis

import rung
from rung.doctor import Targets, Verdict, diagnose
from rung.testing import RungStack
from tests.doctor.conftest import Scratch
from tests.doctor.support import named
from tests.helpers import poll


@pytest.fixture
def cache_redis(rung_stack: RungStack) -> Iterator[redis.Redis]:
    """The stack's cache Redis; its maxmemory-policy is put back afterwards."""
    client = redis.Redis.from_url(rung_stack.cache_url)
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    try:
        yield client
    finally:
        client.config_set("maxmemory-policy", policy)
        client.close()


async def test_noeviction_with_keys_without_ttl_is_flagged(
    rung_stack: RungStack, cache_redis: redis.Redis
) -> None:
    prefix = f"doctor:{secrets.token_hex(4)}"
    cache_redis.config_set("maxmemory-policy", "noeviction")
    cache_redis.mset({f"{prefix}:{i}": "v" for i in range(10)})
    try:
        report = await diagnose(Targets(cache=rung_stack.cache_url), sample=0.0)
    finally:
        cache_redis.delete(*(f"{prefix}:{i}" for i in range(10)))
    [memory] = named(report, "memory policy")
    assert memory.verdict is Verdict.act
    assert memory.evidence["maxmemory_policy"] == "noeviction"
    assert isinstance(memory.evidence["keys_without_ttl"], int)
    assert memory.evidence["keys_without_ttl"] >= 10
    assert report.next[0].rung == "cache"


async def test_a_queue_with_no_drain_is_flagged_with_its_drain_estimate(
    rung_stack: RungStack,
) -> None:
    stream = f"doctor_{secrets.token_hex(4)}"
    async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
        await queue.put_many([{"n": i} for i in range(500)])
        targets = Targets(queue=rung_stack.queue_url, streams=(stream,))
        try:
            report = await diagnose(targets, sample=0.3)
        finally:
            with redis.Redis.from_url(rung_stack.queue_url) as client:
                client.delete(stream)
    [backlog] = named(report, f"stream {stream}")
    assert backlog.verdict is Verdict.act
    assert (backlog.evidence["depth"], backlog.evidence["drained_per_s"]) == (500, 0.0)
    assert backlog.evidence["drain_estimate_s"] is None  # never, at the measured rate
    assert "never drains" in backlog.summary
    assert report.next[0].rung == "queue"


async def test_a_slow_drain_gets_a_finite_drain_estimate(rung_stack: RungStack) -> None:
    """A drain capped at 200 rows/s under a 20,000-event backlog: the backlog is flagged,
    with an estimate measured from the group's progress, not "never"."""
    stream = f"doctor_{secrets.token_hex(4)}"
    handled = 0

    async def handle(event: dict[str, object]) -> None:
        nonlocal handled
        handled += 1

    async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
        await queue.put_many([{"n": i} for i in range(20_000)])
        drain = rung.Drain(queue, rung.HandlerSink(handle), batch_size=50, max_rate=200.0)
        running = asyncio.create_task(drain.run())
        try:

            async def acknowledged_some() -> bool:
                return (await queue.stats())["depth"] < 20_000

            await poll(acknowledged_some)
            targets = Targets(queue=rung_stack.queue_url, streams=(stream,))
            report = await diagnose(targets, sample=1.0)
        finally:
            drain.stop()
            await running
            with redis.Redis.from_url(rung_stack.queue_url) as client:
                client.delete(stream)
    [backlog] = named(report, f"stream {stream}")
    depth, rate = backlog.evidence["depth"], backlog.evidence["drained_per_s"]
    estimate = backlog.evidence["drain_estimate_s"]
    assert isinstance(depth, int) and isinstance(rate, float) and isinstance(estimate, float)
    assert 0 < depth < 20_000  # a finite estimate: something drained in the sample
    assert backlog.evidence["drained_measured_from"] == "consumer groups"
    assert estimate * rate == pytest.approx(depth, rel=0.01)
    assert backlog.verdict is Verdict.act
    assert "never" not in backlog.summary and "takes about" in backlog.summary


async def test_a_hung_redis_is_unreachable_within_the_bound_and_the_rest_still_runs(
    rung_stack: RungStack, scratch: Scratch
) -> None:
    targets = Targets(db=scratch.primary_url, cache=rung_stack.cache_url)
    rung_stack.freeze("cache")
    try:
        report = await diagnose(targets, timeout=1.0, sample=0.0)
    finally:
        rung_stack.thaw("cache")
    [cache] = [f for f in report.findings if f.area == "cache"]
    assert cache.verdict is Verdict.unreachable
    assert cache.summary.startswith("could not check: cache unreachable: ")
    assert named(report, "connection churn")[0].verdict is Verdict.ok
    assert report.at.endswith("(1 check could not run)")


async def test_a_frozen_postmaster_is_an_unreachable_database_and_cache_and_queue_still_run(
    rung_stack: RungStack, scratch: Scratch
) -> None:
    """SIGSTOP on the primary's postmaster: a new connection hangs, unanswered; the doctor's
    connect gives up at its timeout and names the database."""
    stream = f"doctor_{secrets.token_hex(4)}"
    targets = Targets(db=scratch.primary_url, cache=rung_stack.cache_url,
                      queue=rung_stack.queue_url, streams=(stream,))  # fmt: skip
    rung_stack.freeze("primary")
    try:
        report = await diagnose(targets, timeout=1.0, sample=0.0)
    finally:
        rung_stack.thaw("primary")
    [database] = [f for f in report.findings if f.area == "database"]
    assert database.verdict is Verdict.unreachable
    assert database.summary == (
        "could not check: database unreachable: no answer in time (hung, or a firewall "
        "dropping packets)"
    )
    assert {f.name for f in report.findings if f.area == "cache"} == {
        "hit rate", "memory policy", "evictions",
    }  # fmt: skip
    assert [(f.name, f.verdict) for f in report.findings if f.area == "queue"] == [
        (f"stream {stream}", Verdict.ok)
    ]
    assert report.at.endswith("(1 check could not run)")


async def test_a_refused_url_names_the_component_and_the_other_checks_run(
    rung_stack: RungStack,
) -> None:
    targets = Targets(db="postgresql://rung@127.0.0.1:1/rung", cache=rung_stack.cache_url)
    report = await diagnose(targets, timeout=1.0, sample=0.0)
    [database] = [f for f in report.findings if f.area == "database"]
    assert database.verdict is Verdict.unreachable
    assert database.summary.startswith("could not check: database unreachable: ")
    assert {f.name for f in report.findings if f.area == "cache"} == {
        "hit rate",
        "memory policy",
        "evictions",
    }
