"""The in-process flight registry: who may join a load, and that close() ends every task it
recorded, detached loads and refreshes included (pure asyncio, no Redis)."""

import asyncio
from typing import Any

import pytest

from rung.cache import flights

Flight = flights.Flight
Flights = flights.Flights


async def forever(_flight: Flight | None = None) -> Any:
    await asyncio.Event().wait()


async def test_a_caller_joins_only_a_load_that_observes_its_token() -> None:
    flights = Flights()
    flight = flights.start("k", (), "0/10", forever)
    assert flights.joinable("k", None) is flight
    assert flights.joinable("k", "0/10") is flight
    assert flights.joinable("k", "0/11") is None  # must see a later write than the load
    flight.observed = "0/20"  # the lease brought a later token
    assert flights.joinable("k", "0/11") is flight
    await flights.close()


async def test_detached_loads_take_no_joiners_and_close_still_ends_them() -> None:
    flights = Flights()
    a = flights.start("a", ("t",), None, forever)
    b = flights.start("b", ("u",), None, forever)
    c = flights.start("c", (), None, forever)
    flights.detach_tagged(["t"])
    flights.detach("c")
    assert (flights.joinable("a", None), flights.joinable("b", None)) == (None, b)
    assert flights.joinable("c", None) is None
    waiting = asyncio.create_task(flights.wait(a))
    async with asyncio.timeout(10.0):
        await flights.close()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert all(f.task.cancelled() for f in (a, b, c))


async def test_a_key_loading_or_refreshing_is_not_refreshed_again() -> None:
    flights = Flights()
    flights.start("loading", (), None, forever)
    assert not flights.refresh("loading", forever)
    assert flights.refresh("k", forever)
    assert not flights.refresh("k", forever)
    async with asyncio.timeout(10.0):
        await flights.close()
    assert flights.refresh("k", forever)  # the refresh ended with close()
    async with asyncio.timeout(10.0):
        await flights.close()


async def test_a_load_that_fails_does_not_stay_joinable() -> None:
    flights = Flights()

    async def broken(_flight: Flight) -> Any:
        raise LookupError("db said no")

    flight = flights.start("k", (), None, broken)
    with pytest.raises(LookupError):
        await flights.wait(flight)
    assert flights.joinable("k", None) is None
