"""rung.Queue's puts against the real queue Redis: idempotent by id, big batches in bounded
chunks, and a hung (SIGSTOPped) Redis, with what a caller knows after each failure."""

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

import rung
from rung.queue import CHUNK_EVENTS
from rung.testing import RungStack
from tests.helpers import poll
from tests.queue.support import ids_in_stream

# --- idempotent by id -----------------------------------------------------------------------


async def test_a_put_repeated_with_its_id_adds_nothing(
    rung_stack: RungStack, queue: rung.Queue, stream: str
) -> None:
    first = await queue.put({"n": 1})
    assert await queue.put({"id": first, "n": 1}) == first
    again = await queue.put_many([{"id": first, "n": 1}, {"n": 2}, {"id": "x-7", "n": 3},
                                  {"id": "x-7", "n": 3}])  # fmt: skip
    assert again[0] == first
    assert sorted(await ids_in_stream(rung_stack, stream)) == sorted([first, again[1], "x-7"])
    assert (await queue.stats())["depth"] == 3


async def test_an_event_without_an_id_gets_a_new_one_each_time(
    rung_stack: RungStack, queue: rung.Queue, stream: str
) -> None:
    """The control for the one above: what the dedupe keys on is the id, so a caller that
    retries an id-less event (not the id it got back) adds a second copy."""
    event = {"n": 1}
    a, b = await queue.put(event), await queue.put(event)
    assert a != b
    assert event == {"n": 1}  # the caller's mapping is not changed
    assert (await queue.stats())["depth"] == 2


async def test_after_the_dedupe_window_an_id_is_accepted_again(
    rung_stack: RungStack, stream: str
) -> None:
    async with rung.Queue(rung_stack.queue_url, stream=stream, dedupe_window=0.2) as queue:
        event_id = await queue.put({"n": 1})
        async with aioredis.Redis.from_url(rung_stack.queue_url) as r:
            await poll(lambda: _gone(r, f"{stream}:id:{event_id}"))
        await queue.put({"id": event_id, "n": 1})
        assert (await queue.stats())["depth"] == 2


async def _gone(r: aioredis.Redis, key: str) -> bool:
    return await r.exists(key) == 0


async def test_a_repeated_put_needs_no_room_in_a_full_queue(
    rung_stack: RungStack, stream: str
) -> None:
    async with rung.Queue(rung_stack.queue_url, stream=stream, max_depth=2) as queue:
        ids = await queue.put_many([{"n": 1}, {"n": 2}])
        with pytest.raises(rung.QueueFull):
            await queue.put({"n": 3})
        assert await queue.put_many([{"id": i} for i in ids]) == ids  # already in: no error
        assert (await queue.stats())["depth"] == 2


async def test_put_many_that_does_not_fit_accepts_none_of_it(
    rung_stack: RungStack, stream: str
) -> None:
    """Three chunks, room for two: QueueFull, and not one event in, because the first chunk
    checks the room for the whole call."""
    async with rung.Queue(rung_stack.queue_url, stream=stream, max_depth=2 * CHUNK_EVENTS) as q:
        with pytest.raises(rung.QueueFull):
            await q.put_many([{"n": i} for i in range(2 * CHUNK_EVENTS + 1)])
        assert (await q.stats())["depth"] == 0
        assert (
            len(await q.put_many([{"n": i} for i in range(2 * CHUNK_EVENTS)])) == 2 * CHUNK_EVENTS
        )


# --- a hung queue Redis ---------------------------------------------------------------------


async def test_puts_to_a_frozen_redis_raise_unavailable_and_retries_by_id_add_each_once(
    rung_stack: RungStack, stream: str
) -> None:
    """SIGSTOP the queue Redis: every put raises QueueUnavailable naming its id. The
    control: after SIGCONT, Redis runs the scripts it had received, so some of those failed
    puts landed anyway (a retry without the id would add them twice). Retrying each failed
    put with its reported id leaves every event in the stream exactly once."""
    async with rung.Queue(rung_stack.queue_url, stream=stream, timeout=0.5) as queue:
        accepted = await asyncio.gather(*(queue.put({"n": -i}) for i in range(1, 9)))  # 8 conns
        events = [{"n": i} for i in range(12)]
        rung_stack.freeze("queue")
        try:
            outcomes = await asyncio.gather(*(queue.put(e) for e in events[:8]),
                                            return_exceptions=True)  # fmt: skip
            outcomes += [await _outcome(queue.put(e)) for e in events[8:]]
        finally:
            rung_stack.thaw("queue")
        assert all(isinstance(o, rung.QueueUnavailable) for o in outcomes), outcomes
        failed = [o.ids for o in outcomes if isinstance(o, rung.QueueUnavailable)]
        assert all(len(ids) == 1 for ids in failed)
        failed_ids = [ids[0] for ids in failed]

        async def some_landed() -> bool:
            return bool(set(failed_ids) & set(await ids_in_stream(rung_stack, stream)))

        await poll(some_landed)  # the hazard is real
        for event, event_id in zip(events, failed_ids, strict=True):
            assert await queue.put({**event, "id": event_id}) == event_id

    seen = await ids_in_stream(rung_stack, stream)
    assert seen == {i: 1 for i in [*accepted, *failed_ids]}


