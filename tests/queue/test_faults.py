"""How the drain reads a failed write (pure logic): outage, a row's fault, or the batch's."""

import asyncpg
import pytest

import rung
from rung.queue import faults


def _pg(sqlstate: str) -> asyncpg.PostgresError:
    """The asyncpg exception PostgreSQL's error `sqlstate` becomes."""
    error = asyncpg.PostgresError.new({"C": sqlstate, "M": "m", "S": "ERROR"})
    assert error.sqlstate == sqlstate
    return error


@pytest.mark.parametrize(
    "sqlstate",
    ["08006", "08003", "40001", "40P01", "53300", "53100", "57P01", "57P02", "57P03", "57014",
     "55P03", "25006", "58030"],
)  # fmt: skip
def test_connection_resource_and_concurrency_failures_are_outages(sqlstate: str) -> None:
    assert faults.classify(_pg(sqlstate)) is faults.Fault.OUTAGE


@pytest.mark.parametrize(
    "sqlstate", ["22001", "22P02", "23505", "23503", "23514", "54000", "P0001", "2200T"]
)
def test_errors_that_point_at_the_data_are_the_rows_fault(sqlstate: str) -> None:
    assert faults.classify(_pg(sqlstate)) is faults.Fault.ROWS


@pytest.mark.parametrize("sqlstate", ["42P01", "42703", "42501", "0A000", "XX000", "3F000"])
def test_errors_of_the_statement_itself_are_the_batch_fault(sqlstate: str) -> None:
    assert faults.classify(_pg(sqlstate)) is faults.Fault.BATCH


@pytest.mark.parametrize(
    "error",
    [rung.PrimaryUnavailable("down"), rung.PoolTimeout("full"), rung.NoHealthyNode("none"),
     ConnectionResetError(), TimeoutError(), asyncpg.InternalClientError("desync")],
)  # fmt: skip
def test_rungs_connection_level_errors_and_socket_errors_are_outages(error: Exception) -> None:
    assert faults.classify(error) is faults.Fault.OUTAGE


@pytest.mark.parametrize(
    "error", [RuntimeError("a bug"), KeyError("n"), rung.InvalidToken("x"), ValueError("v")]
)
def test_anything_else_is_the_batch_fault(error: Exception) -> None:
    assert faults.classify(error) is faults.Fault.BATCH


def test_backoff_doubles_up_to_its_bound_and_starts_over_after_a_reset() -> None:
    backoff = faults.Backoff(first=0.05, most=0.3)
    assert [backoff.next() for _ in range(5)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    backoff.reset()
    assert backoff.next() == 0.05
