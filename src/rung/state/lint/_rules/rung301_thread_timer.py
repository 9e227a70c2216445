"""RUNG301: threading.Timer."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG301", "thread-timer",
    "threading.Timer runs in one instance: with N instances the work runs N times, and not "
    "at all while that instance is down.",
    "Use rung.Singleton(...).every(seconds): one run per tick across instances.",
)  # fmt: skip


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    if name == "threading.Timer":
        ctx.report(call, RULE.id, "threading.Timer schedules work in this process only")
