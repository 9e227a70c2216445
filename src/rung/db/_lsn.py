"""PostgreSQL WAL positions (LSNs) and the consistency tokens made of them.

A token is the text of an LSN, as PostgreSQL prints it: '16/B374D848'. A context that must
see a write carries the LSN at or after that write's commit; a replica may serve it once
its replay LSN is at least that. Tokens from outside (a cookie, a header, a queue event)
are checked by full match and length, so '0/1\\n' is not a token.

    >>> Token.merge("16/B374D848", "16/B374D000", "junk")
    '16/B374D848'
"""

from __future__ import annotations

import re

from rung.errors import InvalidToken

_LSN = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")
_MAX_LENGTH = 17  # 'FFFFFFFF/FFFFFFFF'


def parse(token: str) -> int:
    """The byte position of an LSN's text; `InvalidToken` when it is not one."""
    if not valid(token):
        raise InvalidToken(f"not a consistency token (a PostgreSQL LSN such as '0/16B3748'): "
                           f"{token!r:.40}")  # fmt: skip
    high, low = token.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def format(position: int) -> str:
    """The text PostgreSQL uses for byte position `position`."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def valid(token: object) -> bool:
    """True when `token` is the text of an LSN (for tokens that came from outside)."""
    return (
        isinstance(token, str) and len(token) <= _MAX_LENGTH and _LSN.fullmatch(token) is not None
    )


def later(a: str | None, b: str | None) -> str | None:
    """The later of two valid tokens (None is earlier than any)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if parse(a) >= parse(b) else b


class Token:
    """Helpers for consistency tokens that an app carries itself (a cookie, a header, a job's
    arguments): check one, compare two, merge several.

        if rung.Token.valid(request.headers.get("x-rung-lsn")): ...
        token = rung.Token.merge(cookie_token, header_token)   # the latest valid one, or None
    """

    @staticmethod
    def valid(value: object) -> bool:
        """True when `value` is a token: the text of a PostgreSQL LSN, by full match."""
        return valid(value)

    @staticmethod
    def later(a: str, b: str) -> bool:
        """True when `a` is a later position than `b`; `rung.InvalidToken` for a non-token."""
        return parse(a) > parse(b)

    @staticmethod
    def merge(*tokens: object) -> str | None:
        """The latest of `tokens`; None and anything that is not a token are ignored."""
        merged: str | None = None
        for token in tokens:
            if valid(token):
                assert isinstance(token, str)
                merged = later(merged, token)
        return merged
