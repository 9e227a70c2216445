"""rung.Singleton against the real stack's durable Redis: one run per tick across
processes, failover after a SIGKILL, fencing tokens, leases renewed, leadership."""

import asyncio
import itertools
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack
from tests.helpers import poll

ROOT = Path(__file__).parents[2]


def runs(url: str, name: str) -> list[tuple[int, int, int]]:
    async def read() -> list[bytes]:
        async with aioredis.Redis.from_url(url) as r:
            return list(await r.lrange(f"{name}:runs", 0, -1))

    return [tuple(map(int, row.decode().split(":"))) for row in asyncio.run(read())]  # type: ignore[misc]


def test_three_processes_run_each_tick_once_and_survive_a_sigkill(rung_stack: RungStack) -> None:
    """every(0.5) in 3 processes for 10 s: no tick runs twice; the holder is SIGKILLed
    mid-run and at most one tick is missed; fencing tokens only increase."""
    name = f"t{secrets.token_hex(4)}"
    args = [sys.executable, "-m", "tests.state.singleton_worker", rung_stack.queue_url, name]
    procs = [subprocess.Popen(args, cwd=ROOT) for _ in range(3)]
    try:
        deadline = time.monotonic() + 10.0
        while len(runs(rung_stack.queue_url, name)) < 8:  # 4 s in: kill the one running now
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        victim_pid = runs(rung_stack.queue_url, name)[-1][2]
        victim = next(p for p in procs if p.pid == victim_pid)
        victim.send_signal(signal.SIGKILL)  # within ~10 ms of its run's start: mid-run
        victim.wait(timeout=10)
        time.sleep(max(0.0, deadline - time.monotonic()))  # the subject: 10 s of ticks
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    recorded = runs(rung_stack.queue_url, name)
    ticks = [tick for tick, _, _ in recorded]
    tokens = [token for _, token, _ in recorded]
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    missed = (ticks[-1] - ticks[0] + 1) - len(ticks)
    assert missed <= 1, f"{missed} ticks missed: {ticks}"
    assert ticks == sorted(ticks)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    assert len(ticks) >= 12  # ~20 ticks in 10 s; the processes may start slowly
    assert len({pid for _, _, pid in recorded if pid != victim_pid}) >= 1
    print(f"{len(ticks)} runs over ticks {ticks[0]}..{ticks[-1]}, {missed} missed")


async def test_a_long_run_keeps_its_lease_and_the_next_ticks_never_overlap(
    rung_stack: RungStack,
) -> None:
    """A 1 s job with a 0.3 s lease and a 0.2 s period, on two instances: the lease is
    renewed while it runs, so no other run starts until it ends."""
    name = f"t{secrets.token_hex(4)}"
    spans: list[tuple[float, float]] = []
    instances = [rung.Singleton(rung_stack.queue_url, name=name, lease=0.3) for _ in range(2)]
    for s in instances:

        @s.every(0.2)
        async def long_job(fencing_token: int) -> None:
            began = time.monotonic()
            await asyncio.sleep(1.0)
            spans.append((began, time.monotonic()))

    tasks = [asyncio.create_task(s.run()) for s in instances]
    await poll(lambda: len(spans) >= 2, within=10.0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for s in instances:
        await s.close()
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


async def test_leadership_goes_to_one_and_passes_on_with_a_higher_token(
    rung_stack: RungStack,
) -> None:
    name = f"t{secrets.token_hex(4)}"
    a = rung.Singleton(rung_stack.queue_url, name=name, lease=0.3)
    b = rung.Singleton(rung_stack.queue_url, name=name, lease=0.3)
    order: list[tuple[str, int]] = []
    release = asyncio.Event()

    async def lead(who: str, s: rung.Singleton) -> None:
        async with s.leadership() as token:
            order.append((who, token))
            if who == "a":
                await release.wait()

    first = asyncio.create_task(lead("a", a))
    await poll(lambda: len(order) == 1)
    second = asyncio.create_task(lead("b", b))
    await asyncio.sleep(0.5)  # the subject: b waits while a leads (past a's lease: renewed)
    assert len(order) == 1
    release.set()
    await asyncio.gather(first, second)
    assert [who for who, _ in order] == ["a", "b"]
    assert order[1][1] > order[0][1]
    await a.close()
    await b.close()


async def test_a_lost_lead_cancels_the_block_with_leadership_lost(rung_stack: RungStack) -> None:
    name = f"t{secrets.token_hex(4)}"
    s = rung.Singleton(rung_stack.queue_url, name=name, lease=0.3)
    r = aioredis.Redis.from_url(rung_stack.queue_url)
    try:
        with pytest.raises(rung.LeadershipLost):
            async with s.leadership():
                await r.delete(f"rung:singleton:{name}:leader")  # taken away behind its back
                await asyncio.sleep(10)  # cancelled at the next renewal instead
    finally:
        await r.aclose()
        await s.close()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        rung.Singleton("redis://x", name="", lease=1.0)
    s = rung.Singleton("redis://x", name="n", lease=1.0)
    with pytest.raises(ValueError):
        s.every(0)
    with pytest.raises(ValueError, match="no jobs registered"):
        asyncio.run(s.run())
