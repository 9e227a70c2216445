"""The drain `rung drain tests.queue.drain_factory:clicks` runs in the crash test; the
test passes the URLs, stream and table through the environment."""

import os

import rung


def clicks() -> rung.Drain:
    db = rung.Database(os.environ["RUNG_TEST_PRIMARY_URL"])
    queue = rung.Queue(os.environ["RUNG_TEST_QUEUE_URL"], stream=os.environ["RUNG_TEST_STREAM"])
    sink = rung.TableSink(db, table=os.environ["RUNG_TEST_TABLE"], columns=("id", "n"), key="id")
    return rung.Drain(queue, sink, batch_size=500, claim_idle=1.0)


async def not_a_drain() -> str:
    return "nope"
