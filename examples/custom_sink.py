"""A sink of your own, fed with no server at all: a `rung.Drain` moves events from a
`rung.Queue` over the in-memory broker into a `rung.Sink` that sums payments per account.

    python examples/custom_sink.py
"""

import asyncio
from collections.abc import Sequence

import rung
from rung.testing import MemoryBroker


class TotalsSink:
    """A `rung.Sink`: sums `amount` per `account`, each event once."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.totals: dict[str, int] = {}

    async def write(self, batch: Sequence[rung.Delivery]) -> dict[int, str]:
        failed = {}  # index in the batch -> why: that entry alone is retried, then dead
        for i, delivery in enumerate(batch):
            event = delivery.event()
            if not isinstance(event.get("amount"), int):
                failed[i] = f"amount is not a whole number: {event.get('amount')!r}"
            elif event["id"] not in self.seen:  # delivery is at least once: count it once
                self.seen.add(event["id"])
                account = event["account"]
                self.totals[account] = self.totals.get(account, 0) + event["amount"]
        return failed


async def main() -> None:
    queue = rung.Queue(broker=MemoryBroker(stream="payments"), max_depth=10_000)
    await queue.put_many([{"account": "ann" if n % 3 else "bob", "amount": n} for n in range(100)])
    await queue.put({"account": "ann", "amount": "ten"})

    sink = TotalsSink()
    drain = rung.Drain(queue, sink, max_deliveries=1)
    running = asyncio.create_task(drain.run())
    while (await queue.stats())["depth"]:  # noqa: ASYNC110 (the state is in the broker)
        await asyncio.sleep(0.01)
    drain.stop()
    await running
    print("totals:", dict(sorted(sink.totals.items())))
    print("dead letters:", (await queue.stats())["dead"])


if __name__ == "__main__":
    asyncio.run(main())
