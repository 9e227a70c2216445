"""One timer across three instances: each tick of `every(0.25)` runs exactly once, on
whichever instance claims it, with a fencing token that only grows.

    rung up && python examples/singleton_timer.py
"""

import asyncio
import collections
import secrets

import rung
from rung.stack import Stack, default_dir


async def main() -> None:
    stack = Stack(default_dir()).running()
    assert stack is not None, "start a stack first: rung up"
    name = f"example-{secrets.token_hex(3)}"
    runs: list[tuple[int, int]] = []  # (instance, fencing token)
    instances = [rung.Singleton(stack.urls()["queue_url"], name=name, lease=0.25)
                 for _ in range(3)]  # fmt: skip

    for number, singleton in enumerate(instances):

        @singleton.every(0.25)
        async def roll_up(fencing_token: int, number: int = number) -> None:
            runs.append((number, fencing_token))

    tasks = [asyncio.create_task(s.run()) for s in instances]
    await asyncio.sleep(2.0)  # eight ticks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for singleton in instances:
        await singleton.close()
    tokens = [token for _, token in runs]
    print("runs:", len(runs), "(ticks in 2 s: 8 or 9)")
    print("per instance:", dict(sorted(collections.Counter(n for n, _ in runs).items())))
    print("tokens increase:", tokens == sorted(tokens) and len(set(tokens)) == len(tokens))


if __name__ == "__main__":
    asyncio.run(main())
