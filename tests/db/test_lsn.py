import pytest
from hypothesis import given
from hypothesis import strategies as st

from rung.db import lsn


def test_parse_orders_positions() -> None:
    """LSNs compare by position, not as text ('9/0' < '10/0')."""
    assert lsn.parse("9/0") < lsn.parse("10/0")
    assert lsn.parse("0/16B3748") == 0x16B3748


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_format_and_parse_round_trip(position: int) -> None:
    """A position printed as PostgreSQL does parses back to itself."""
    assert lsn.parse(lsn.format(position)) == position


@pytest.mark.parametrize("bad", ["", "16", "x/1", "1/2/3", "123456789/0", " 0/1"])
def test_malformed_tokens_are_rejected(bad: str) -> None:
    """Anything that is not an LSN is not a token."""
    assert not lsn.valid(bad)
    with pytest.raises(ValueError):
        lsn.parse(bad)


def test_later_picks_the_later_token() -> None:
    """None is earlier than any token."""
    assert lsn.later(None, "0/10") == "0/10"
    assert lsn.later("0/20", "0/10") == "0/20"
    assert lsn.later("0/20", None) == "0/20"
