"""The errors rung knows, as HTTP answers: 503 with `Retry-After` and a JSON body naming the
cause, never a 500. Each means "try again shortly": a pool stayed full, the primary or
the queue cannot be reached, a statement ran past its bound, the queue is full.
`AfterCommitFailed` is a 503 too, without `Retry-After` and with `"committed": true`: the
write committed, but an invalidation after it failed, so a cached copy may be stale until
it expires; a client must not simply send a POST again.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rung.errors import (
    AfterCommitFailed,
    CacheUnavailable,
    NoHealthyNode,
    PoolTimeout,
    PrimaryUnavailable,
    QueueFull,
    QueueUnavailable,
    RungError,
    StatementTimeout,
)

RETRY_AFTER = {
    PoolTimeout: 1,
    PrimaryUnavailable: 2,
    NoHealthyNode: 2,
    StatementTimeout: 1,
    QueueUnavailable: 2,
    QueueFull: 5,
    CacheUnavailable: 1,
    AfterCommitFailed: 1,
}


async def unavailable(request: Request, exc: Exception) -> Response:
    kind = next(k for k in RETRY_AFTER if isinstance(exc, k))
    assert isinstance(exc, RungError)
    if isinstance(exc, AfterCommitFailed):  # no Retry-After: a retried POST would write twice
        body = {"error": kind.__name__, "detail": str(exc), "committed": True}
        return JSONResponse(body, status_code=503)
    return JSONResponse(
        {"error": kind.__name__, "detail": str(exc)},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER[kind])},
    )
