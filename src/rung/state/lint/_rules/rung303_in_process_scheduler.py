"""RUNG303: an in-process scheduler: APScheduler, `schedule`, `@repeat_every`, a
scheduler's `.cyclic()` / `.daily()` ..."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG303", "in-process-scheduler",
    "An in-process scheduler (APScheduler, schedule, repeat_every) runs its jobs in every "
    "instance.",
    "Use rung.Singleton(...).every(seconds): one run per tick across instances.",
)  # fmt: skip

_SCHEDULERS = (
    "BackgroundScheduler", "AsyncIOScheduler", "BlockingScheduler", "GeventScheduler",
    "TornadoScheduler", "TwistedScheduler", "QtScheduler", "AsyncScheduler", "Scheduler",
)  # fmt: skip
_METHODS = {"cyclic", "minutely", "hourly", "daily", "weekly"}  # a scheduler's


def on_call(ctx: ModuleContext, call: ast.Call, name: str, fn: _Function | None) -> None:
    last = name.rsplit(".", 1)[-1]
    if last in _SCHEDULERS and name.startswith("apscheduler"):
        ctx.report(call, RULE.id, f"{last} runs its jobs in every instance")
    elif name == "schedule.every":
        ctx.report(call, RULE.id, "schedule.every() runs its jobs in every instance")
    elif last in _METHODS and "schedul" in name.lower():
        ctx.report(call, RULE.id, f"{name}() runs its job in every instance")


def on_function(ctx: ModuleContext, fn: _Function) -> None:
    for decorator in fn.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ctx.qualname(target).endswith("repeat_every"):
            ctx.report(decorator, RULE.id, f"@repeat_every runs {fn.name}() in every instance")
