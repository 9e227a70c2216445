import pytest
from hypothesis import given
from hypothesis import strategies as st

import rung
from rung.db import lsn


def test_parse_orders_positions() -> None:
    """LSNs compare by position, not as text ('9/0' < '10/0')."""
    assert lsn.parse("9/0") < lsn.parse("10/0")
    assert lsn.parse("0/16B3748") == 0x16B3748


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_format_and_parse_round_trip(position: int) -> None:
    """A position printed as PostgreSQL does parses back to itself."""
    assert lsn.parse(lsn.format(position)) == position


BAD = [
    "",
    "16",
    "x/1",
    "1/2/3",
    "123456789/0",
    " 0/1",
    "0/1\n",
    "0/1 ",
    "0/1\x00",
    "٣/1",
    "1" * 9999,
]


@pytest.mark.parametrize("bad", BAD)
def test_malformed_tokens_are_rejected(bad: str) -> None:
    """Anything that is not exactly an LSN is not a token: a trailing newline that a cookie
    can carry, non-ASCII digits, an overlong string."""
    assert not lsn.valid(bad)
    assert not rung.Token.valid(bad)
    with pytest.raises(rung.InvalidToken):
        lsn.parse(bad)


@pytest.mark.parametrize("bad", [None, 7, b"0/1", ["0/1"]])
def test_non_strings_are_not_tokens(bad: object) -> None:
    assert not rung.Token.valid(bad)


def test_later_picks_the_later_token() -> None:
    """None is earlier than any token."""
    assert lsn.later(None, "0/10") == "0/10"
    assert lsn.later("0/20", "0/10") == "0/20"
    assert lsn.later("0/20", None) == "0/20"


def test_token_later_compares_positions_not_text() -> None:
    assert rung.Token.later("10/0", "9/FFFFFFFF")
    assert not rung.Token.later("0/10", "0/10")
    with pytest.raises(rung.InvalidToken):
        rung.Token.later("0/1\n", "0/0")


def test_token_merge_keeps_the_latest_valid_token() -> None:
    """Merging a cookie's, a header's and a job's token: junk and None are ignored."""
    assert rung.Token.merge("0/20", None, "0/1\n", "A/0", "0/FFFFFFFF") == "A/0"
    assert rung.Token.merge(None, "junk") is None
    assert rung.Token.merge() is None
