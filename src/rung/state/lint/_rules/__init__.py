"""The rules of `rung lint`: one module each, named for its rule (`rung101_module_state`),
holding its `RULE` (id, name, what it finds, the fix it names) and the hooks it checks
with. A new rule is one new module here: the package finds it.

The shared `ModuleContext` (`_context`) walks each module and calls, in every rule that
defines it:

- `on_call(ctx, call, name, fn)`: a call, `name` its qualified name, `fn` the function it
  is in (None at module level);
- `on_change(ctx, change)`: a change to state that lives as long as the process (a
  `_context.Change`: what is changed, where, in which function);
- `on_global(ctx, fn, name)`: `global name` in `fn`;
- `on_function(ctx, fn)`: a function definition (its decorators);
- `on_string(ctx, node, value)`: a string that is not a key or a test;
- `on_assigned(ctx, name, value, fn)`: `name = value` (a variable, an attribute, a dict
  key, a keyword argument);
- `on_module_cache(ctx, stmt, name)`: a cache object made at module level.

A hook reports with `ctx.report(node, rule, message)`, or `ctx.state(...)` for a state
change that is safe when only startup reaches it. One line may carry several findings.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from rung.state.lint._rules._rule import NOT_CHECKED, Rule

# Every module of this package named for its rule (`rung101_module_state`), in id order.
_PLUGINS: tuple[ModuleType, ...] = tuple(
    importlib.import_module(f"{__name__}.{module.name}")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
    if re.fullmatch(r"rung\d{3}_\w+", module.name)
)


@dataclass(frozen=True, slots=True)
class _Hooks:
    """Each hook's functions, from the rules that define it (see the module docstring)."""

    on_call: list[Callable[..., Any]] = field(default_factory=list)
    on_change: list[Callable[..., Any]] = field(default_factory=list)
    on_global: list[Callable[..., Any]] = field(default_factory=list)
    on_function: list[Callable[..., Any]] = field(default_factory=list)
    on_string: list[Callable[..., Any]] = field(default_factory=list)
    on_assigned: list[Callable[..., Any]] = field(default_factory=list)
    on_module_cache: list[Callable[..., Any]] = field(default_factory=list)


HOOKS = _Hooks()
for _plugin in _PLUGINS:
    for _hook in _Hooks.__slots__:
        if hasattr(_plugin, _hook):
            getattr(HOOKS, _hook).append(getattr(_plugin, _hook))

RULES: dict[str, Rule] = {
    rule.id: rule for rule in [NOT_CHECKED, *(plugin.RULE for plugin in _PLUGINS)]
}

__all__ = ["HOOKS", "RULES", "Rule"]
