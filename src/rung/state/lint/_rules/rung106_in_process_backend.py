"""RUNG106: a backend that keeps its data in the process: a rate limiter on memory storage,
a Socket.IO server with no message queue, Flask-Caching's SimpleCache, in-memory SQLite."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG106", "in-process-backend",
    "A backend that keeps its data in this process: a rate limiter on memory storage, "
    "Flask-Caching's SimpleCache, an in-memory SQLite database, a Socket.IO server with no "
    "message queue. Each instance counts, caches or broadcasts on its own.",
    "Point it at Redis (a storage_uri, a message_queue, a cache URL) or PostgreSQL; derived "
    "data in rung.Cache.",
)  # fmt: skip

_MEMORY_SQLITE = {"sqlite://": "in-memory", "sqlite:///:memory:": "in-memory"}  # SQLite URLs
_CACHE_TYPES = {"simple", "SimpleCache"}  # Flask-Caching's, in this process
# What counts in Django's cache: per process where the settings keep it there (LocMemCache)
_COUNTS_IN_CACHE = {
    "axes.handlers.cache.AxesCacheHandler": "django-axes counts failed logins",
    "rest_framework.throttling.ScopedRateThrottle": "DRF counts requests for its rate limits",
    "rest_framework.throttling.AnonRateThrottle": "DRF counts requests for its rate limits",
    "rest_framework.throttling.UserRateThrottle": "DRF counts requests for its rate limits",
}


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    """A rate limiter, or a Socket.IO server, that keeps its state in this process."""
    given = {k.arg: k.value for k in call.keywords if k.arg}
    if name.startswith(("flask_limiter", "slowapi")) and name.endswith("Limiter"):
        storage = given.get("storage_uri")
        if storage is None:
            ctx.report(call, RULE.id, "a rate limiter with no storage_uri counts in process "
                       "memory (config-dependent: safe when RATELIMIT_STORAGE_URI names "
                       "Redis)", safe_when="RATELIMIT_STORAGE_URI")  # fmt: skip
        elif isinstance(storage, ast.Constant) and str(storage.value).startswith("memory"):
            ctx.report(call, RULE.id, "a rate limiter on memory:// counts per process")
    elif name.startswith("quart_rate_limiter") and "store" not in given:
        ctx.report(call, RULE.id, "RateLimiter with no store counts in process memory")
    elif name in ("socketio.AsyncServer", "socketio.Server") and "client_manager" not in given:
        ctx.report(call, RULE.id, f"{name}() with no client_manager broadcasts to this "
                   "instance's clients only")  # fmt: skip
    elif name == "flask_socketio.SocketIO" and "message_queue" not in given:
        ctx.report(call, RULE.id, "SocketIO() with no message_queue broadcasts to this "
                   "instance's clients only")  # fmt: skip


def on_string(ctx: ModuleContext, node: ast.expr, value: str) -> None:
    if value in _MEMORY_SQLITE:
        ctx.setting(node, RULE.id, value, "an in-memory SQLite URL: each process has its own "
                    "database")  # fmt: skip
    elif value in _COUNTS_IN_CACHE and ctx.django_cache_local:
        ctx.setting(node, RULE.id, value, f"{_COUNTS_IN_CACHE[value]} in Django's cache, which "
                    "the settings keep in each process (LocMemCache)")  # fmt: skip


def on_assigned(ctx: ModuleContext, name: str, value: ast.expr, fn: _Function | None) -> None:
    if name == "CACHE_TYPE" and isinstance(value, ast.Constant) and value.value in _CACHE_TYPES:
        ctx.report(value, RULE.id, f"CACHE_TYPE {value.value!r} keeps the cache in this "
                   "process's memory")  # fmt: skip
