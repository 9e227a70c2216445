"""rung.Singleton against the real stack's durable Redis: one run per tick across
processes, failover after a SIGKILL, fencing tokens, leases renewed, leadership, and a
holder paused past its lease cancelled when it resumes."""

import asyncio
import itertools
import math
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import rung
from rung.testing import RungStack, wait_until
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


BAD_SECONDS = (math.nan, math.inf, -math.inf, -1.0, 0, 0.0, "10", None, True, 1e9)


@pytest.mark.parametrize("option", ["lease", "timeout"])
@pytest.mark.parametrize("value", BAD_SECONDS, ids=repr)
def test_a_bad_numeric_option_is_refused_by_name(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{option} "):
        rung.Singleton("redis://x", name="n", **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [*BAD_SECONDS, 0.0001], ids=repr)
def test_a_bad_period_is_refused_by_name(value: object) -> None:
    s = rung.Singleton("redis://x", name="n")
    with pytest.raises(ValueError, match=r"^every\(seconds\) "):
        s.every(value)  # type: ignore[arg-type]


# --- a holder that stood still ----------------------------------------------------------------


async def test_a_blocked_loop_loses_the_lead_at_its_next_await_without_asking_redis(
    rung_stack: RungStack,
) -> None:
    """The loop stands still past the lease (as in a SIGSTOP) while Redis is hung: the
    first await after it raises LeadershipLost. Nothing from Redis could have told it."""
    s = rung.Singleton(rung_stack.queue_url, name=f"t{secrets.token_hex(4)}", lease=0.3,
                       timeout=0.3)  # fmt: skip
    awaits_after = 0
    try:
        with pytest.raises(rung.LeadershipLost, match="not renewed in time"):
            async with s.leadership():
                rung_stack.freeze("queue")
                try:
                    time.sleep(0.6)  # noqa: ASYNC251 (the subject: the loop blocked past the lease)
                    while True:
                        await asyncio.sleep(0.01)
                        awaits_after += 1
                finally:
                    rung_stack.thaw("queue")
    finally:
        await s.close()
    assert awaits_after == 0


async def test_a_run_that_blocks_past_its_lease_is_cancelled_and_the_next_tick_runs(
    rung_stack: RungStack,
) -> None:
    """every(): the first run blocks the loop past its lease, then awaits; it is cancelled
    there with a LeadershipLost message, and the next tick runs with a higher token."""
    s = rung.Singleton(rung_stack.queue_url, name=f"t{secrets.token_hex(4)}", lease=0.2)
    seen: list[tuple[str, int, str]] = []

    @s.every(0.3)
    async def job(fencing_token: int) -> None:
        seen.append(("start", fencing_token, ""))
        if len(seen) == 1:
            time.sleep(0.5)  # noqa: ASYNC251 (the subject: standing still past the lease)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError as e:
                seen.append(("cancelled", fencing_token, str(e)))
                raise
            seen.append(("finished", fencing_token, ""))

    task = asyncio.create_task(s.run())
    try:
        await poll(lambda: len([e for e in seen if e[0] == "start"]) >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await s.close()
    (_, first, _), (what, token, why), (again, second, _) = seen[:3]
    assert (what, token, again) == ("cancelled", first, "start")
    assert why.startswith("LeadershipLost: ")
    assert second > first


class Lines:
    """The lines a worker process prints, collected as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        self._out = proc.stdout
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._out:
            self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        """After the process has exited: the rest of its lines, then close the pipe."""
        self._reader.join(timeout=10)
        self._out.close()

    def starting(self, word: str) -> list[list[str]]:
        return [line.split(" ", 3) for line in list(self.lines) if line.startswith(word + " ")]


def test_a_leader_paused_past_its_lease_is_cancelled_as_it_resumes(rung_stack: RungStack) -> None:
    """Two processes, a minute-long job, a 0.5 s lease. The leader is SIGSTOPped until the
    other has taken over (the control: a second run, with a higher token, while the first
    is paused mid-run), then SIGCONTed: its run is cancelled with LeadershipLost and never
    finishes, and the new leader's run goes on."""
    name = f"t{secrets.token_hex(4)}"
    args = [sys.executable, "-m", "tests.state.singleton_worker", rung_stack.queue_url, name,
            "long"]  # fmt: skip
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    out = {p.pid: Lines(p) for p in procs}
    try:
        wait_until(lambda: any(lines.starting("start") for lines in out.values()), 30)
        (_, first, pid), *_ = next(lines.starting("start") for lines in out.values() if lines.lines)
        leader = next(p for p in procs if p.pid == int(pid))
        other = next(p for p in procs if p is not leader)
        leader.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: bool(out[other.pid].starting("start")), 30)
            (_, second, _), *_ = out[other.pid].starting("start")
            assert int(second) > int(first)
            assert out[leader.pid].starting("cancelled") == []  # paused mid-run
        finally:
            leader.send_signal(signal.SIGCONT)
        wait_until(lambda: bool(out[leader.pid].starting("cancelled")), 30)
        assert out[other.pid].starting("cancelled") == []  # the new leader's run goes on
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
            out[p.pid].close()
    cancelled = out[leader.pid].starting("cancelled")
    assert [(token, why.split(":")[0]) for _, token, _, why in cancelled] == [
        (first, "LeadershipLost")
    ]
    assert out[leader.pid].starting("done") == []
    assert any("was cancelled: LeadershipLost" in line for line in out[leader.pid].lines)
