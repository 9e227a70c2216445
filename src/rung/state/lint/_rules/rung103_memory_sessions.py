"""RUNG103: sessions kept in process memory."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function

if TYPE_CHECKING:
    from rung.state.lint._context import Change, ModuleContext

RULE = Rule(
    "RUNG103", "memory-session-store",
    "Sessions are kept in process memory: a user's next request on another instance has no "
    "session.",
    "Use rung.SessionMiddleware: sessions in Redis, behind a signed cookie.",
)  # fmt: skip

_SESSION_STORES = ("InMemoryBackend", "InMemoryStore", "MemoryStore", "InMemorySessionStore")
# Django's session engines that keep sessions in the cache (cached_db reads them there first)
_CACHED_SESSIONS = {
    "django.contrib.sessions.backends.cache", "django.contrib.sessions.backends.cached_db",
}  # fmt: skip


def on_change(ctx: ModuleContext, change: Change) -> None:
    """A module container whose name says it keeps sessions, changed in a function."""
    if change.session is not None:
        kept = change.what.removeprefix("module-level ")
        ctx.report(change.node, RULE.id, f"sessions kept in the module {kept} "
                   f"(changed in {change.fn.name}())")  # fmt: skip


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    last = name.rsplit(".", 1)[-1]
    if last in _SESSION_STORES:
        ctx.report(call, RULE.id, f"{last}() keeps sessions in process memory")


def on_string(ctx: ModuleContext, node: ast.expr, value: str) -> None:
    if value in _CACHED_SESSIONS and ctx.django_cache_local:
        ctx.setting(node, RULE.id, value, "sessions are read from Django's cache, which the "
                    "settings keep in each process (LocMemCache)")  # fmt: skip
