"""Password hashes: salted scrypt, checked in constant time, unknown users checked too."""

from __future__ import annotations

from rung_links.passwords import check_password, hash_password


async def test_a_hash_checks_its_password_only() -> None:
    stored = await hash_password("correct horse")
    assert await check_password("correct horse", stored)
    assert not await check_password("correct horsE", stored)
    assert not await check_password("", stored)


async def test_the_same_password_hashes_differently() -> None:
    assert await hash_password("pw-pw-pw-pw") != await hash_password("pw-pw-pw-pw")


async def test_an_unknown_user_is_checked_and_refused() -> None:
    assert not await check_password("anything", None)


async def test_a_hash_of_another_scheme_is_refused() -> None:
    assert not await check_password("x", "md5$1$1$1$AAAA$AAAA")
