"""rung.Drain: moves events from a queue into a sink at the rate the database can take.

    drain = rung.Drain(queue, rung.TableSink(db, table="clicks", columns=cols, key="id"),
                       batch_size=1000, max_wait=0.05, max_rate=None)
    await drain.run()            # until cancelled or drain.stop(); `rung drain` runs it

Each round: take entries a dead drain left behind (idle past `claim_idle`), else read up
to a batch of new ones (waiting at most `max_wait` to fill it); pace; write the batch;
acknowledge what was written, only after the sink's commit. `WORKERS` rounds run at once,
each batch in its own transaction: while PostgreSQL commits one, the queue hands out the
next and Python encodes another. From the moment a batch is taken until it is acknowledged
its entries are renewed, so a slow batch is never taken by another drain.

A write that fails is classified (`rung.queue._faults`): an outage is waited out with the
batch held, a growing pause between tries; an error that points at the data splits the
batch in halves until the bad rows are alone and the rest is written; any other error is
tried again as a whole `BATCH_TRIES` times, then split. A row that fails on its own stays
queued and comes back after `claim_idle`; on its `max_deliveries`-th failure it goes to
the dead letters with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass

from rung._aio import wait_set
from rung._options import count, seconds
from rung.db import _lsn as lsn
from rung.errors import QueueError, QueueUnavailable
from rung.queue._broker import Broker, Delivery
from rung.queue._faults import BATCH_TRIES, Backoff, Fault, classify
from rung.queue._pacing import Pacer
from rung.queue._queue import Queue
from rung.queue._sinks import Failures, Sink
from rung.types import DrainStats

log = logging.getLogger("rung.drain")

WORKERS = 2  # batches taken, written and acknowledged at once (see run)
_FORGET_EVERY = 30.0  # seconds between sweeps of consumers that left nothing behind
_PAUSE_FIRST, _PAUSE_MOST = 0.05, 2.0  # seconds between tries of a failed batch


@dataclass(slots=True)
class _Counts:
    written: int = 0  # entries the sink took (rows written, or already there)
    batches: int = 0
    failed: int = 0  # entry failures (each retry counts)
    dead: int = 0  # entries moved to the dead letters
    batch_failures: int = 0  # writes that failed as a whole (each try counts)
    outages: int = 0  # of those, the ones waited out (the database could not take them)
    splits: int = 0  # batches split in halves to isolate the rows that fail
    reclaimed: int = 0  # entries taken over after `claim_idle`


class Drain:
    """Drains `queue` into `sink` (see the module docstring).

    What it takes from `queue` is public: its `broker`, which the drain reads, renews,
    acknowledges and buries through (any `rung.Broker`); its `dedupe_window`; its `db`,
    under whose `observe` each batch is written (the newest token the batch's events
    carry), so a sink's reads see what the producer had written.

    Keyword-only: `batch_size` rows per transaction at most; `max_wait` seconds to wait
    for a batch to fill; `max_rate` rows/s at most (None: as fast as the sink goes);
    `target_latency` seconds turns on AIMD pacing on the batch's commit time;
    `max_deliveries` failures before an entry is a dead letter; `claim_idle` seconds after
    which another drain takes over a silent drain's entries (at most the queue's
    `dedupe_window`). Each is checked here: a bad value is a `ValueError` naming it.
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
        self.batch_size = count("batch_size", batch_size, least=1, most=100_000)
        self.max_wait = seconds("max_wait", max_wait, positive=True, most=3600.0)
        self.max_deliveries = count("max_deliveries", max_deliveries, least=1)
        self.claim_idle = seconds("claim_idle", claim_idle, positive=True)
        if self.claim_idle > queue.dedupe_window:
            raise ValueError(
                f"claim_idle must be at most the queue's dedupe_window "
                f"({queue.dedupe_window:g} s), not {claim_idle!r}"
            )
        self.queue = queue
        self.broker: Broker = queue.broker
        self.sink = sink
        self.pacer = Pacer(max_rate=max_rate, target_latency=target_latency,
                           batch_size=self.batch_size)  # fmt: skip
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._stats = _Counts()
        self._stopping = asyncio.Event()
        self._backoff = Backoff(first=_PAUSE_FIRST, most=_PAUSE_MOST)
        self._due = {"reclaim": 0.0, "forget": 0.0}  # when run() next looks (monotonic s)
        self._taking = asyncio.Lock()

    def stop(self) -> None:
        """Finish the batches in flight (write, acknowledge), then return from `run()`. A
        batch that is waiting out an outage is left unacknowledged: it comes back after
        `claim_idle`."""
        self._stopping.set()

    def stats(self) -> DrainStats:
        """What this drain did (`rung.DrainStats`): written, batches, failed, dead,
        batch_failures, outages, splits, reclaimed; and the pacer's rate now."""
        counts = self._stats
        return {
            "written": counts.written,
            "batches": counts.batches,
            "failed": counts.failed,
            "dead": counts.dead,
            "batch_failures": counts.batch_failures,
            "outages": counts.outages,
            "splits": counts.splits,
            "reclaimed": counts.reclaimed,
            "rate": self.pacer.rate,
        }

    async def run(self) -> None:
        """Drain until `stop()` or cancellation. A broker or sink outage is waited out
        (nothing is acknowledged meanwhile), not raised."""
        # WORKERS loops, each taking a batch, writing it in its own transaction and
        # acknowledging it: while PostgreSQL commits one batch, Redis hands out the next
        # and Python encodes another, so no one of them waits for the other two.
        self._due = {"reclaim": 0.0, "forget": 0.0}
        workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]
        try:
            await asyncio.gather(*workers)
        finally:
            # Cancelled: what was being written comes back after claim_idle, and what was
            # committed already is skipped by key.
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        backoff = Backoff(first=0.05, most=1.0)
        while not self._stopping.is_set():
            try:
                async with self._taking:  # one at a time: the loops stay out of step
                    batch = await self._take()
                if batch:
                    await self._handle(batch)
                backoff.reset()
            except QueueError as e:  # unreachable, or (rarely) a command it refused
                pause = backoff.next()  # stopped: unacknowledged, back after claim_idle
                log.warning("the queue failed, retrying in %.2fs: %s", pause, e)
                await self._pause(pause)

    async def _take(self) -> list[Delivery]:
        """The next batch: entries a dead drain left behind, when it is time to look for
        them (every `claim_idle / 2` seconds), else new ones."""
        broker, due, now = self.broker, self._due, time.monotonic()
        if now >= due["reclaim"]:
            due["reclaim"] = now + self.claim_idle / 2
            count = self.pacer.batch(self.batch_size)
            batch = await broker.reclaim(self.consumer, idle=self.claim_idle, count=count)
            self._stats.reclaimed += len(batch)
            if batch:
                return batch
        if now >= due["forget"]:
            due["forget"] = now + _FORGET_EVERY
            await broker.forget(idle=max(60.0, 10 * self.claim_idle))
        return await self._collect()

    async def _collect(self) -> list[Delivery]:
        """New entries: as many as are there up to a batch, else wait up to `max_wait`
        for the first and then for the batch to fill."""
        want = self.pacer.batch(self.batch_size)
        deadline = time.monotonic() + self.max_wait
        got = await self.broker.read(self.consumer, want, wait=self.max_wait)
        while got and len(got) < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = await self.broker.read(self.consumer, want - len(got), wait=left)
            if not more:
                break
            got += more
        return got

    async def _handle(self, batch: list[Delivery]) -> None:
        broker = self.broker
        written = asyncio.Event()
        renewing = asyncio.create_task(self._renew([d.ref for d in batch], written))
        try:
            await self.pacer.wait(len(batch))
            failures = await self._write_until_done(batch)
        finally:
            written.set()  # the renewer stops between renewals, never inside a Redis call
            await renewing
        if failures is None:  # stopped while the batch kept failing: nothing acknowledged
            return
        self._stats.batches += 1
        done = [d.ref for i, d in enumerate(batch) if i not in failures]
        dead = [(batch[i], error) for i, error in failures.items()
                if batch[i].deliveries >= self.max_deliveries]  # fmt: skip
        await broker.ack(done)
        await broker.bury(dead)
        self._stats.written += len(done)
        self._stats.failed += len(failures)
        self._stats.dead += len(dead)

    async def _write_until_done(self, batch: list[Delivery]) -> Failures | None:
        """Write `batch` until the sink takes it: the rows that failed on their own, or
        None when `stop()` came while it kept failing as a whole (see the module
        docstring). The batch stays this drain's all along: its entries are renewed, and
        a try that fails counts no delivery."""
        tries = 0  # whole-batch failures that neither an outage nor a row explains
        error: Exception | None = None  # the last failure that was not an outage
        while True:
            started = time.monotonic()
            try:
                if error is not None and tries >= BATCH_TRIES:
                    failures = await self._split(batch, 0, error)
                else:
                    failures = await self._write(batch)
            except (QueueUnavailable, asyncio.CancelledError):
                raise
            except Exception as e:
                fault = classify(e)
                self._stats.batch_failures += 1
                if fault is Fault.OUTAGE:
                    self._stats.outages += 1
                    self.pacer.failed()  # the database is down or overloaded: slow down
                else:
                    error = e
                    tries = BATCH_TRIES if fault is Fault.ROWS else tries + 1
                    if tries >= BATCH_TRIES:
                        continue  # split at once: the halves write what they can
                pause = self._backoff.next()
                log.warning("a batch of %d failed (%s: %r); trying again in %.2fs",
                            len(batch), fault.value, e, pause)  # fmt: skip
                if await wait_set(self._stopping, pause):
                    return None
                continue
            self._backoff.reset()
            self.pacer.observe(time.monotonic() - started)
            return failures

    async def _split(self, batch: list[Delivery], offset: int, error: Exception) -> Failures:
        """`batch` failed with `error`: write its halves, and the halves of halves that
        fail, down to the rows that fail alone; those rows (by index + `offset`) with their
        errors. An outage met on the way is raised, and the batch is tried again (what
        was written is skipped by the sink's key)."""
        if len(batch) == 1:
            return {offset: f"{type(error).__name__}: {error}"}
        self._stats.splits += 1
        half = len(batch) // 2
        failed = await self._isolate(batch[:half], offset)
        failed.update(await self._isolate(batch[half:], offset + half))
        return failed

    async def _isolate(self, batch: list[Delivery], offset: int) -> Failures:
        try:
            failures = await self._write(batch)
        except (QueueUnavailable, asyncio.CancelledError):
            raise
        except Exception as e:
            if classify(e) is Fault.OUTAGE:
                raise
            return await self._split(batch, offset, e)
        return {offset + i: reason for i, reason in failures.items()}

    async def _write(self, batch: list[Delivery]) -> Failures:
        db = self.queue.db
        token = None
        for carried in {d.token for d in batch if d.token}:  # a batch carries few distinct
            token = lsn.later(token, carried) if lsn.valid(carried) else token
        if db is None or token is None:
            return await self.sink.write(batch)
        with db.observe(token):  # a handler's reads see what the producer had written
            return await self.sink.write(batch)

    async def _renew(self, refs: list[str], written: asyncio.Event) -> None:
        """Keep the batch ours while it is written (a slow commit is not a dead drain)."""
        while not await wait_set(written, self.claim_idle / 3):
            with contextlib.suppress(QueueError):  # best effort: the next one may get through
                await self.broker.renew(self.consumer, refs)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on `stop()`."""
        await wait_set(self._stopping, seconds)
