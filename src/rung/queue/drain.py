"""rung.Drain: moves events from a queue into a sink at the rate the database can take.

    drain = rung.Drain(queue, rung.TableSink(db, table="clicks", columns=cols, key="id"),
                       batch_size=1000, max_wait=0.05, max_rate=None)
    await drain.run()            # until cancelled or drain.stop(); `rung drain` runs it

Each round: take entries a dead drain left behind (idle past `claim_idle`), else read up
to a batch of new ones (waiting at most `max_wait` to fill it); pace; write the batch;
acknowledge what was written, only after the sink's commit. Entries that failed on their
own stay queued and come back after `claim_idle`; on their `max_deliveries`-th failure
they go to the dead letters with the error. While a batch is being written its entries
are renewed, so a slow batch is never taken by another drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any

from rung._aio import wait_set
from rung.db import lsn
from rung.errors import QueueUnavailable
from rung.queue.broker import Delivery
from rung.queue.pacing import Pacer
from rung.queue.queue import Queue
from rung.queue.sinks import Sink

log = logging.getLogger("rung.drain")

_FORGET_EVERY = 30.0  # seconds between sweeps of consumers that left nothing behind


@dataclass(slots=True)
class DrainStats:
    written: int = 0  # entries the sink took (rows written, or already there)
    batches: int = 0
    failed: int = 0  # entry failures (each retry counts)
    dead: int = 0  # entries moved to the dead letters
    batch_failures: int = 0  # batches that failed as a whole (nothing acknowledged)
    reclaimed: int = 0  # entries taken over after `claim_idle`


class Drain:
    """Drains `queue` into `sink` (see the module docstring).

    Keyword-only: `batch_size` rows per transaction at most; `max_wait` seconds to wait
    for a batch to fill; `max_rate` rows/s at most (None: as fast as the sink goes);
    `target_latency` seconds turns on AIMD pacing on the batch's commit time;
    `max_deliveries` failures before an entry is a dead letter; `claim_idle` seconds after
    which another drain takes over a silent drain's entries.
    """

    def __init__(
        self,
        queue: Queue,
        sink: Sink,
        *,
        batch_size: int = 1000,
        max_wait: float = 0.05,
        max_rate: float | None = None,
        target_latency: float | None = None,
        max_deliveries: int = 5,
        claim_idle: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_deliveries < 1:
            raise ValueError("batch_size and max_deliveries must be >= 1")
        if max_wait <= 0 or claim_idle <= 0:
            raise ValueError("max_wait and claim_idle must be > 0 seconds")
        self.queue = queue
        self.sink = sink
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_deliveries = max_deliveries
        self.claim_idle = claim_idle
        self.pacer = Pacer(max_rate=max_rate, target_latency=target_latency,
                           batch_size=batch_size)  # fmt: skip
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._stats = DrainStats()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in flight (write, acknowledge), then return from `run()`."""
        self._stopping.set()

    def stats(self) -> dict[str, Any]:
        """written, batches, failed, dead, batch_failures, reclaimed, and the pacer's rate."""
        return {**asdict(self._stats), "rate": self.pacer.rate}

    async def run(self) -> None:
        """Drain until `stop()` or cancellation. A broker or sink outage is waited out
        (nothing is acknowledged meanwhile), not raised."""
        broker = self.queue.broker
        next_reclaim = next_forget = 0.0
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                batch: list[Delivery] = []
                if now >= next_reclaim:
                    next_reclaim = now + self.claim_idle / 2
                    batch = await broker.reclaim(
                        self.consumer, idle=self.claim_idle, count=self.pacer.batch(self.batch_size)
                    )
                    self._stats.reclaimed += len(batch)
                if now >= next_forget:
                    next_forget = now + _FORGET_EVERY
                    await broker.forget(idle=max(60.0, 10 * self.claim_idle))
                if not batch:
                    batch = await self._collect()
                if batch:
                    await self._handle(batch)
                backoff = 0.0
            except QueueUnavailable as e:
                backoff = min(1.0, backoff * 2 or 0.05)
                log.warning("queue unreachable, retrying in %.2fs: %s", backoff, e)
                await self._pause(backoff)

    async def _collect(self) -> list[Delivery]:
        """New entries: as many as are there up to a batch, else wait up to `max_wait`
        for the first and then for the batch to fill."""
        want = self.pacer.batch(self.batch_size)
        deadline = time.monotonic() + self.max_wait
        got = await self.queue.broker.read(self.consumer, want, wait=self.max_wait)
        while got and len(got) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = await self.queue.broker.read(self.consumer, want - len(got), wait=left)
            if not more:
                break
            got += more
        return got

    async def _handle(self, batch: list[Delivery]) -> None:
        broker = self.queue.broker
        await self.pacer.wait(len(batch))
        written = asyncio.Event()
        renewing = asyncio.create_task(self._renew([d.ref for d in batch], written))
        started = time.monotonic()
        try:
            failures = await self._write(batch)
        except (QueueUnavailable, asyncio.CancelledError):
            raise
        except Exception as e:  # the whole batch: nothing acknowledged, it comes back
            self._stats.batch_failures += 1
            self.pacer.failed()
            log.warning("a batch of %d failed as a whole, retried later: %r", len(batch), e)
            await self._pause(min(1.0, self.claim_idle / 2))
            return
        finally:
            written.set()  # the renewer stops between renewals, never inside a Redis call
            await renewing
        self.pacer.observe(time.monotonic() - started)
        self._stats.batches += 1
        done = [d.ref for i, d in enumerate(batch) if i not in failures]
        dead = [(batch[i], error) for i, error in failures.items()
                if batch[i].deliveries >= self.max_deliveries]  # fmt: skip
        await broker.ack(done)
        await broker.bury(dead)
        self._stats.written += len(done)
        self._stats.failed += len(failures)
        self._stats.dead += len(dead)

    async def _write(self, batch: list[Delivery]) -> dict[int, str]:
        db = self.queue.db
        token = None
        for d in batch:
            token = lsn.later(token, d.token) if d.token and lsn.valid(d.token) else token
        if db is None or token is None:
            return await self.sink.write(batch)
        with db.observe(token):  # a handler's reads see what the producer had written
            return await self.sink.write(batch)

    async def _renew(self, refs: list[str], written: asyncio.Event) -> None:
        """Keep the batch ours while it is written (a slow commit is not a dead drain)."""
        while not await wait_set(written, self.claim_idle / 3):
            with contextlib.suppress(QueueUnavailable):
                await self.queue.broker.renew(self.consumer, refs)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on `stop()`."""
        await wait_set(self._stopping, seconds)
