"""RUNG302: sched.scheduler."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG302", "sched-scheduler",
    "A sched.scheduler runs in one instance: N instances, N runs.",
    "Use rung.Singleton(...).every(seconds): one run per tick across instances.",
)  # fmt: skip


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    if name == "sched.scheduler":
        ctx.report(call, RULE.id, "sched.scheduler schedules work in this process only")
