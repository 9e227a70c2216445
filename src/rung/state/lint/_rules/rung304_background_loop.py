"""RUNG304: a periodic loop started as a task or thread from a startup context, reported at
the `.start()` that starts it."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function, _start_of, _started_function

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG304", "background-loop",
    "A periodic loop is started as a background task or thread: every instance runs it, and "
    "it dies with its instance.",
    "Use rung.Singleton(...).every(seconds), or rung.Queue + rung.Drain for work that must "
    "not be lost.",
)  # fmt: skip

_SPAWNERS = {"asyncio.create_task", "asyncio.ensure_future", "create_task", "ensure_future",
             "threading.Thread", "start_soon"}  # fmt: skip


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    last = name.rsplit(".", 1)[-1]
    spawns = name in _SPAWNERS or last in ("create_task", "ensure_future")
    started = _started_function(call) if spawns or last in ctx.spawners else None
    if started is None:
        return
    message = f"{started}() loops forever in the background of every instance"
    at_startup = fn is None or ctx.at_startup(fn)
    if spawns and started in ctx.loops and at_startup:
        ctx.report(_start_of(call, fn) if fn is not None else call, RULE.id, message)
        return
    # Through the app's own spawner, from a helper only startup calls, or a loop imported
    # from another module of the tree (by its qualified name: a bare name would match any
    # `run()`)
    if started in ctx.loops:
        loop = (ctx.module, started)
    elif isinstance(_first(call), ast.Name) and started in ctx.imports:
        origin, _, function = ctx.imports[started].rpartition(".")
        loop = (origin.rpartition(".")[2], function)
    else:
        return
    ctx.start(call, RULE.id, message, loop, None if at_startup else fn)


def _first(call: ast.Call) -> ast.expr | None:
    """What `call` starts: its first argument, or the function that argument calls."""
    first = call.args[0] if call.args else None
    return first.func if isinstance(first, ast.Call) else first
