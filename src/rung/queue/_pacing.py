"""How fast a drain writes: a rate cap, and an adaptive mode that backs off when the
database's commit latency rises (AIMD), so the drain never re-creates the spike at the
database that the queue absorbed.

    pacer = Pacer(max_rate=2000.0, target_latency=None, batch_size=1000)
    rows = pacer.batch(1000)      # read at most this many now (smooth: ~10 batches/s)
    await pacer.wait(rows)        # then write them
    pacer.observe(latency)        # how long the batch took to commit
"""

from __future__ import annotations

import asyncio
import time

from rung._options import rate, seconds

DECREASE = 0.5  # the rate is multiplied by this after a slow or failed batch
FLOOR = 10.0  # rows/s: the adaptive rate never goes below this


class Pacer:
    """A cap of `max_rate` rows/s (None: none). With `target_latency` (seconds), AIMD moves
    the rate: every batch that commits within the target adds `batch_size / 10` rows/s,
    every slower or failed batch halves it; `max_rate` stays the ceiling. The adaptive
    rate starts at `max_rate`, or 10 batches a second."""

    def __init__(
        self, *, max_rate: float | None, target_latency: float | None, batch_size: int
    ) -> None:
        if max_rate is not None:
            max_rate = rate("max_rate", max_rate)
        if target_latency is not None:
            target_latency = seconds("target_latency", target_latency, positive=True)
        self.max_rate = max_rate
        self.target_latency = target_latency
        self._step = max(1.0, batch_size / 10)
        self.rate: float | None = max_rate
        if target_latency is not None and self.rate is None:
            self.rate = batch_size * 10.0
        self._next = 0.0  # monotonic time the next row may go

    def batch(self, batch_size: int) -> int:
        """Rows to take now: at most a tenth of a second's worth when paced, so the rate
        is smooth over any window longer than that."""
        if self.rate is None:
            return batch_size
        return max(1, min(batch_size, int(self.rate / 10)))

    async def wait(self, rows: int) -> None:
        """Sleep until `rows` more rows fit under the rate. No credit builds up while idle:
        after a quiet spell the drain starts at the rate, not with a burst."""
        if self.rate is None:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + rows / self.rate
        if start > now:
            await asyncio.sleep(start - now)

    def observe(self, latency: float) -> None:
        """A batch committed in `latency` seconds."""
        if self.target_latency is None or self.rate is None:
            return
        if latency > self.target_latency:
            self.failed()
        else:
            self.rate += self._step
            if self.max_rate is not None:
                self.rate = min(self.rate, self.max_rate)

    def failed(self) -> None:
        """A batch failed as a whole (the database is down or overloaded)."""
        if self.target_latency is not None and self.rate is not None:
            self.rate = max(FLOOR, self.rate * DECREASE)
