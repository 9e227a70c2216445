"""rung.Drain against the real stack when writes fail: a row no batch can hold (54000, a
trigger's RAISE) is split out and dead-lettered while the rest is written; an outage is
waited out without splitting or counting deliveries; a batch that fails as a whole for no
reason a row explains is split after a few tries."""

import asyncio
import random
import secrets
import uuid
from collections.abc import Sequence

import asyncpg
import orjson
import pytest

import rung
from rung.queue import Delivery, Failures, faults
from rung.testing import RungStack
from tests.helpers import poll
from tests.queue.support import dead_letters, drained, on_primary, running, sink


@pytest.fixture
def notes(rung_stack: RungStack) -> str:
    """A table for events `{id, n, note}` with a btree index on `note`."""
    name = f"notes_{secrets.token_hex(4)}"
    rung_stack.sql("primary", f"CREATE TABLE {name} (id uuid PRIMARY KEY, n int, note text); "
                              f"CREATE INDEX ON {name} (note)")  # fmt: skip
    return name


def notes_sink(db: rung.Database, table: str) -> rung.TableSink:
    return rung.TableSink(db, table=table, columns=("id", "n", "note"), key="id")


def deliveries(events: Sequence[dict[str, object]]) -> list[Delivery]:
    """Events as a drain would hand them to a sink."""
    raws = [orjson.dumps({**e, "id": str(uuid.uuid4())}) for e in events]
    return [Delivery(f"0-{i}", raw, None, 1) for i, raw in enumerate(raws)]


async def _one_bad_row_among_100(
    rung_stack: RungStack, db: rung.Database, table: str, stream: str, bad: dict[str, object]
) -> tuple[rung.Drain, list[dict[bytes, bytes]]]:
    """99 good events and `bad` at a random place: the drain writes the 99, dead-letters
    `bad` (max_deliveries=1), and the queue ends empty."""
    events: list[dict[str, object]] = [{"n": i, "note": f"fine {i}"} for i in range(99)]
    events.insert(random.randrange(100), bad)
    async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
        await queue.put_many(events)
        drain = rung.Drain(queue, notes_sink(db, table), max_deliveries=1)
        async with running(drain):
            await poll(lambda: on_primary(db, f"SELECT count(*) = 99 FROM {table}"))
            await drained(queue)
        assert (await queue.stats())["dead"] == 1
    assert await on_primary(db, f"SELECT count(*) FROM {table}") == 99
    assert await on_primary(db, f"SELECT count(*) FROM {table} WHERE n = -1") == 0
    return drain, await dead_letters(rung_stack, stream)


async def test_a_value_too_big_for_its_index_fails_only_its_row(
    rung_stack: RungStack, db: rung.Database, notes: str, stream: str
) -> None:
    """A ~10 kB incompressible note cannot be a btree index entry (SQLSTATE 54000)."""
    bad = {"n": -1, "note": secrets.token_urlsafe(7500)}
    # The control: the batch fails as a whole on that one row, with a SQLSTATE that is
    # neither a data exception (22) nor a constraint (23).
    good = [{"n": i, "note": "fine"} for i in range(99)]
    with pytest.raises(asyncpg.PostgresError) as raised:
        await notes_sink(db, notes).write(deliveries([*good, bad]))
    assert raised.value.sqlstate == "54000"
    assert await on_primary(db, f"SELECT count(*) FROM {notes}") == 0

    drain, letters = await _one_bad_row_among_100(rung_stack, db, notes, stream, bad)
    assert b"ProgramLimitExceededError: index row" in letters[0][b"error"]
    assert drain.stats()["splits"] >= 1
    assert drain.stats()["outages"] == 0


async def test_a_trigger_that_raises_on_one_row_fails_only_that_row(
    rung_stack: RungStack, db: rung.Database, notes: str, stream: str
) -> None:
    rung_stack.sql("primary", f"""
        CREATE FUNCTION {notes}_check() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.n < 0 THEN RAISE EXCEPTION 'no negative n: %', NEW.n; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER {notes}_check BEFORE INSERT ON {notes}
          FOR EACH ROW EXECUTE FUNCTION {notes}_check()""")  # fmt: skip
    bad = {"n": -1, "note": "negative"}
    good = [{"n": i, "note": "fine"} for i in range(99)]
    with pytest.raises(asyncpg.PostgresError) as raised:  # the control, as above
        await notes_sink(db, notes).write(deliveries([bad, *good]))
    assert raised.value.sqlstate == "P0001"

    _, letters = await _one_bad_row_among_100(rung_stack, db, notes, stream, bad)
    assert letters[0][b"error"] == b"RaiseError: no negative n: -1"


