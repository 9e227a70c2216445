"""rung/_aio.py: a deadline that holds against code that swallows a cancellation."""

import asyncio
import contextlib

import pytest

from rung._aio import deadline


async def swallows_one_cancellation() -> str:
    """What redis-py's connect can do on 3.11: eat a cancellation, then wait on."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(10)
    await asyncio.sleep(10)
    return "finished"


async def test_a_deadline_holds_against_a_swallowed_cancellation() -> None:
    """asyncio.timeout would wait the second sleep out; the deadline cancels again."""
    with pytest.raises(TimeoutError):
        async with deadline(0.05):
            await swallows_one_cancellation()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_result_in_time_is_kept() -> None:
    async with deadline(5.0):
        result = await asyncio.sleep(0, "done")
    assert result == "done"


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def guarded() -> None:
        async with deadline(5.0):
            await asyncio.sleep(10)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
