"""What a failed sink write means, and so what the drain does about it.

    fault = classify(error)      # Fault.OUTAGE, Fault.ROWS or Fault.BATCH

- `OUTAGE`: the database cannot take the write now (connection lost, pool full, the
  primary gone or shutting down, out of resources, a serialization failure or deadlock, a
  lock or statement timeout). Nothing is wrong with the rows: the drain keeps the batch and
  writes it again after a growing pause, never splits it, and never counts it toward
  dead-lettering.
- `ROWS`: the error points at the data: some row made the statement fail (a value that does
  not fit, a constraint, a too-large indexed value, a trigger's RAISE, ...). The drain
  splits the batch at once, so the good rows are written and the bad ones go on alone
  toward the dead letters.
- `BATCH`: the statement failed as a whole for a reason no row explains (a missing table
  or column, a permission, an error in the sink's own code). Tried again as a whole a few
  times (`BATCH_TRIES`), then split like `ROWS`, so no batch is redelivered forever.
"""

from __future__ import annotations

import enum

import asyncpg

from rung.errors import AfterCommitFailed, DatabaseError, InvalidToken

BATCH_TRIES = 3  # whole-batch attempts before a BATCH fault splits the batch

# SQLSTATEs (whole codes, or two-letter classes) of OUTAGE: 08 connection exception,
# 53 insufficient resources, 58 system error (I/O), 40001 serialization failure, 40P01
# deadlock, 55P03 lock not available, 57014 query canceled (a statement timeout),
# 57P01-57P03 shutting down or not accepting connections, 25006 read-only transaction
# (the primary is a standby now).
_OUTAGE = ("08", "53", "58", "40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03",
           "25006")  # fmt: skip

# SQLSTATE classes of BATCH: 0A feature not supported, 25 invalid transaction state, 3D/3F
# invalid database/schema, 42 syntax error or access rule violation, XX internal error.
_BATCH = ("0A", "25", "3D", "3F", "42", "XX")


class Fault(enum.Enum):
    OUTAGE = "outage"
    ROWS = "rows"
    BATCH = "batch"


def classify(error: BaseException) -> Fault:
    """The fault behind `error`, raised by a sink's write (see the module docstring)."""
    if isinstance(error, DatabaseError):
        # rung.Database could not get the statement through (pool, primary, timeout); the
        # two that are about the caller's input are not outages.
        bad_input = isinstance(error, (InvalidToken, AfterCommitFailed))
        return Fault.BATCH if bad_input else Fault.OUTAGE
    if isinstance(error, asyncpg.PostgresError):
        sqlstate = getattr(error, "sqlstate", None) or ""
        if sqlstate.startswith(_OUTAGE):
            return Fault.OUTAGE
        return Fault.BATCH if sqlstate.startswith(_BATCH) or not sqlstate else Fault.ROWS
    if isinstance(error, OSError | asyncpg.InternalClientError):
        # OSError covers a refused or reset connection and TimeoutError; asyncpg's
        # InternalClientError is a protocol out of step with the server (asyncpg#1069).
        return Fault.OUTAGE
    return Fault.BATCH


class Backoff:
    """Pauses that double from `first` up to `most` seconds, back to `first` on `reset()`.

    >>> b = Backoff(first=0.05, most=0.2); [b.next() for _ in range(4)]
    [0.05, 0.1, 0.2, 0.2]
    """

    def __init__(self, *, first: float, most: float) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        pause = self._next
        self._next = min(self.most, pause * 2)
        return pause

    def reset(self) -> None:
        self._next = self.first
