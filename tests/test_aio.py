"""rung/_aio.py: a deadline that holds against code that swallows a cancellation."""

import asyncio
import contextlib

import pytest

from rung import aio


async def swallows_one_cancellation() -> str:
    """What redis-py's connect can do on 3.11: eat a cancellation, then wait on."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(10)
    await asyncio.sleep(10)
    return "finished"


async def test_a_deadline_holds_against_a_swallowed_cancellation() -> None:
    """asyncio.timeout would wait the second sleep out; the deadline cancels again."""
    with pytest.raises(TimeoutError):
        async with aio.deadline(0.05):
            await swallows_one_cancellation()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_result_in_time_is_kept() -> None:
    async with aio.deadline(5.0):
        result = await asyncio.sleep(0, "done")
    assert result == "done"


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def guarded() -> None:
        async with aio.deadline(5.0):
            await asyncio.sleep(10)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_outside_swallowed_inside_is_raised_at_the_end() -> None:
    """The block eats the cancellation and returns (redis-py on 3.11 can): the task was
    still asked to stop, so the block's end raises it. Without this, a drain cancelled
    while it read from Redis ran on (and waited forever for a handler that never ended)."""

    async def eats_it() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return "finished"

    after: list[str] = []

    async def guarded() -> None:
        async with aio.deadline(5.0):
            await eats_it()
        after.append("ran on")

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert after == []

    # The control: asyncio.timeout lets the block end normally and the task run on.
    async def plain() -> None:
        async with asyncio.timeout(5.0):
            await eats_it()
        after.append("ran on")

    task = asyncio.create_task(plain())
    await asyncio.sleep(0)
    task.cancel()
    await task
    assert after == ["ran on"]
