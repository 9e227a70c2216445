"""RUNG101: state that lives as long as the process, changed at request time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule

if TYPE_CHECKING:
    from rung.state.lint._context import Change, ModuleContext

RULE = Rule(
    "RUNG101", "module-state-mutated",
    "A module-level mutable object is changed inside a function: each process has its own "
    "copy, so instances disagree and a restart loses it.",
    "Keep the state in PostgreSQL (rung.Database) or Redis; derived data in rung.Cache.",
)  # fmt: skip


def on_change(ctx: ModuleContext, change: Change) -> None:
    if change.session is None:  # a store of sessions is RUNG103's
        message = f"{change.what} is {change.verb} inside {change.fn.name}()"
        ctx.state(
            change.node, change.fn, RULE.id, message, gated=change.gated,
            made_by=change.made_by, by_request=change.by_request,
        )  # fmt: skip
