"""rung.Queue and rung.Drain against the real stack: backpressure, draining into a table,
poison rows and dead letters, pacing, tokens, outages and crashes."""

import asyncio
import os
import random
import secrets
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack
from tests.helpers import RUNG, in_fresh_context, poll
from tests.helpers import rung as rung_cli
from tests.queue.support import dead_letters, drained, on_primary, running, sink

# --- producing ----------------------------------------------------------------------------


async def test_put_adds_an_id_when_the_event_has_none_and_keeps_one_it_has(
    queue: rung.Queue,
) -> None:
    given = await queue.put({"id": "7c1c0a4e-0000-7000-8000-000000000001", "n": 1})
    made = await queue.put({"n": 2})
    assert given == "7c1c0a4e-0000-7000-8000-000000000001"
    assert made != given
    assert len(await queue.put_many([{"n": 3}, {"n": 4}])) == 2
    assert (await queue.stats())["depth"] == 4


async def test_past_max_depth_put_raises_queue_full_and_drops_nothing(
    rung_stack: RungStack, stream: str
) -> None:
    async with rung.Queue(rung_stack.queue_url, stream=stream, max_depth=1000) as queue:
        ids = [await queue.put({"n": i}) for i in range(1000)]
        with pytest.raises(rung.QueueFull, match="max_depth=1000"):
            await queue.put({"n": 1000})
        with pytest.raises(rung.QueueFull):
            await queue.put_many([{"n": -1}])
        stats = await queue.stats()
        assert stats["depth"] == 1000
        assert len(set(ids)) == 1000


async def test_an_event_that_is_not_json_is_a_queue_error(queue: rung.Queue) -> None:
    with pytest.raises(rung.QueueError):
        await queue.put({"n": object()})
    with pytest.raises(rung.QueueError):
        await queue.put(["not", "a", "mapping"])  # type: ignore[arg-type]


async def test_with_the_queue_redis_stopped_put_raises_unavailable_naming_the_id(
    rung_stack: RungStack, queue: rung.Queue
) -> None:
    """(How fast it raises is measured by bench/faults_queue.py, not asserted here.)"""
    await queue.put({"n": 1})
    rung_stack.stop("queue")
    try:
        with pytest.raises(rung.QueueUnavailable) as raised:
            await queue.put({"id": "0192f0c0-0000-7000-8000-0000000000b2", "n": 2})
    finally:
        rung_stack.start("queue")
    assert raised.value.ids == ["0192f0c0-0000-7000-8000-0000000000b2"]
    assert (await queue.stats())["depth"] == 1  # AOF kept what was accepted


async def test_stats_report_lag_pending_and_the_oldest_age(queue: rung.Queue) -> None:
    await queue.put_many([{"n": i} for i in range(10)])
    await asyncio.sleep(0.05)  # the subject: the oldest event ages
    stats = await queue.stats()
    assert (stats["depth"], stats["pending"], stats["lag"], stats["dead"]) == (10, 0, 10, 0)
    assert stats["oldest_age_s"] >= 0.05


# --- draining into a table ------------------------------------------------------------------


async def test_a_drain_writes_every_event_once_and_empties_the_queue(
    queue: rung.Queue, db: rung.Database, events: str
) -> None:
    ids = await queue.put_many([{"n": i, "ignored": "field"} for i in range(10_000)])
    async with running(rung.Drain(queue, sink(db, events))) as drain:
        await drained(queue)
    assert await on_primary(db, f"SELECT count(DISTINCT id) FROM {events}") == 10_000
    assert await on_primary(db, f"SELECT sum(n) FROM {events}") == sum(range(10_000))
    assert drain.stats()["written"] == 10_000
    async with db.primary() as conn:
        assert {str(r["id"]) for r in await conn.fetch(f"SELECT id FROM {events}")} == set(ids)


async def test_an_event_delivered_twice_is_written_once(
    rung_stack: RungStack, queue: rung.Queue, db: rung.Database, events: str, stream: str
) -> None:
    """Twice in the stream (a producer that bypassed rung's put, or a retry after the
    dedupe window): the sink's key writes it once."""
    event = orjson.dumps({"id": "0192f0c0-0000-7000-8000-00000000abcd", "n": 5})
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        await r.xadd(stream, {"e": event})
        await r.xadd(stream, {"e": event})
    assert (await queue.stats())["depth"] == 2
    async with running(rung.Drain(queue, sink(db, events))):
        await drained(queue)
    assert await on_primary(db, f"SELECT count(*) FROM {events}") == 1


