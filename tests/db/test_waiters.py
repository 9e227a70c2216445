"""The line of callers waiting for a connection: order, deadlines, and nothing lost when a
waiter is cancelled or times out just as it is served."""

import asyncio

import pytest

from rung.db import waiters
from tests.helpers import poll


class Expired(Exception):
    pass


def _line(returned: list[str] | None = None) -> waiters.Line[str]:
    back = returned if returned is not None else []
    return waiters.Line(expired=lambda: Expired("no item in time"), returned=back.append)


async def _waiting(line: waiters.Line[str], seconds: float = 30.0) -> str:
    return await line.join(seconds).wait()


async def _in_line(line: waiters.Line[str], count: int) -> list[asyncio.Task[str]]:
    """`count` waiters, each in its own task, joined in the order of the list."""
    tasks = []
    for n in range(1, count + 1):
        tasks.append(asyncio.create_task(_waiting(line)))
        await poll(lambda n=n: len(line) == n)
    return tasks


async def test_waiters_are_served_first_come_first_served() -> None:
    line = _line()
    tasks = await _in_line(line, 3)
    for item in ("a", "b", "c"):
        assert line.hand(item)
    assert await asyncio.gather(*tasks) == ["a", "b", "c"]
    assert not line.hand("d")  # nobody waits: the caller keeps it


async def test_a_waiter_past_its_deadline_gets_the_lines_error_and_leaves() -> None:
    line = _line()
    with pytest.raises(Expired):
        await _waiting(line, 0.01)
    assert len(line) == 0
    assert not line.hand("a")


async def test_an_item_skips_a_waiter_that_timed_out() -> None:
    line = _line()
    early = asyncio.create_task(_waiting(line, 0.01))
    later = asyncio.create_task(_waiting(line))
    with pytest.raises(Expired):
        await early
    assert line.hand("a")
    assert await later == "a"


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    line = _line()
    (task,) = await _in_line(line, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(line) == 0
    assert not line.hand("a")


async def test_an_item_handed_to_a_waiter_cancelled_at_that_moment_goes_to_the_next() -> None:
    """The item is set on the first waiter's future, then its task is cancelled before it
    resumes: it raises CancelledError, and the item goes on to the second."""
    returned: list[str] = []
    line = _line(returned)
    first, second = await _in_line(line, 2)
    assert line.hand("a")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "a"
    assert returned == []


async def test_an_item_handed_to_the_last_waiter_cancelled_at_that_moment_is_returned() -> None:
    returned: list[str] = []
    line = _line(returned)
    (only,) = await _in_line(line, 1)
    assert line.hand("a")
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    assert returned == ["a"]


async def test_a_failure_goes_to_the_first_waiter_only() -> None:
    line = _line()
    first, second = await _in_line(line, 2)
    assert line.fail(ConnectionRefusedError())
    with pytest.raises(ConnectionRefusedError):
        await first
    assert line.hand("a")
    assert await second == "a"


async def test_fail_all_gives_each_waiter_its_own_error() -> None:
    line = _line()
    tasks = await _in_line(line, 3)
    line.fail_all(lambda: Expired("closing"))
    errors = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(e) for e in errors] == [Expired] * 3
    assert len({id(e) for e in errors}) == 3
    assert len(line) == 0
