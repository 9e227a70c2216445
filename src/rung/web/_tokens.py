"""Consistency tokens as they travel over HTTP: the LSN, when it was issued, and an HMAC.

    value = sign("16/B374D848", secret, now=time.time())      # '16/B374D848.6752f1a0.<mac>'
    verify(value, secret, now=time.time(), max_age=60.0)        # '16/B374D848', or None

A client can neither forge a token (to push its reads onto the primary, or to hold them
back) nor keep an old one alive: anything malformed, unsigned, expired or issued in the
future is None, never an error. Compared as bytes, so a hostile non-ASCII value is just
invalid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from rung.db import Token

_MAX_LENGTH = 64  # 17 (LSN) + 1 + 8 (issued) + 1 + 22 (MAC): anything longer is not ours
_SKEW = 5.0  # seconds a token may seem to come from the future (clocks of two instances)


def sign(token: str, secret: bytes, *, now: float) -> str:
    """`token` (an LSN) with its issue time and a MAC."""
    body = f"{token}.{int(now):x}"
    return f"{body}.{_mac(body.encode(), secret)}"


def verify(value: str | bytes | None, secret: bytes, *, now: float, max_age: float) -> str | None:
    """The LSN in a signed `value`, or None when it is missing, malformed, forged, older
    than `max_age` seconds or issued in the future."""
    if not value or len(value) > _MAX_LENGTH:
        return None
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    body, _, mac = raw.rpartition(b".")
    token_bytes, _, issued_hex = body.rpartition(b".")
    if not hmac.compare_digest(_mac(body, secret).encode(), mac):
        return None
    try:
        token, issued = token_bytes.decode("ascii"), int(issued_hex, 16)
    except ValueError:
        return None
    if not Token.valid(token) or not now - max_age <= issued <= now + _SKEW:
        return None
    return token


def _mac(body: bytes, secret: bytes) -> str:
    digest = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
