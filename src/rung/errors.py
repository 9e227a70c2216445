"""The one exception tree: everything rung raises on purpose derives from `RungError`.

    RungError
    ├── StackError                  the local stack (`rung up`) could not do what was asked
    │   ├── MissingBinary           a server binary is not installed; names the package
    │   └── ComponentFailed         a component did not start or answer; carries its log tail
    ├── DatabaseError               rung.Database
    │   ├── PoolTimeout             a pool stayed full for `acquire_timeout`
    │   ├── PrimaryUnavailable      the primary cannot be reached (writes fail fast)
    │   ├── NoHealthyNode           no node can serve the read
    │   ├── StatementTimeout        a statement ran past its timeout (a write is in doubt)
    │   ├── InvalidToken            a consistency token that is not the text of an LSN
    │   └── AfterCommitFailed       committed, but after_commit callbacks failed
    │                               (also an ExceptionGroup of their errors)
    ├── CacheError                  rung.Cache (e.g. a value orjson cannot serialize)
    │   └── CacheUnavailable        a write or invalidation could not reach Redis
    │                               (reads never raise it: they fail open)
    ├── QueueError                  rung.Queue / rung.Drain (e.g. an event that is not JSON)
    │   ├── QueueFull               `max_depth` events are accepted and not yet acknowledged
    │   └── QueueUnavailable        the queue Redis cannot be reached (fails fast)
    └── LeadershipLost              rung.Singleton.leadership(): the lease ran out mid-block

A driver's exception never leaks for a condition rung knows about: it is wrapped, and the
original is the `__cause__`. Only the driver's calls are mapped: a client-side error (a
wrong argument count) and anything the caller's own code raises pass through unchanged.

    try:
        await db.execute("UPDATE links SET disabled = true WHERE slug = $1", slug)
    except rung.PrimaryUnavailable:
        return JSONResponse({"error": "try again"}, status_code=503)
"""

from __future__ import annotations

from collections.abc import Sequence


class RungError(Exception):
    """Base of every error rung raises on purpose."""


class StackError(RungError):
    """The local stack could not do what was asked."""


class MissingBinary(StackError):
    """A server binary the stack needs is not installed."""

    def __init__(self, binary: str, package: str) -> None:
        super().__init__(
            f"'{binary}' is not installed: install the Debian package '{package}' "
            "(scripts/bootstrap does)"
        )
        self.binary = binary
        self.package = package


class ComponentFailed(StackError):
    """A component did not start, or did not answer in time."""

    def __init__(self, name: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.log_tail = log_tail


class DatabaseError(RungError):
    """rung.Database could not do what was asked."""


class PoolTimeout(DatabaseError):
    """A node's pool stayed full for `acquire_timeout` seconds."""


class PrimaryUnavailable(DatabaseError):
    """The primary cannot be reached: writes fail fast instead of hanging."""


class NoHealthyNode(DatabaseError):
    """No node could serve the read (the primary and every replica failed)."""


class StatementTimeout(DatabaseError):
    """A statement ran past its timeout (`timeout=` per call, else the Database's
    `statement_timeout`), on a server that is slow, hung or blocked. A read was tried on a
    second node first. For a write, whether it committed is unknown; a transaction it ran
    in is over."""


class InvalidToken(DatabaseError):
    """A consistency token that is not the text of a PostgreSQL LSN ('0/16B3748'). Check
    tokens from outside with `rung.Token.valid` first."""


class AfterCommitFailed(ExceptionGroup[Exception], DatabaseError):
    """The transaction committed, but `after_commit` callbacks failed. Every callback ran;
    `exceptions` holds each failure, in order; `committed` is always True.

        except* rung.CacheUnavailable: ...      # or: except rung.AfterCommitFailed as e
    """

    committed = True

    def __new__(cls, errors: Sequence[Exception]) -> AfterCommitFailed:
        return super().__new__(cls, _after_commit_message(errors), errors)

    def __init__(self, errors: Sequence[Exception]) -> None:
        super().__init__(_after_commit_message(errors), errors)

    # `except*` and `split()` build the parts with `derive`: keep them AfterCommitFailed,
    # committed and rung errors. (typeshed types it generic over the exception type.)
    def derive(self, excs: Sequence[Exception]) -> AfterCommitFailed:  # type: ignore[override]
        return AfterCommitFailed(excs)

    def __reduce__(self) -> tuple[type[AfterCommitFailed], tuple[list[Exception]]]:
        return AfterCommitFailed, (list(self.exceptions),)  # copy and pickle


def _after_commit_message(errors: Sequence[Exception]) -> str:
    return f"the transaction committed, but {len(errors)} after_commit callback(s) failed"


class CacheError(RungError):
    """rung.Cache could not do what was asked."""


class CacheUnavailable(CacheError):
    """A `set` or an invalidation could not reach the cache Redis: the old value may still
    be there. Reads never raise it; they return the loader's value (fail open)."""


class QueueError(RungError):
    """rung.Queue or rung.Drain could not do what was asked."""


class QueueFull(QueueError):
    """`max_depth` events are accepted and not yet acknowledged: back off (a web app
    answers 503 with Retry-After). Nothing accepted was dropped."""


class QueueUnavailable(QueueError):
    """The queue Redis cannot be reached; raised within the queue's `timeout`. `ids` are the
    event ids of the put that failed: some may have landed, and putting the same events
    again (with these ids) adds none twice."""

    def __init__(self, message: str, ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.ids = list(ids)


class LeadershipLost(RungError):
    """`Singleton.leadership()`: the lease could not be renewed in time, so another
    instance may lead now; the block was cancelled."""
