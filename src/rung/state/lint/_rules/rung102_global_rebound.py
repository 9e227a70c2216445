"""RUNG102: a module global rebound inside a function."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function, _rebindings

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG102", "global-rebound",
    "A function rebinds a module global: the value lives in one process only.",
    "Keep the state in PostgreSQL (rung.Database) or Redis; derived data in rung.Cache.",
)  # fmt: skip


def on_global(ctx: ModuleContext, fn: _Function, name: str) -> None:
    for rebound in _rebindings(fn, name):  # reported where rebound, lazy initialisation not
        ctx.state(rebound, fn, RULE.id, f"{fn.name}() rebinds the global '{name}'")
