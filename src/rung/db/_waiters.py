"""Callers waiting in line for a connection: first come, first served, each with its own
deadline (psycopg_pool's `WaitingClient` model).

    waiter = line.join(5.0)            # in line now, until 5 s from now
    conn = await waiter.wait()         # what `line.hand(conn)` gave it, or the line's timeout error

A waiter is a future that whoever frees a connection resolves, and a timer on the loop that
fails it at its deadline: no task is cancelled from another task, and nothing ticks while
nobody waits. What is handed to a waiter whose caller is cancelled at that moment goes to the
next waiter, or back to the owner (`returned`): it is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Waiter(Generic[T]):
    """One caller in line (from `Line.join`)."""

    __slots__ = ("_future", "_line", "_timer")

    def __init__(self, line: Line[T], future: asyncio.Future[T], timer: asyncio.TimerHandle):
        self._line = line
        self._future = future
        self._timer = timer

    async def wait(self) -> T:
        """What was handed to this waiter; the line's timeout error once its deadline
        passes, or the error `Line.fail` gave it."""
        try:
            return await self._future
        except asyncio.CancelledError:
            self._line._left(self._future)
            raise
        finally:
            self._timer.cancel()


class Line(Generic[T]):
    """A FIFO of waiters. `expired()` makes the error a waiter gets at its deadline;
    `returned(item)` takes back an item handed to a waiter that had just been cancelled,
    when nobody else waits."""

    def __init__(self, *, expired: Callable[[], Exception], returned: Callable[[T], None]):
        self._expired = expired
        self._returned = returned
        self._queue: deque[asyncio.Future[T]] = deque()

    def __len__(self) -> int:
        """Waiters in line now."""
        return len(self._queue)

    def join(self, seconds: float) -> Waiter[T]:
        """A new waiter at the back of the line, failed `seconds` from now unless served."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(future)
        return Waiter(self, future, loop.call_later(seconds, self._expire, future))

    def hand(self, item: T) -> bool:
        """Give `item` to the first waiter still waiting; False when there is none (the
        caller keeps it)."""
        while self._queue:
            future = self._queue.popleft()
            if not future.done():  # a cancelled one leaves the line when its task resumes
                future.set_result(item)
                return True
        return False

    def fail(self, error: Exception) -> bool:
        """`error` for the first waiter still waiting (what fetching its connection
        raised); False when there is none."""
        while self._queue:
            future = self._queue.popleft()
            if not future.done():
                future.set_exception(error)
                return True
        return False

    def fail_all(self, error: Callable[[], Exception]) -> None:
        """Each waiter gets its own `error()`: the owner is closing."""
        while self.fail(error()):
            pass

    def _expire(self, future: asyncio.Future[T]) -> None:
        if not future.done():
            self._queue.remove(future)
            future.set_exception(self._expired())

    def _left(self, future: asyncio.Future[T]) -> None:
        """The waiter's caller was cancelled."""
        if future.cancelled():  # still in line
            with contextlib.suppress(ValueError):  # `hand` may have skipped it already
                self._queue.remove(future)
        elif future.exception() is None:  # handed an item at the same moment: pass it on
            item = future.result()
            if not self.hand(item):
                self._returned(item)
