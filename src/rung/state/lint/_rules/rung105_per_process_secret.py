"""RUNG105: a secret generated when the process starts."""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from rung.state.lint._rules._rule import Rule
from rung.state.lint._syntax import _Function

if TYPE_CHECKING:
    from rung.state.lint._context import ModuleContext

RULE = Rule(
    "RUNG105", "per-process-secret",
    "A secret is generated when the process starts (secrets.token_*, os.urandom, "
    "get_random_secret_key, Fernet.generate_key): another instance rejects what this one "
    "signed or encrypted, and a restart logs everyone out.",
    "Read the secret from the environment or a secret store, the same on every instance; "
    "rung.SessionMiddleware takes it as secret_key.",
)  # fmt: skip

_MAKERS = {"secrets.token_hex", "secrets.token_urlsafe", "secrets.token_bytes", "os.urandom",
           "get_random_secret_key", "generate_key"}  # fmt: skip
_SECRET_NAME = re.compile(r"secret|(^|_)key$|(^|_)keys$", re.IGNORECASE)


def on_assigned(ctx: ModuleContext, name: str, value: ast.expr, fn: _Function | None) -> None:
    if not _SECRET_NAME.search(name):
        return
    for inner in ast.walk(value):
        if isinstance(inner, ast.Call) and _makes_secret(ctx, inner):
            ctx.report(inner, RULE.id, f"{name} is generated in this process only")
            return


def _makes_secret(ctx: ModuleContext, call: ast.Call) -> bool:
    name = ctx.qualname(call.func)
    return name in _MAKERS or name.endswith(("get_random_secret_key", "Fernet.generate_key"))
