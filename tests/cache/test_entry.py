"""Cache entries: encoding, tag stamps, XFetch and TTL jitter (pure logic)."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rung import CacheError
from rung.cache import entry

Entry = entry.Entry
decode = entry.decode
encode = entry.encode
jittered = entry.jittered

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_a_value_survives_the_round_trip(value: object) -> None:
    entry = decode(encode("k", value, ttl=60.0, delta=0.01, stamps={"t": "g1"}))
    assert entry is not None
    assert entry.value == value
    assert entry.stamps == {"t": "g1"}


def test_none_is_a_value_not_a_miss() -> None:
    entry = decode(encode("k", None, ttl=1.0, delta=0.0, stamps={}))
    assert entry is not None
    assert entry.value is None


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"5", b'[1, 0, "x", 3]'])
def test_bytes_that_are_not_an_entry_decode_to_a_miss(raw: bytes) -> None:
    assert decode(raw) is None


def test_a_value_orjson_cannot_serialize_is_a_cache_error() -> None:
    with pytest.raises(CacheError, match="cannot cache 'k'"):
        encode("k", object(), ttl=1.0, delta=0.0, stamps={})


def test_fresh_needs_every_stamp_to_match_its_current_generation() -> None:
    entry = Entry(time.time() + 60, 0.0, {"a": "1", "b": "2"}, "v")
    assert entry.fresh(("a", "b"), [b"1", b"2"])
    assert entry.fresh(("b", "a"), [b"2", b"1"])
    assert not entry.fresh(("a", "b"), [b"1", b"3"])  # b was invalidated
    assert not entry.fresh(("a", "b"), [b"1", None])  # b's key was deleted or evicted
    assert not entry.fresh(("a",), [b"1"])  # asked with other tags than it was stamped with


def test_xfetch_never_refreshes_far_from_expiry_and_always_past_it() -> None:
    far = Entry(time.time() + 3600, 0.001, {}, "v")
    past = Entry(time.time() - 1, 0.001, {}, "v")
    assert not any(far.refresh_early(1.0) for _ in range(1000))
    assert all(past.refresh_early(1.0) for _ in range(1000))


def test_xfetch_refreshes_more_often_as_expiry_nears() -> None:
    """With δ = 1 s, a draw u refreshes when -ln(1 - u) >= the time left: 0.5 s before
    expiry that is u >= 1 - e^-0.5 ≈ 0.39 (P ≈ 0.61); 3 s before, u >= 1 - e^-3 ≈ 0.95."""
    now = 1_000_000.0
    near = Entry(now + 0.5, 1.0, {}, "v")
    farther = Entry(now + 3.0, 1.0, {}, "v")
    assert [near.refresh_early(1.0, now=now, draw=u) for u in (0.38, 0.40, 0.9)] == [
        False, True, True
    ]  # fmt: skip
    assert [farther.refresh_early(1.0, now=now, draw=u) for u in (0.40, 0.94, 0.96)] == [
        False, False, True
    ]  # fmt: skip


def test_xfetch_is_off_with_beta_zero() -> None:
    past = Entry(time.time() - 1, 0.5, {}, "v")
    assert not past.refresh_early(0.0)


def test_jitter_shortens_ttls_by_up_to_the_fraction_and_spreads_them() -> None:
    ttls = [jittered(100.0, 0.1) for _ in range(1000)]
    assert all(90.0 <= t <= 100.0 for t in ttls)
    assert max(ttls) - min(ttls) > 8.0


@pytest.mark.parametrize(
    "raw",
    [b'["x",1,{},5]', b'[1e18,"d",{},5]', b'[1e18,1,{"t":5},5]', b"[true,1,{},5]",
     b"[1e400,1,{},5]", b"[1,2,3]", b"garbage"],
)  # fmt: skip
def test_bytes_that_are_not_an_entry_decode_to_none(raw: bytes) -> None:
    """Written behind rung's back: a miss, never a TypeError on the next read."""
    assert decode(raw) is None
