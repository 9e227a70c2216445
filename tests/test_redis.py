"""rung/_redis.py: every call bounded in total, no silent retry of what is not idempotent,
and one map from redis-py's errors to a rung's own."""

import pytest
from redis.asyncio import Redis
from redis.exceptions import (
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

import rung
from rung.errors import CacheError, CacheUnavailable
from rung.testing import RungStack


def _store(url: str, timeout: float = 0.3) -> rung.redis.Store:
    return rung.redis.Store(url, timeout=timeout, unavailable=CacheUnavailable, rejected=CacheError)


async def test_a_hung_redis_is_unavailable_once_the_bound_passes(blackhole: str) -> None:
    store = _store(blackhole)
    try:
        with pytest.raises(CacheUnavailable, match=r"no answer within 0\.3s"):
            await store.run(lambda r: r.get("k"), idempotent=True)
    finally:
        await store.close()


@pytest.mark.parametrize(("idempotent", "tries"), [(True, 2), (False, 1)])
async def test_only_an_idempotent_call_is_tried_again(idempotent: bool, tries: int) -> None:
    """A broken connection: an idempotent call gets one more try inside the bound, any
    other none (a script that ran before the reply was lost must not run twice)."""
    store = _store("redis://127.0.0.1:1/0")
    calls = 0

    async def call(redis: Redis) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("reset")

    try:
        with pytest.raises(CacheUnavailable):
            await store.run(call, idempotent=idempotent)
    finally:
        await store.close()
    assert calls == tries


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
         False),
        (ResponseError("invalid expire time in 'set' command"), False),
        (ResponseError("user_script:3: attempt to compare nil with number"), False),
        (ResponseError("BUSY Redis is busy running a script."), True),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's unable"),
         True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (ConnectionError("Connection refused"), True),
    ],
)  # fmt: skip
def test_what_redis_refuses_is_rejected_and_what_it_cannot_do_is_unavailable(
    error: Exception, unavailable: bool
) -> None:
    mapped = _store("redis://127.0.0.1:1/0").error(error)  # type: ignore[arg-type]
    assert isinstance(mapped, CacheError)
    assert isinstance(mapped, CacheUnavailable) is unavailable


async def test_a_real_refusal_is_rejected(rung_stack: RungStack) -> None:
    store = _store(rung_stack.cache_url)
    try:
        with pytest.raises(CacheError) as raised:
            await store.run(lambda r: r.execute_command("SET", "k", "v", "PX", "-5"))
        assert not isinstance(raised.value, CacheUnavailable)
    finally:
        await store.close()
