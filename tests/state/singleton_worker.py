"""One instance in the singleton test: `python -m tests.state.singleton_worker URL NAME`.
Its job records `tick:fencing_token:pid` in Redis, then works for 0.2 s."""

import asyncio
import os
import sys

import redis.asyncio as aioredis

import rung

PERIOD = 0.5


async def main(url: str, name: str) -> None:
    singleton = rung.Singleton(url, name=name, lease=PERIOD)
    r = aioredis.Redis.from_url(url)

    @singleton.every(PERIOD)
    async def job(fencing_token: int) -> None:
        seconds, micros = await r.time()
        tick = int((seconds * 1000 + micros // 1000) // (PERIOD * 1000))
        await r.rpush(f"{name}:runs", f"{tick}:{fencing_token}:{os.getpid()}")
        await asyncio.sleep(0.2)  # mid-run: the test kills the holder in here

    await singleton.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
