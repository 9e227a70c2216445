"""One instance in the singleton tests: `python -m tests.state.singleton_worker URL NAME [long]`.

By default its job records `tick:fencing_token:pid` in Redis, then works for 0.2 s. With
`long`, its job runs for a minute in 50 ms steps and reports on stdout, one line each:
`start TOKEN PID`, then `done TOKEN PID` or `cancelled TOKEN PID <the cancel message>`; the
Singleton's own log lines follow as `log <message>`.
"""

import asyncio
import logging
import os
import sys
import time

import redis.asyncio as aioredis

import rung

PERIOD = 0.5


def say(*words: object) -> None:
    print(*words, flush=True)


async def main(url: str, name: str, mode: str) -> None:
    singleton = rung.Singleton(url, name=name, lease=PERIOD)
    r = aioredis.Redis.from_url(url)

    async def job(fencing_token: int) -> None:
        # The tick, read before any await: the run begins right after its claim. (Redis's
        # TIME, one round trip later, could fall in the next tick when the claim came late
        # in its tick, as a first claim at start-up may: the run was recorded twice.)
        tick = int(time.time() * 1000 // (PERIOD * 1000))  # the same host's clock as Redis's
        await r.rpush(f"{name}:runs", f"{tick}:{fencing_token}:{os.getpid()}")
        await asyncio.sleep(0.2)  # mid-run: the test kills the holder in here

    async def long_job(fencing_token: int) -> None:
        say("start", fencing_token, os.getpid())
        try:
            for _ in range(1200):
                await asyncio.sleep(0.05)  # mid-run: the test pauses the holder in here
        except asyncio.CancelledError as e:
            say("cancelled", fencing_token, os.getpid(), *e.args)
            raise
        say("done", fencing_token, os.getpid())

    singleton.every(PERIOD)(long_job if mode == "long" else job)
    await singleton.run()


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="log %(message)s", level=logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "short"))