async def test_bad_rows_go_to_the_dead_letters_and_replay_after_the_fix(
    rung_stack: RungStack, queue: rung.Queue, db: rung.Database, events: str, stream: str
) -> None:
    """10 rows violating a CHECK among 10,000: 9,990 written, 10 dead letters with the
    error; after the constraint is dropped, a replay writes them."""
    bad = set(random.sample(range(10_000), 10))
    await queue.put_many([{"n": -i if i in bad else i} for i in range(10_000)])
    drain = rung.Drain(queue, sink(db, events), max_deliveries=2, claim_idle=0.5)
    async with running(drain):
        await drained(queue)
    assert await on_primary(db, f"SELECT count(*) FROM {events}") == 9_990
    stats = await queue.stats()
    assert stats["dead"] == 10
    assert drain.stats()["dead"] == 10
    letters = await dead_letters(rung_stack, stream)
    assert len(letters) == 10
    assert all("CheckViolationError" in letter[b"error"].decode() for letter in letters)

    await db.execute(f"ALTER TABLE {events} DROP CONSTRAINT {events}_n_check")
    assert await queue.replay_dead() == 10
    async with running(rung.Drain(queue, sink(db, events))):
        await drained(queue)
    assert await on_primary(db, f"SELECT count(*) FROM {events}") == 10_000
    assert (await queue.stats())["dead"] == 0


async def test_replay_dead_has_a_cli_verb(
    rung_stack: RungStack, queue: rung.Queue, db: rung.Database, events: str, stream: str
) -> None:
    await queue.put({"n": -1})
    drain = rung.Drain(queue, sink(db, events), max_deliveries=1)
    async with running(drain):
        await drained(queue)
    assert (await queue.stats())["dead"] == 1
    done = rung_cli("replay-dead", stream, "--queue", rung_stack.queue_url)
    assert done.returncode == 0, done.stderr
    assert "replayed 1 dead letters" in done.stdout
    assert (await queue.stats())["depth"] == 1


async def test_a_batch_that_fails_as_a_whole_is_not_acknowledged(
    rung_stack: RungStack, queue: rung.Queue, db: rung.Database
) -> None:
    """The table does not exist yet: nothing is acknowledged or buried, and once it exists
    (before `max_deliveries` rounds have passed) every event is written."""
    table = f"late_{secrets.token_hex(4)}"
    await queue.put_many([{"n": i} for i in range(100)])
    drain = rung.Drain(queue, sink(db, table), claim_idle=0.5)
    async with running(drain):
        await poll(lambda: drain.stats()["batch_failures"] >= 1)
        assert (await queue.stats())["depth"] == 100
        await db.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, n int)")
        await drained(queue)
    assert await on_primary(db, f"SELECT count(*) FROM {table}") == 100
    assert (await queue.stats())["dead"] == 0


async def test_a_spike_is_absorbed_and_drained_with_nothing_lost(
    queue: rung.Queue, db: rung.Database, events: str
) -> None:
    """A producer at 10x the drain's rate for 1 s: put latency stays low, the depth rises,
    then returns to 0, and every event is written."""
    latencies: list[float] = []
    deepest = 0
    async with running(rung.Drain(queue, sink(db, events), max_rate=500.0)):
        began = time.monotonic()
        sent = 0
        while time.monotonic() - began < 1.0:  # 5,000 events/s, in 10 ms slices
            t = time.perf_counter()
            await queue.put_many([{"n": sent + i} for i in range(50)])
            latencies.append(time.perf_counter() - t)
            sent += 50
            deepest = max(deepest, (await queue.stats())["depth"])
            await asyncio.sleep(max(0.0, began + sent / 5000 - time.monotonic()))
        await drained(queue, within=60.0)
    assert await on_primary(db, f"SELECT count(DISTINCT id) FROM {events}") == sent
    assert deepest > sent / 2
    q = statistics.quantiles(latencies, n=100)
    print(f"spike: {sent} events, put_many(50) p50 {q[49] * 1000:.2f} ms p99 {q[98] * 1000:.2f} ms")


async def test_events_carry_the_producers_token_to_the_handler(
    rung_stack: RungStack, db: rung.Database, table: str, stream: str
) -> None:
    """Replay paused: the producer writes a row and queues an event; the handler, in the
    drain, reads the row through rung.Database and sees it."""
    seen: list[Any] = []

    async def handler(event: dict[str, Any]) -> None:
        seen.append(await db.fetchval(f"SELECT v FROM {table} WHERE k = $1", event["k"]))

    async with rung.Queue(rung_stack.queue_url, stream=stream, db=db) as queue:
        for i in range(len(rung_stack.replica_urls)):
            rung_stack.pause_replay(i)
        try:

            async def produce() -> None:
                await db.execute(f"INSERT INTO {table} VALUES (1, 42)")
                await queue.put({"k": 1})

            await in_fresh_context(produce())
            drain = rung.Drain(queue, rung.HandlerSink(handler))
            await in_fresh_context(_drain_until_empty(drain, queue))
        finally:
            for i in range(len(rung_stack.replica_urls)):
                rung_stack.resume_replay(i)
    assert seen == [42]


