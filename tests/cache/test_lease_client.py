"""The lease client's typed replies against the real cache Redis: a lease, a holder's fresh
fill, another holder waited out, a value stale by its tags."""

import secrets
from collections.abc import AsyncIterator

import pytest

from rung import redis
from rung.cache import entry, lease_client, leases
from rung.errors import CacheError, CacheUnavailable
from rung.testing import RungStack

Store = redis.Store
encode = entry.encode
LeaseClient = lease_client.LeaseClient
Busy = leases.Busy
Found = leases.Found
KeySpace = leases.KeySpace
Lease = leases.Lease
Leases = leases.Leases


@pytest.fixture
async def leases(rung_stack: RungStack) -> AsyncIterator[Leases]:
    store = Store(rung_stack.cache_url, timeout=1.0, unavailable=CacheUnavailable,
                  rejected=CacheError)  # fmt: skip
    keys = KeySpace(f"c{secrets.token_hex(4)}")
    yield Leases(store, keys, lease_ms=60_000, marker_ms=60_000, generation_ms=60_000)
    await store.close()


async def fill(leases: Leases, key: str, tags: tuple[str, ...], lease: Lease, value: str) -> None:
    raw = encode(key, value, ttl=60.0, delta=0.0, stamps=lease.stamps(tags))
    assert await leases.fill(key, tags, lease, raw, 60_000)


async def test_a_miss_gets_the_lease_and_the_next_caller_the_holders_fill(leases: Leases) -> None:
    client = LeaseClient(leases, timeout=5.0)
    lease = await client.acquire("k", ("t",))
    assert isinstance(lease, Lease)
    await fill(leases, "k", ("t",), lease, "filled")
    found = await client.acquire("k", ("t",))
    assert isinstance(found, Found)
    assert found.entry.value == "filled"


async def test_a_holder_that_never_fills_is_waited_out_as_busy(leases: Leases) -> None:
    assert isinstance(await leases.take("k", ()), Lease)
    assert await LeaseClient(leases, timeout=0.05).acquire("k", ()) == Busy()


async def test_a_value_stale_by_its_tags_counts_as_none(leases: Leases) -> None:
    """Filled under tag 't', then 't' gets a new generation: the next caller takes the
    lease over the stale value instead of being handed it."""
    client = LeaseClient(leases, timeout=5.0)
    lease = await client.acquire("k", ("t",))
    assert isinstance(lease, Lease)
    await fill(leases, "k", ("t",), lease, "old")
    await leases.invalidate_tags(("t",), None)
    assert isinstance(await client.acquire("k", ("t",)), Lease)


async def test_force_takes_the_lease_from_its_holder(leases: Leases) -> None:
    held = await leases.take("k", ())
    forced = await leases.force("k", ())
    assert isinstance(held, Lease)
    assert forced.token != held.token
    assert await leases.take("k", ()) == Busy()
