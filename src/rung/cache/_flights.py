"""In-process single-flight: at most one joinable load per key, and a record of every task
the cache starts, so that `close()` can end them all.

    flight = flights.joinable(key, token) or flights.start(key, tags, token, fill)
    value = await flights.wait(flight)

A load runs in a task of its own: a caller that is cancelled (a client hung up) leaves the
load to finish for the others. A load detached by a write (`detach`) no longer takes
joiners but runs on, still recorded, until it ends or `close()` ends it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from rung.db import _lsn as lsn

log = logging.getLogger("rung.cache")

Fill = Coroutine[Any, Any, Any]


@dataclass(slots=True)
class Flight:
    """One load in progress in this process; callers of the same key join it. `observed`
    is the consistency token the load observes: it rises when the lease brings one."""

    tags: tuple[str, ...]
    observed: str | None
    task: asyncio.Task[Any] = field(init=False)


class Flights:
    def __init__(self) -> None:
        self._joinable: dict[str, Flight] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # all of the above, detached ones too

    def joinable(self, key: str, token: str | None) -> Flight | None:
        """The load of `key` in progress, unless this caller's context must see a later
        write than the load observes (read-your-writes)."""
        flight = self._joinable.get(key)
        if flight is None or token is None:
            return flight
        return flight if lsn.later(flight.observed, token) == flight.observed else None

    def start(
        self, key: str, tags: tuple[str, ...], observed: str | None,
        fill: Callable[[Flight], Fill],
    ) -> Flight:  # fmt: skip
        """Run `fill(flight)` as the load of `key` that later callers join."""
        flight = Flight(tags, observed)
        flight.task = self._spawn(fill(flight), functools.partial(self._landed, key, flight))
        self._joinable[key] = flight
        return flight

    @staticmethod
    async def wait(flight: Flight) -> Any:
        """The load's result; cancelling this caller leaves the load running."""
        return await asyncio.shield(flight.task)

    def refresh(self, key: str, fill: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run `fill()` in the background as an early refresh of `key`; False (and nothing
        run) when `key` is loading or refreshing already."""
        if key in self._refreshing or key in self._joinable:
            return False
        self._refreshing[key] = self._spawn(fill(), functools.partial(self._refreshed, key))
        return True

    def detach(self, key: str) -> None:
        """Later callers of `key` start a new load instead of joining this one."""
        self._joinable.pop(key, None)

    def detach_tagged(self, tags: Iterable[str]) -> None:
        """`detach` every load whose entry would carry one of `tags`."""
        tags = set(tags)
        for key, flight in list(self._joinable.items()):
            if not tags.isdisjoint(flight.tags):
                del self._joinable[key]

    async def close(self) -> None:
        """Cancel every task and wait until each has ended, those started meanwhile too.
        Their callers see a cancellation."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            # each task's discard callback was added before gather's, so it has run
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, fill: Fill, landed: Callable[[asyncio.Task[Any]], None]) -> asyncio.Task[Any]:
        task = asyncio.create_task(fill)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(landed)
        return task

    def _landed(self, key: str, flight: Flight, task: asyncio.Task[Any]) -> None:
        if self._joinable.get(key) is flight:
            del self._joinable[key]
        if not task.cancelled():
            task.exception()  # retrieved: every caller that wanted it has it

    def _refreshed(self, key: str, task: asyncio.Task[Any]) -> None:
        del self._refreshing[key]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("early refresh of %r failed: %r", key, error)
