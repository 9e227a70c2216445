"""PostgreSQL WAL positions (LSNs) and the consistency tokens made of them.

A token is the text of an LSN, as PostgreSQL prints it: '16/B374D848'. A context that must
see a write carries the LSN at or after that write's commit; a replica may serve it once
its replay LSN is at least that.

    >>> parse("16/B374D848") > parse("16/B374D000")
    True
"""

from __future__ import annotations

import re

_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


def parse(token: str) -> int:
    """The byte position of an LSN's text; `ValueError` when it is not one."""
    if not _LSN.match(token):
        raise ValueError(f"not a PostgreSQL LSN: {token!r}")
    high, low = token.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format(position: int) -> str:
    """The text PostgreSQL uses for byte position `position`."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def valid(token: object) -> bool:
    """True when `token` is the text of an LSN (for tokens that came from outside)."""
    return isinstance(token, str) and _LSN.match(token) is not None


def later(a: str | None, b: str | None) -> str | None:
    """The later of two tokens (None is earlier than any)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if parse(a) >= parse(b) else b
