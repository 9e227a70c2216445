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
    spawns = name in _SPAWNERS or name.rsplit(".", 1)[-1] in ("create_task", "ensure_future")
    if not spawns or not (fn is None or ctx.at_startup(fn)):
        return
    started = _started_function(call)
    if started in ctx.loops:
        at = _start_of(call, fn) if fn is not None else call
        ctx.report(at, RULE.id, f"{started}() loops forever in the background of every "
                   "instance")  # fmt: skip
