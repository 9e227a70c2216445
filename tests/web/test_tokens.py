"""rung/web/_tokens.py: what a signed token accepts, and everything it refuses."""

import pytest

from rung.web import tokens

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def test_a_signed_token_verifies_to_its_lsn() -> None:
    signed = tokens.sign("16/B374D848", SECRET, now=NOW)
    assert tokens.verify(signed, SECRET, now=NOW, max_age=60) == "16/B374D848"


@pytest.mark.parametrize(
    "value",
    [
        None, "", "0/1", "garbage", "0/1.0.AAAA",
        tokens.sign("0/1", b"another secret, 32 bytes long!!", now=NOW),  # another stack's
        tokens.sign("0/1", SECRET, now=NOW).replace("0/1", "0/2", 1),  # the LSN changed
        tokens.sign("0/1", SECRET, now=NOW - 61),  # expired
        tokens.sign("0/1", SECRET, now=NOW + 60),  # from the future
        tokens.sign("0/1", SECRET, now=NOW) + "x",
        "é" * 40, "0/1\n.0.0", "\x00" * 10, "x" * 100_000,
        b"\xff\xfe\xfd".decode("latin-1") * 5,
    ],
)  # fmt: skip
def test_anything_else_is_no_token(value: str | None) -> None:
    assert tokens.verify(value, SECRET, now=NOW, max_age=60) is None


def test_bytes_that_are_not_ascii_are_no_token() -> None:
    assert tokens.verify(b"\xff" * 30, SECRET, now=NOW, max_age=60) is None
