"""What a node counts as "gone", and how it judges a replica's replay from the monitor's polls."""

from typing import Any, cast

import asyncpg
import pytest

from rung.db.node import Connection, Node, is_connection_error


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
