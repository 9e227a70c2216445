"""What a node counts as "gone", how it judges a replica's replay from the monitor's polls,
and how acquires wait for a connection (on the real stack)."""

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest

import rung
from rung.db import node
from rung.testing import RungStack
from tests.helpers import poll

Connection = node.Connection
Node = node.Node
drop = node.drop
is_connection_error = node.is_connection_error


class _Conn:
    """Just enough of a connection for the classifier: whether the driver closed it."""

    def __init__(self, closed: bool) -> None:
        self.closed = closed

    def is_closed(self) -> bool:
        return self.closed


def _conn(closed: bool = False) -> Connection:
    return cast(Connection, _Conn(closed))


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (asyncpg.ConnectionDoesNotExistError(), True),
        # what a replica's shutdown can leave on an idle pooled connection (asyncpg#1069)
        (asyncpg.InternalClientError("cannot switch to state 12; another operation (2)"), True),
        (asyncpg.AdminShutdownError(), True),
        (asyncpg.CannotConnectNowError(), True),
        # the caller's mistakes and the statement's own errors
        (asyncpg.InterfaceError("the server expects 1 argument for this query"), False),
        (asyncpg.exceptions._base.DataError("invalid input for query argument $1"), False),
        (asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"), False),
        (asyncpg.UndefinedTableError(), False),
        (asyncpg.ReadOnlySQLTransactionError(), False),
        (ConnectionResetError(), False),  # not the driver's: it left the connection open
        (ValueError(), False),
    ],
)
def test_on_an_open_connection_only_what_the_driver_says_is_broken_counts(
    error: Exception, gone: bool
) -> None:
    assert is_connection_error(error, _conn()) is gone


def test_any_error_on_a_connection_the_driver_closed_counts() -> None:
    assert is_connection_error(asyncpg.InterfaceError("connection is closed"), _conn(closed=True))


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (asyncpg.TooManyConnectionsError(), True),
        (asyncpg.InvalidPasswordError(), True),
        (ValueError(), False),
    ],
)
def test_while_connecting_any_refusal_counts(error: Exception, gone: bool) -> None:
    assert is_connection_error(error) is gone


def _replica() -> Node:
    return Node("replica1", "postgresql://x@127.0.0.1:1/x", role="replica", min_size=0,
                max_size=1, acquire_timeout=1.0)  # fmt: skip


def _poll(node: Node, replayed: int, lag_bytes: int, at: float, **more: Any) -> None:
    node.polled(replayed=replayed, lag_s=0.0 if lag_bytes == 0 else 0.2, lag_bytes=lag_bytes,
                serving=True, at=at, **more)  # fmt: skip


def test_a_replica_behind_at_two_polls_without_progress_is_stalled() -> None:
    """Paused replay shows as: behind, then still behind at the same position."""
    node = _replica()
    _poll(node, 1000, 0, at=1.0)
    _poll(node, 1000, 500, at=1.1)  # a write it has not replayed yet: not judged from one poll
    assert not node.stalled
    _poll(node, 1000, 900, at=1.2)
    assert node.stalled
    assert not node.may_reach(1500, within=0.05)
    _poll(node, 1900, 0, at=1.3)  # resumed and caught up
    assert not node.stalled
    assert node.may_reach(2500, within=0.05)


def test_a_replica_replaying_towards_a_position_is_waited_for_only_if_it_can_get_there() -> None:
    """Behind but replaying 10,000 bytes/s: 400 bytes fit in 50 ms, 4,000 do not."""
    node = _replica()
    _poll(node, 0, 2000, at=1.0)
    _poll(node, 1000, 2000, at=1.1)
    assert node.replay_rate == pytest.approx(10_000)
    assert node.may_reach(1400, within=0.05)
    assert not node.may_reach(5000, within=0.05)


def test_a_caught_up_replica_is_expected_to_replay_a_new_write() -> None:
    node = _replica()
    _poll(node, 1000, 0, at=1.0)
    assert node.may_reach(1100, within=0.05)
    assert node.may_reach(900, within=0.0)  # replayed already


def test_a_replica_that_restarted_is_only_as_far_as_it_says() -> None:
    """A standby that restarts serves again while it replays from further back: its
    position is what it says now, not the most it ever said; unreachable forgets it."""
    node = _replica()
    _poll(node, 5000, 0, at=1.0)
    _poll(node, 3000, 2000, at=1.1)
    assert node.position == 3000
    node.unreachable()
    assert node.position == 0


# --- waiting for a connection, on the real stack -------------------------------------------


@contextlib.asynccontextmanager
async def _node(url: str, *, size: int, acquire_timeout: float, min_size: int | None = None
                ) -> AsyncIterator[Node]:  # fmt: skip
    node = Node("primary", url, role="primary", min_size=size if min_size is None else min_size,
                max_size=size, acquire_timeout=acquire_timeout)  # fmt: skip
    await node.open()
    try:
        yield node
    finally:
        await node.close()


