"""The promises of `rung.Broker`, held against every broker: Redis Streams on the real
stack and `rung.testing.MemoryBroker`. Both pass the same tests.

Time is the tests' to move: `idle_for` and `window_passes` advance the memory broker's
clock, and for Redis poll the server until its own clock has got there (no sleeps)."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Protocol

import orjson
import pytest
import redis.asyncio as aioredis

import rung
from rung.queue import RedisStreams
from rung.testing import MemoryBroker, RungStack
from tests.helpers import poll

WINDOW = 1.0  # seconds an accepted id is remembered, in these tests
TOKEN = "0/16B3748"
STATS = {"depth", "pending", "lag", "oldest_age_s", "dead"}


class Harness(Protocol):
    """A broker under test, and the hands to let its time pass."""

    broker: rung.Broker

    async def idle_for(self, seconds: float) -> None:
        """Return once every entry handed out has gone unrenewed for `seconds`."""

    async def window_passes(self) -> None:
        """Return once every id accepted so far is forgotten."""

    async def consumers(self) -> set[str]:
        """The consumers the broker has a record of."""


class Memory:
    def __init__(self) -> None:
        self.now = 1000.0
        self.broker: rung.Broker = MemoryBroker(stream="contract", dedupe_window=WINDOW,
                                   clock=lambda: self.now)  # fmt: skip

    async def idle_for(self, seconds: float) -> None:
        self.now += seconds

    async def window_passes(self) -> None:
        self.now += WINDOW

    async def consumers(self) -> set[str]:
        assert isinstance(self.broker, MemoryBroker)
        return self.broker.consumers


class Streams:
    def __init__(self, url: str) -> None:
        self.stream = f"c{secrets.token_hex(4)}"
        self.broker: rung.Broker = RedisStreams(url, self.stream, timeout=1.0, dedupe_window=WINDOW)
        self.redis = aioredis.Redis.from_url(url)

    async def idle_for(self, seconds: float) -> None:
        async def idle_enough() -> bool:
            held = await self.redis.xpending_range(self.stream, "rung", "-", "+", 10_000)
            return all(h["time_since_delivered"] >= seconds * 1000 for h in held)

        await poll(idle_enough, within=seconds + 10.0)

    async def window_passes(self) -> None:
        async def forgotten() -> bool:
            return not [key async for key in self.redis.scan_iter(f"{self.stream}:id:*")]

        await poll(forgotten, within=WINDOW + 10.0)

    async def consumers(self) -> set[str]:
        found = await self.redis.xinfo_consumers(self.stream, "rung")
        return {c["name"].decode() for c in found}


@pytest.fixture(params=["redis", "memory"])
async def h(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "redis":
        rung_stack: RungStack = request.getfixturevalue("rung_stack")
        harness: Harness = Streams(rung_stack.queue_url)
    else:
        harness = Memory()
    await harness.broker.open()
    try:
        yield harness
    finally:
        await harness.broker.close()
        if isinstance(harness, Streams):
            await harness.redis.aclose()


def ev(event_id: str, **fields: object) -> tuple[str, bytes]:
    return event_id, orjson.dumps({"id": event_id, **fields})


def ids(deliveries: list[rung.Delivery]) -> list[str]:
    return [d.event()["id"] for d in deliveries]


async def test_a_broker_is_a_rung_broker(h: Harness) -> None:
    assert isinstance(h.broker, rung.Broker)
    assert (h.broker.dedupe_window, bool(h.broker.stream)) == (WINDOW, True)


async def test_read_hands_each_entry_to_one_consumer_oldest_first(h: Harness) -> None:
    assert await h.broker.put([ev("a", n=1), ev("b", n=2), ev("c", n=3)], TOKEN,
                              max_depth=10) == 3  # fmt: skip
    first = await h.broker.read("A", 2, wait=0.01)
    assert ids(first) == ["a", "b"]
    assert [(d.raw, d.token, d.deliveries) for d in first[:1]] == [
        (orjson.dumps({"id": "a", "n": 1}), TOKEN, 1)
    ]
    assert ids(await h.broker.read("B", 10, wait=0.01)) == ["c"]
    assert await h.broker.read("A", 10, wait=0.01) == []


async def test_an_event_put_without_a_token_is_delivered_without_one(h: Harness) -> None:
    await h.broker.put([ev("a")], None, max_depth=10)
    assert [d.token for d in await h.broker.read("A", 1, wait=0.01)] == [None]


async def test_read_waits_for_an_entry_that_is_put_meanwhile(h: Harness) -> None:
    assert await h.broker.read("A", 10, wait=0.01) == []
    reading = asyncio.create_task(h.broker.read("A", 10, wait=5.0))
    await h.broker.put([ev("late")], None, max_depth=10)
    assert ids(await reading) == ["late"]


async def test_ack_removes_entries_and_a_second_ack_is_harmless(h: Harness) -> None:
    await h.broker.put([ev("a"), ev("b")], None, max_depth=10)
    a, _ = await h.broker.read("A", 2, wait=0.01)
    await h.broker.ack([a.ref])
    await h.broker.ack([a.ref])
    stats = await h.broker.stats()
    assert (stats["depth"], stats["pending"]) == (1, 1)
    assert ids(await h.broker.reclaim("B", idle=0.0, count=10)) == ["b"]


async def test_acks_in_any_order_leave_exactly_what_is_not_acknowledged(h: Harness) -> None:
    # A newer batch acknowledged before an older one (two writers), an entry still held
    # in the middle, and entries never handed out: the depth counts exactly the ones not
    # acknowledged, and each of them is still there to be delivered.
    await h.broker.put([ev(str(i)) for i in range(10)], None, max_depth=100)
    older = await h.broker.read("A", 3, wait=0.01)  # 0 1 2
    newer = await h.broker.read("B", 4, wait=0.01)  # 3 4 5 6; 7 8 9 never handed out
    await h.broker.ack([d.ref for d in newer if d.event()["id"] != "4"])
    assert (await h.broker.stats())["depth"] == 10 - 3
    await h.broker.ack([d.ref for d in older])
    stats = await h.broker.stats()
    assert (stats["depth"], stats["pending"], stats["lag"]) == (4, 1, 3)
    assert ids(await h.broker.reclaim("C", idle=0.0, count=10)) == ["4"]
    assert ids(await h.broker.read("C", 10, wait=0.01)) == ["7", "8", "9"]
    await h.broker.ack([d.ref for d in newer])  # "4" at last, and the acked again: harmless
    assert (await h.broker.stats())["depth"] == 3


async def test_put_skips_ids_accepted_within_the_dedupe_window(h: Harness) -> None:
    assert await h.broker.put([ev("a"), ev("a"), ev("b")], None, max_depth=10) == 2
    assert await h.broker.put([ev("a")], None, max_depth=10) == 0
    assert await h.broker.put([ev("b"), ev("c")], None, max_depth=10) == 1
    await h.window_passes()
    assert await h.broker.put([ev("a")], None, max_depth=10) == 1
    assert (await h.broker.stats())["depth"] == 4


async def test_past_max_depth_put_raises_queue_full_and_adds_nothing(h: Harness) -> None:
    assert await h.broker.put([ev("a"), ev("b")], None, max_depth=3) == 2
    with pytest.raises(rung.QueueFull):
        await h.broker.put([ev("c"), ev("d")], None, max_depth=3)
    with pytest.raises(rung.QueueFull):  # room for c, not for the events reserved after it
        await h.broker.put([ev("c")], None, max_depth=3, reserve=1)
    assert (await h.broker.stats())["depth"] == 2
    assert await h.broker.put([ev("c")], None, max_depth=3) == 1
    assert await h.broker.put([ev("a")], None, max_depth=3) == 0  # full, but adds nothing
    assert ids(await h.broker.read("A", 10, wait=0.01)) == ["a", "b", "c"]


async def test_an_entry_not_renewed_for_idle_is_reclaimed_with_deliveries_counted(
    h: Harness,
) -> None:
    await h.broker.put([ev("a")], TOKEN, max_depth=10)
    (read,) = await h.broker.read("A", 1, wait=0.01)
    assert await h.broker.reclaim("B", idle=60.0, count=10) == []
    await h.idle_for(0.1)
    (second,) = await h.broker.reclaim("B", idle=0.1, count=10)
    assert (second.ref, second.raw, second.token, second.deliveries) == (
        read.ref, read.raw, TOKEN, 2)  # fmt: skip
    assert await h.broker.reclaim("A", idle=60.0, count=10) == []  # B's now, freshly
    await h.idle_for(0.1)
    assert [d.deliveries for d in await h.broker.reclaim("A", idle=0.1, count=10)] == [3]


async def test_reclaim_takes_at_most_count_oldest_first(h: Harness) -> None:
    await h.broker.put([ev("a"), ev("b"), ev("c")], None, max_depth=10)
    await h.broker.read("A", 3, wait=0.01)
    await h.idle_for(0.1)
    assert ids(await h.broker.reclaim("B", idle=0.1, count=2)) == ["a", "b"]
    assert ids(await h.broker.reclaim("B", idle=0.1, count=2)) == ["c"]


async def test_renew_keeps_an_entry_from_being_reclaimed(h: Harness) -> None:
    await h.broker.put([ev("a")], None, max_depth=10)
    (read,) = await h.broker.read("A", 1, wait=0.01)
    await h.idle_for(1.0)
    await h.broker.renew("A", [read.ref])
    assert await h.broker.reclaim("B", idle=1.0, count=10) == []
    await h.idle_for(1.0)
    assert [d.deliveries for d in await h.broker.reclaim("B", idle=1.0, count=10)] == [2]


async def test_bury_moves_entries_to_the_dead_letters_and_replay_brings_them_back(
    h: Harness,
) -> None:
    await h.broker.put([ev("a", n=1), ev("b")], TOKEN, max_depth=10)
    a, _ = await h.broker.read("A", 2, wait=0.01)
    await h.broker.bury([(a, "ValueError: boom")])
    stats = await h.broker.stats()
    assert (stats["depth"], stats["pending"], stats["dead"]) == (1, 1, 1)
    assert await h.broker.replay_dead() == 1
    assert await h.broker.replay_dead() == 0
    stats = await h.broker.stats()
    assert (stats["depth"], stats["lag"], stats["dead"]) == (2, 1, 0)
    (again,) = await h.broker.read("B", 10, wait=0.01)
    assert (again.raw, again.token, again.deliveries) == (a.raw, TOKEN, 1)
    assert again.ref != a.ref


async def test_forget_drops_idle_consumers_that_hold_nothing_and_keeps_their_entries(
    h: Harness,
) -> None:
    await h.broker.forget(idle=0.0)  # nothing to forget yet: no error
    await h.broker.put([ev("a"), ev("b")], None, max_depth=10)
    await h.broker.read("A", 1, wait=0.01)
    await h.broker.ack([d.ref for d in await h.broker.read("B", 1, wait=0.01)])  # B: none
    await h.broker.forget(idle=3600.0)
    assert await h.consumers() == {"A", "B"}
    await h.broker.forget(idle=0.0)
    assert await h.consumers() == {"A"}
    assert (await h.broker.stats())["pending"] == 1
    await h.idle_for(0.1)
    assert [d.deliveries for d in await h.broker.reclaim("C", idle=0.1, count=10)] == [2]


async def test_stats_count_entries_in_each_state(h: Harness) -> None:
    empty = await h.broker.stats()
    assert empty == {"depth": 0, "pending": 0, "lag": 0, "oldest_age_s": 0.0, "dead": 0}
    await h.broker.put([ev("a"), ev("b"), ev("c")], None, max_depth=10)
    a, b = await h.broker.read("A", 2, wait=0.01)
    stats = await h.broker.stats()
    assert set(stats) == STATS
    assert (stats["depth"], stats["pending"], stats["lag"], stats["dead"]) == (3, 2, 1, 0)
    await h.idle_for(0.2)  # the oldest entry is older than its delivery
    assert (await h.broker.stats())["oldest_age_s"] >= 0.2
    await h.broker.ack([a.ref])
    await h.broker.bury([(b, "boom")])
    stats = await h.broker.stats()
    assert (stats["depth"], stats["pending"], stats["lag"], stats["dead"]) == (1, 0, 1, 1)


async def test_open_and_close_may_repeat_and_the_entries_outlive_them(h: Harness) -> None:
    await h.broker.open()
    await h.broker.put([ev("a")], None, max_depth=10)
    await h.broker.close()
    await h.broker.open()
    assert ids(await h.broker.read("A", 1, wait=0.01)) == ["a"]
    await h.broker.close()
    await h.broker.close()
    await h.broker.open()
    assert (await h.broker.stats())["pending"] == 1