async def _drain_until_empty(drain: rung.Drain, queue: rung.Queue) -> None:
    async with running(drain):
        await drained(queue)


async def test_a_failing_handler_fails_only_its_event(
    rung_stack: RungStack, queue: rung.Queue
) -> None:
    calls: dict[int, int] = {}

    async def handler(event: dict[str, Any]) -> None:
        calls[event["n"]] = calls.get(event["n"], 0) + 1
        if event["n"] == 3:
            raise RuntimeError("smtp said no")

    await queue.put_many([{"n": i} for i in range(10)])
    drain = rung.Drain(queue, rung.HandlerSink(handler), max_deliveries=3, claim_idle=0.3)
    async with running(drain):
        await drained(queue)
    assert calls == {**{i: 1 for i in range(10)}, 3: 3}
    assert (await queue.stats())["dead"] == 1
    letters = await dead_letters(rung_stack, queue.stream)
    assert letters[0][b"error"] == b"RuntimeError: smtp said no"
    assert letters[0][b"deliveries"] == b"3"


# --- the process: rung drain ------------------------------------------------------------------


def test_rung_drain_survives_five_sigkills_and_writes_each_event_exactly_once(
    rung_stack: RungStack, stream: str, events: str, tmp_path: Path
) -> None:
    """100,000 events; `rung drain` is SIGKILLed 5 times at random moments and restarted;
    in the end the table holds exactly 100,000 distinct ids and depth and pending are 0;
    SIGTERM then stops it cleanly."""
    env = {**os.environ, "RUNG_TEST_PRIMARY_URL": rung_stack.primary_url,
           "RUNG_TEST_QUEUE_URL": rung_stack.queue_url, "RUNG_TEST_STREAM": stream,
           "RUNG_TEST_TABLE": events}  # fmt: skip

    async def fill() -> None:
        async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
            for start in range(0, 100_000, 1000):
                await queue.put_many([{"n": n} for n in range(start, start + 1000)])

    asyncio.run(fill())

    def count() -> int:
        return int(rung_stack.sql("primary", f"SELECT count(*) FROM {events}"))

    log = tmp_path / "drain.log"

    def start() -> subprocess.Popen[str]:
        with log.open("a") as stderr:
            return subprocess.Popen(
                [RUNG, "drain", "tests.queue.drain_factory:clicks"], env=env,
                cwd=Path(__file__).parents[2], stderr=stderr, text=True,
            )  # fmt: skip

    for _ in range(5):
        before = count()
        proc = start()
        _wait(lambda before=before: count() > before, proc)  # it is writing...
        time.sleep(random.uniform(0, 0.3))  # ...and dies at a random moment
        proc.kill()
        proc.wait(timeout=10)
    assert count() < 100_000, "the kills came too late to test anything"

    proc = start()
    try:
        _wait(lambda: count() == 100_000 and _queue_empty(rung_stack, stream), proc, 60.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0, log.read_text()
    assert "drain stopped" in log.read_text()
    distinct = rung_stack.sql("primary", f"SELECT count(DISTINCT id) FROM {events}")
    assert int(distinct) == 100_000


def _wait(condition: Any, proc: subprocess.Popen[str], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert proc.poll() is None, "the drain exited on its own"
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _queue_empty(rung_stack: RungStack, stream: str) -> bool:
    async def stats() -> dict[str, Any]:
        async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
            return await queue.stats()

    s = asyncio.run(stats())
    return bool(s["depth"] == 0 and s["pending"] == 0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected MODULE:FACTORY"),
        ("no_such_module:x", "cannot import 'no_such_module'"),
        ("tests.queue.drain_factory:missing", "has no callable 'missing'"),
        ("tests.queue.drain_factory:not_a_drain", "returned str, not a rung.Drain"),
    ],
)
def test_rung_drain_explains_a_bad_factory_in_one_line(spec: str, message: str) -> None:
    done = subprocess.run([RUNG, "drain", spec], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2])  # fmt: skip
    assert done.returncode == 2  # every CLI error: one line, exit code 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


async def test_entries_added_with_plain_xadd_are_events_too(
    rung_stack: RungStack, queue: rung.Queue, db: rung.Database, events: str, stream: str
) -> None:
    async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
        await r.xadd(stream, {"id": "0192f0c0-0000-7000-8000-0000000000aa", "n": "7"})
    async with running(rung.Drain(queue, sink(db, events))):
        await drained(queue)
    assert await on_primary(db, f"SELECT n FROM {events}") == 7
