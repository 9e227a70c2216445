"""What `rung lint` reports: a `Finding` of one of the rules in `_rules`."""

from __future__ import annotations

from dataclasses import dataclass

from rung.state.lint._rules import RULES


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    line: int
    col: int  # 1-based
    rule: str
    message: str
    via: tuple[str, ...] = ()  # the calls from an entry point to the function it is in
    safe_when: str | None = None  # the setting that makes it safe, when one does

    @property
    def fix(self) -> str:
        return RULES[self.rule].fix
