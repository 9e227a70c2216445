"""rung.testing.MemoryBroker: its clock decides exactly when an entry can be reclaimed and an
id is forgotten; a Queue over it, drained by a Drain, moves every event once. (The
promises it shares with Redis Streams are in test_broker_contract.py.)"""

import math
from collections import Counter
from typing import Any

import orjson
import pytest

import rung
from rung.testing import MemoryBroker, RungStack
from tests.helpers import poll
from tests.queue.support import drained, on_primary, running, sink


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ev(event_id: str) -> tuple[str, bytes]:
    return event_id, orjson.dumps({"id": event_id})


async def test_an_entry_is_reclaimable_once_idle_has_passed_on_the_clock_and_not_before() -> None:
    clock = Clock()
    broker = MemoryBroker(clock=clock)
    await broker.put([ev("a")], None, max_depth=10)
    await broker.read("A", 1, wait=0.0)
    clock.now = 4.999
    assert await broker.reclaim("B", idle=5.0, count=1) == []
    clock.now = 5.0
    assert [d.deliveries for d in await broker.reclaim("B", idle=5.0, count=1)] == [2]


async def test_an_id_is_remembered_for_exactly_the_dedupe_window() -> None:
    clock = Clock()
    broker = MemoryBroker(dedupe_window=60.0, clock=clock)
    await broker.put([ev("a")], None, max_depth=10)
    clock.now = 59.999
    assert await broker.put([ev("a")], None, max_depth=10) == 0
    clock.now = 60.0
    assert await broker.put([ev("a")], None, max_depth=10) == 1


async def test_a_repeated_put_keeps_the_first_window() -> None:
    """A skipped id does not extend its marker, as Redis's SET is skipped with the XADD."""
    clock = Clock()
    broker = MemoryBroker(dedupe_window=10.0, clock=clock)
    await broker.put([ev("a")], None, max_depth=10)
    clock.now = 9.0
    assert await broker.put([ev("a")], None, max_depth=10) == 0
    clock.now = 10.0
    assert await broker.put([ev("a")], None, max_depth=10) == 1


async def test_oldest_age_is_the_clock_since_the_oldest_entry_was_put() -> None:
    clock = Clock()
    broker = MemoryBroker(clock=clock)
    await broker.put([ev("a")], None, max_depth=10)
    clock.now = 1.0
    await broker.put([ev("b")], None, max_depth=10)
    clock.now = 2.5
    assert (await broker.stats())["oldest_age_s"] == 2.5


async def test_forget_keeps_a_consumer_until_it_has_been_idle_that_long() -> None:
    clock = Clock()
    broker = MemoryBroker(clock=clock)
    await broker.put([ev("a")], None, max_depth=10)
    await broker.ack([d.ref for d in await broker.read("A", 1, wait=0.0)])
    clock.now = 59.0
    await broker.forget(idle=60.0)
    assert broker.consumers == {"A"}
    clock.now = 60.0
    await broker.forget(idle=60.0)
    assert broker.consumers == set()


@pytest.mark.parametrize(
    ("options", "named"),
    [({"dedupe_window": math.nan}, "dedupe_window"), ({"dedupe_window": 0}, "dedupe_window"),
     ({"stream": ""}, "stream"), ({"clock": 5.0}, "clock")],
)  # fmt: skip
def test_bad_options_raise_value_error_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        MemoryBroker(**options)


# --- a Queue over it, drained --------------------------------------------------------------


async def test_a_drain_moves_every_event_through_a_memory_queue_once() -> None:
    seen: Counter[str] = Counter()

    async def handle(event: dict[str, Any]) -> None:
        seen[event["id"]] += 1

    queue = rung.Queue(broker=MemoryBroker(stream="clicks"), max_depth=10_000)
    ids = await queue.put_many([{"n": i} for i in range(2_000)])
    async with running(rung.Drain(queue, rung.HandlerSink(handle), batch_size=300)) as drain:
        await drained(queue)
    assert seen == Counter(ids)
    assert drain.stats()["written"] == 2_000
    assert await queue.stats() == {"depth": 0, "pending": 0, "lag": 0, "oldest_age_s": 0.0,
                                   "dead": 0}  # fmt: skip


async def test_a_drain_writes_a_memory_queue_into_a_table_once(
    rung_stack: RungStack, db: rung.Database, events: str
) -> None:
    queue = rung.Queue(broker=MemoryBroker(stream=events))
    await queue.put_many([{"n": i} for i in range(1_000)])
    async with running(rung.Drain(queue, sink(db, events), batch_size=250)):
        await drained(queue)
    assert await on_primary(db, f"SELECT count(DISTINCT id) FROM {events}") == 1_000
    assert await on_primary(db, f"SELECT sum(n) FROM {events}") == sum(range(1_000))


async def test_a_poison_event_is_retried_as_the_clock_moves_then_dead_lettered() -> None:
    """The drain reclaims what failed once `claim_idle` has passed on the broker's clock: the
    test moves the clock, and the event fails `max_deliveries` times, then goes dead."""
    clock = Clock()
    tries: Counter[int] = Counter()

    async def handle(event: dict[str, Any]) -> None:
        tries[event["n"]] += 1
        if event["n"] < 0:
            raise ValueError("negative")

    broker = MemoryBroker(clock=clock)
    queue = rung.Queue(broker=broker)
    await queue.put_many([{"n": -1}, {"n": 1}])
    drain = rung.Drain(queue, rung.HandlerSink(handle), max_deliveries=3, claim_idle=0.1)

    async def first_round_done() -> bool:  # the clock stands still: nothing is due again
        return tries == {-1: 1, 1: 1} and (await queue.stats())["depth"] == 1

    async def dead() -> bool:
        clock.now += 1.0  # the failed entry is due again
        return (await queue.stats())["dead"] == 1

    async with running(drain):
        await poll(first_round_done)
        await poll(dead)
    assert tries == {-1: 3, 1: 1}
    assert (await queue.stats())["depth"] == 0
    assert drain.stats()["dead"] == 1
    [(letter, error)] = broker.dead_letters
    assert (letter.event()["n"], letter.deliveries, error) == (-1, 3, "ValueError: negative")