async def test_an_outage_is_waited_out_without_splitting_or_counting_a_delivery(
    rung_stack: RungStack, queue: rung.Queue, db: rung.Database, events: str
) -> None:
    """The table's statements fail with 40001 (serialization failure) three times, then
    succeed: with max_deliveries=1 nothing is dead-lettered, every event is written, and the
    database saw exactly four statements (no split)."""
    seq = f"{events}_tries"
    rung_stack.sql("primary", f"""
        CREATE SEQUENCE {seq};
        CREATE FUNCTION {events}_busy() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF nextval('{seq}') <= 3 THEN
            RAISE EXCEPTION 'busy' USING ERRCODE = 'serialization_failure';
          END IF;
          RETURN NULL;
        END $$;
        CREATE TRIGGER {events}_busy BEFORE INSERT ON {events}
          FOR EACH STATEMENT EXECUTE FUNCTION {events}_busy()""")  # fmt: skip
    await queue.put_many([{"n": i} for i in range(100)])
    drain = rung.Drain(queue, sink(db, events), max_deliveries=1)
    async with running(drain):
        await drained(queue)
    assert await on_primary(db, f"SELECT count(*) FROM {events}") == 100
    assert await on_primary(db, f"SELECT last_value FROM {seq}") == 4  # 3 failed, 1 whole
    stats = drain.stats()
    assert (stats["outages"], stats["splits"], stats["dead"], stats["failed"]) == (3, 0, 0, 0)
    assert (await queue.stats())["dead"] == 0


class FussySink:
    """A sink that fails every batch holding event n == 13, as a whole, with an error that
    says nothing about rows; it records each batch it was given."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.written: set[int] = set()

    async def write(self, batch: Sequence[Delivery]) -> Failures:
        ns = [d.event()["n"] for d in batch]
        self.calls.append(ns)
        if 13 in ns:
            raise RuntimeError("the service is confused")
        self.written.update(ns)
        return {}


async def test_a_batch_that_keeps_failing_as_a_whole_is_split_after_a_few_tries(
    rung_stack: RungStack, queue: rung.Queue, stream: str
) -> None:
    """The whole batch is tried BATCH_TRIES times (the control: it fails every time), then
    split: the 99 others are written, 13 is dead-lettered."""
    await queue.put_many([{"n": i} for i in range(100)])
    fussy = FussySink()
    drain = rung.Drain(queue, fussy, max_deliveries=1)
    async with running(drain):
        await drained(queue)
    assert fussy.calls[: faults.BATCH_TRIES] == [list(range(100))] * faults.BATCH_TRIES
    assert fussy.written == set(range(100)) - {13}
    letters = await dead_letters(rung_stack, stream)
    assert [letter[b"error"] for letter in letters] == [b"RuntimeError: the service is confused"]
    assert drain.stats()["batch_failures"] == faults.BATCH_TRIES


class HeldSink:
    """Records each batch's `n`s; the batch holding n=0 waits until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.batches: list[list[int]] = []

    async def write(self, batch: Sequence[Delivery]) -> Failures:
        ns = [int(d.event()["n"]) for d in batch]
        self.batches.append(ns)
        if 0 in ns:
            await self.release.wait()
        return {}


async def test_the_next_batch_is_written_while_one_is_held(
    rung_stack: RungStack, stream: str
) -> None:
    """Two batches in flight: the second is written and acknowledged while the first
    still waits; on stop() the held one is finished and acknowledged too."""
    held = HeldSink()
    async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
        await queue.put_many([{"n": i} for i in range(20)])
        drain = rung.Drain(queue, held, batch_size=10)
        task = asyncio.create_task(drain.run())
        await poll(lambda: len(held.batches) == 2)
        assert sorted(held.batches[0] + held.batches[1]) == list(range(20))
        await poll(lambda: drain.stats()["written"] == 10)  # the batch that was not held
        drain.stop()
        assert not task.done()  # the held batch keeps run() from returning
        held.release.set()
        await asyncio.wait_for(task, 10.0)
        assert drain.stats()["written"] == 20
        stats = await queue.stats()
        assert (stats["depth"], stats["pending"]) == (0, 0)


async def test_cancelling_a_drain_with_batches_in_flight_leaves_no_task(
    rung_stack: RungStack, stream: str
) -> None:
    held = HeldSink()
    async with rung.Queue(rung_stack.queue_url, stream=stream) as queue:
        await queue.put_many([{"n": i} for i in range(20)])
        drain = rung.Drain(queue, held, batch_size=10, claim_idle=1.0)
        before = asyncio.all_tasks()
        task = asyncio.create_task(drain.run())
        await poll(lambda: len(held.batches) == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == before
        # The held batch was never acknowledged: it comes back to the next drain.
        held.release.set()
        again = rung.Drain(queue, held, batch_size=10, claim_idle=1.0)
        async with running(again):
            await drained(queue)
        assert 0 in held.batches[-1] or any(0 in b for b in held.batches[2:])
