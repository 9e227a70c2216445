"""Password hashes: scrypt (hashlib), salted, compared in constant time.

    stored = await hash_password("correct horse")          # 'scrypt$16384$8$1$<salt>$<hash>'
    assert await check_password("correct horse", stored)

The work runs in a thread (hashlib releases the GIL for it): about 16 MB and some tens of
milliseconds each, which would otherwise stall every other request of the instance.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1  # RFC 7914's interactive-login parameters
_SALT_BYTES = 16
_KEY_BYTES = 32
# Compared against when the email is unknown, so that a miss costs what a hit does.
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024,
        dklen=_KEY_BYTES,
    )  # fmt: skip


async def hash_password(password: str) -> str:
    """A new salted scrypt hash of `password`, as one string."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = await asyncio.to_thread(_derive, password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


async def check_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored` (None: an unknown user, checked all the same)."""
    scheme, n, r, p, salt, key = (stored or _DUMMY).split("$")
    if scheme != "scrypt":
        return False
    derived = await asyncio.to_thread(_derive, password, _unb64(salt), int(n), int(r), int(p))
    return stored is not None and hmac.compare_digest(derived, _unb64(key))
