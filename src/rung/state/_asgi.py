"""The ASGI vocabulary rung's middleware needs (Starlette's `types.py`, without Starlette)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies (the first of each name wins). Values are the header's raw
    bytes decoded as latin-1, which never fails: `value.encode("latin-1")` gives the bytes
    the client sent back exactly (compare those, not the text)."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            key, sep, val = pair.strip().partition("=")
            if sep and key and key not in out:
                out[key] = val.strip().strip('"')
    return out
