"""RUNG104: a cache in process memory: a cache decorator on a request path, a cache object
made at module level, an in-memory cache backend."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _called_name, _Function, _is_route, _mem_url

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG104", "process-cache",
    "A cache lives in process memory: each instance fills its own and no invalidation "
    "reaches the others.",
    "Use rung.Cache (Redis, leases, invalidation after commit); keep functools caches for "
    "pure functions of their arguments.",
)  # fmt: skip

_DECORATORS = {
    "functools.lru_cache", "functools.cache", "cachetools.cached", "cachetools.func.ttl_cache",
    "cachetools.func.lru_cache", "async_lru.alru_cache", "alru_cache",
}  # fmt: skip
_IO_CALLS = {"execute", "fetch", "fetchrow", "fetchval", "fetchall", "fetchone", "query",
             "urlopen", "request", "read_text", "read_bytes"}  # fmt: skip
_IO_MODULES = ("requests", "httpx", "urllib", "open")
# I/O that a helper of the module does for a cached function: the network or a database
# (a file read through a helper is usually configuration, the same everywhere)
_REMOTE_CALLS = _IO_CALLS - {"read_text", "read_bytes"}
_REMOTE_MODULES = ("requests", "httpx", "urllib")
_HELPER_DEPTH = 3
_DJANGO_CACHE_WRITES = {
    f"django.core.cache.cache.{method}"
    for method in ("set", "add", "set_many", "get_or_set", "incr", "decr", "touch")
}
# Settings whose value picks a cache in this process: what it does.
_BACKENDS = {
    "django.core.cache.backends.locmem.LocMemCache": "the cache is in this process's memory"
}


def on_function(ctx: ModuleContext, fn: _Function) -> None:
    for decorator in fn.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = ctx.qualname(target)
        if name in _DECORATORS and _request_path(ctx, fn):
            ctx.report(decorator, RULE.id, f"{name} on {fn.name}() caches per process")


def on_module_cache(ctx: ModuleContext, stmt: ast.stmt, name: str) -> None:
    ctx.report(stmt, RULE.id, f"'{name}' is a cache object in process memory")


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    if name.rsplit(".", 1)[-1] == "setup" and _mem_url(call):
        ctx.report(call, RULE.id, "an in-memory (mem://) cache backend is per process")
    elif fn is not None and ctx.django_cache_local and _django_cache_write(ctx, call, name):
        ctx.state(call, fn, RULE.id, f"{fn.name}() fills Django's cache, which the settings keep "
                  "in each process (LocMemCache)")  # fmt: skip


def on_string(ctx: ModuleContext, node: ast.expr, value: str) -> None:
    what = _BACKENDS.get(value)
    if what is not None:
        ctx.setting(node, RULE.id, value, what)


def _django_cache_write(ctx: ModuleContext, call: ast.Call, name: str) -> bool:
    """`cache.set(...)`, `caches["default"].set(...)`: a write to Django's default cache."""
    if name in _DJANGO_CACHE_WRITES:
        return True
    func = call.func
    return (
        isinstance(func, ast.Attribute) and isinstance(func.value, ast.Subscript)
        and ctx.qualname(func.value.value) == "django.core.cache.caches"
        and isinstance(func.value.slice, ast.Constant) and func.value.slice.value == "default"
        and f"django.core.cache.cache.{func.attr}" in _DJANGO_CACHE_WRITES
    )  # fmt: skip


def _request_path(ctx: ModuleContext, fn: _Function) -> bool:
    """Is this cached function on a request path rather than a pure helper? An async
    function, a route handler, or one with arguments that does I/O, or whose helpers in the
    module (up to three calls deep) reach the network or a database."""
    if isinstance(fn, ast.AsyncFunctionDef):
        return True
    if _is_route(fn):
        return True
    if not (fn.args.args or fn.args.kwonlyargs or fn.args.posonlyargs):
        return False  # a zero-argument cache is a lazy singleton (settings, a client)
    if _does_io(ctx, fn, _IO_CALLS, _IO_MODULES):
        return True
    seen: set[str] = {fn.name}
    helpers: list[_Function] = [fn]
    for _ in range(_HELPER_DEPTH):  # the module's helpers it calls, and theirs
        called = {_called_name(n) for h in helpers for n in ast.walk(h) if isinstance(n, ast.Call)}
        helpers = [ctx.defined[name] for name in called - seen if name in ctx.defined]
        if any(_does_io(ctx, helper, _REMOTE_CALLS, _REMOTE_MODULES) for helper in helpers):
            return True
        seen |= called
    return False


def _does_io(
    ctx: ModuleContext, fn: _Function, calls: set[str] | frozenset[str], modules: tuple[str, ...]
) -> bool:
    """Does `fn` itself call one of `calls` (by last name) or a function of `modules`?"""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            name = ctx.qualname(node.func)
            if name.rsplit(".", 1)[-1] in calls or name.split(".")[0] in modules:
                return True
    return False