async def _outcome(aw: Any) -> Any:
    try:
        return await aw
    except rung.QueueError as e:
        return e


# --- big batches ----------------------------------------------------------------------------

BIG = 400_000


async def test_a_call_the_client_gave_up_on_still_lands_in_full(
    rung_stack: RungStack, stream: str
) -> None:
    """The control for the big-batch tests: one script call carrying 400,000 events, sent in
    full and abandoned by its client before the reply (as a timeout abandons it), is still
    run by Redis, every event of it. A client that gave up knows nothing about what landed."""
    script = "for i = 1, #ARGV do redis.call('XADD', KEYS[1], '*', 'e', ARGV[i]) end"
    args = [b"EVAL", script.encode(), b"1", stream.encode(), *[b'{"n":%d}' % i for i in range(BIG)]]
    host, port = rung_stack.queue_url.removeprefix("redis://").split("/")[0].split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(_resp(args))
    await writer.drain()
    writer.close()  # gives up without reading a reply
    await writer.wait_closed()
    async with aioredis.Redis.from_url(rung_stack.queue_url, socket_timeout=60.0) as r:
        await poll(lambda: _length_is(r, stream, BIG), within=60.0)
        await r.delete(stream)


async def _length_is(r: aioredis.Redis, stream: str, n: int) -> bool:
    try:
        return await r.xlen(stream) == n
    except redis.RedisError:  # BUSY: still running that script
        return False


def _resp(args: Sequence[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out += [b"$%d\r\n" % len(a), a, b"\r\n"]
    return b"".join(out)


async def test_put_many_of_400000_events_with_a_1s_timeout_lands_each_once(
    rung_stack: RungStack, stream: str
) -> None:
    """In chunks, each a call Redis runs in milliseconds: either every event is accepted,
    or QueueUnavailable says which might have landed and a retry of those adds none twice."""
    events = [{"n": i} for i in range(BIG)]
    async with rung.Queue(rung_stack.queue_url, stream=stream, timeout=1.0,
                          max_depth=10 * BIG) as queue:  # fmt: skip
        await _put_all(queue, events)
    seen = await ids_in_stream(rung_stack, stream)
    assert len(seen) == BIG  # distinct ids ...
    assert sum(seen.values()) == BIG  # ... and as many entries


async def test_put_many_cut_by_a_frozen_redis_reports_the_ids_to_put_again(
    rung_stack: RungStack, stream: str
) -> None:
    """SIGSTOP the queue Redis while put_many(400,000) is under way: QueueUnavailable's
    `ids` are the tail of the call; every event before them is in the stream, none after
    the first chunk of them is; putting the tail again with its ids completes the stream,
    each event once."""
    events = [{"n": i} for i in range(BIG)]
    async with rung.Queue(rung_stack.queue_url, stream=stream, timeout=1.0,
                          max_depth=10 * BIG) as queue, \
               aioredis.Redis.from_url(rung_stack.queue_url) as r:  # fmt: skip
        await r.ping()  # connected before the load begins
        putting = asyncio.create_task(queue.put_many(events))
        await poll(lambda: _length_is_over(r, stream, 10 * CHUNK_EVENTS))
        rung_stack.freeze("queue")
        try:
            with pytest.raises(rung.QueueUnavailable) as raised:
                await putting
        finally:
            rung_stack.thaw("queue")
        tail = raised.value.ids
        head = BIG - len(tail)
        assert 0 < len(tail) < BIG
        seen = await ids_in_stream(rung_stack, stream)
        assert len(seen) >= head  # all before the tail ...
        assert not set(tail[CHUNK_EVENTS:]) & set(seen)  # ... none past its first chunk
        retried = await queue.put_many(
            [{**e, "id": i} for e, i in zip(events[head:], tail, strict=True)]
        )
        assert retried == tail
    seen = await ids_in_stream(rung_stack, stream)
    assert len(seen) == BIG
    assert set(seen.values()) == {1}


async def _length_is_over(r: aioredis.Redis, stream: str, n: int) -> bool:
    return await r.xlen(stream) > n


async def _put_all(queue: rung.Queue, events: list[dict[str, Any]]) -> None:
    """put_many, and on QueueUnavailable the tail again with its ids, until all is in."""
    for _ in range(5):
        try:
            await queue.put_many(events)
            return
        except rung.QueueUnavailable as e:
            head = len(events) - len(e.ids)
            events = [{**ev, "id": i} for ev, i in zip(events[head:], e.ids, strict=True)]
    raise AssertionError("put_many kept failing")