def _others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[arg-type]


async def test_waiting_acquires_are_served_first_come_first_served(rung_stack: RungStack) -> None:
    async with _node(rung_stack.primary_url, size=1, acquire_timeout=30.0) as node:
        held = await node.acquire()
        served: list[int] = []

        async def caller(i: int) -> None:
            async with node.held(await node.acquire()):
                served.append(i)

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(caller(i)))
            await poll(lambda i=i: node.waiting == i + 1)
        async with node.held(held):
            pass
        await asyncio.gather(*tasks)
    assert served == [0, 1, 2, 3, 4]


async def test_cancelling_half_the_waiters_loses_no_connection(rung_stack: RungStack) -> None:
    """40 callers wait on a pool of 4; half of them are cancelled from outside while the
    connections go round: each cancel is sent by a caller that just released its
    connection, to a random caller still running (waiting in line, or running its query)
    or to the head of the line, just handed that connection. Every other caller is
    served, every slot comes back (4 acquires at once succeed), and no task is left."""
    rng = random.Random(7)
    async with _node(rung_stack.primary_url, size=4, acquire_timeout=30.0) as node:
        gate = asyncio.Event()

        async def holder() -> None:
            async with node.held(await node.acquire()):
                await gate.wait()

        holders = [asyncio.create_task(holder()) for _ in range(4)]
        await poll(lambda: node.stats()["pool_in_use"] == 4)
        served: list[int] = []
        cancelled: set[int] = set()

        def running() -> list[int]:  # in line order: the line is first come, first served
            return [c for c in range(40) if not callers[c].done() and c not in cancelled]

        async def caller(i: int) -> None:
            async with node.held(await node.acquire()) as conn:
                served.append(i)
                await conn.fetchval("SELECT 1")
            if len(cancelled) < 20:
                await asyncio.sleep(0)  # a fetch hands the connection to the head of the line
                others = [c for c in running() if c != i]
                line = [c for c in others if c not in served]
                if others:
                    victim = line[0] if line and rng.random() < 0.5 else rng.choice(others)
                    callers[victim].cancel()
                    cancelled.add(victim)

        callers = [asyncio.create_task(caller(i)) for i in range(40)]
        await poll(lambda: node.waiting == 40)
        gate.set()  # the connections start going round
        outcomes = await asyncio.gather(*callers, return_exceptions=True)
        await asyncio.gather(*holders)
        assert len(cancelled) >= 15, "the control: most of the planned cancels were sent"
        for i, outcome in enumerate(outcomes):
            assert (
                isinstance(outcome, asyncio.CancelledError) if i in cancelled else outcome is None
            )
        assert sorted(set(served) - cancelled) == sorted(set(range(40)) - cancelled)
        assert node.waiting == 0
        again = [await node.acquire() for _ in range(4)]  # a lost slot: PoolTimeout here
        for conn in again:
            async with node.held(conn):
                pass
    assert _others() == set()


async def test_a_waiter_whose_connection_must_be_opened_on_a_hung_server_times_out(
    rung_stack: RungStack,
) -> None:
    """The one connection comes back broken while a caller waits, and the postmaster hangs:
    opening a new one for the caller hangs, and the caller gets PoolTimeout at its own
    deadline (not a connect error after a second bound). Once the server answers again the
    node serves, and closing it leaves no task."""
    async with _node(rung_stack.primary_url, size=1, min_size=0, acquire_timeout=0.5) as node:
        conn = await node.acquire()
        waiter = asyncio.create_task(node.acquire())
        await poll(lambda: node.waiting == 1)
        rung_stack.freeze("primary")
        try:
            async with node.held(conn):
                drop(conn)  # back with no connection: the waiter's must be opened
            with pytest.raises(rung.PoolTimeout):
                await waiter
        finally:
            rung_stack.thaw("primary")
        async with node.held(await node.acquire()) as again:
            assert await again.fetchval("SELECT 1") == 1
    assert _others() == set()


async def test_closing_a_node_fails_its_waiters_and_ends_its_tasks(rung_stack: RungStack) -> None:
    """A fetch for a waiter hangs on a frozen postmaster when the node is closed: the
    waiter gets a DatabaseError, the fetch is cancelled and awaited."""
    node = Node("primary", rung_stack.primary_url, role="primary", min_size=0, max_size=1,
                acquire_timeout=30.0)  # fmt: skip
    await node.open()
    conn = await node.acquire()
    waiter = asyncio.create_task(node.acquire())
    await poll(lambda: node.waiting == 1)
    rung_stack.freeze("primary")
    try:
        async with node.held(conn):
            drop(conn)  # the waiter's connection is being opened, and hangs
        await node.close()
    finally:
        rung_stack.thaw("primary")
    with pytest.raises(rung.DatabaseError, match="not open"):
        await waiter
    assert _others() == set()
