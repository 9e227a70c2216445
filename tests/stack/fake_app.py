"""A stand-in for the service the stack runs (the tests must not depend on rung_links).

`app`: an ASGI app with `/healthz`, `/readyz` (503 while DIR/unready-<instance> exists) and
`/whoami` (which instance answered, a hash of its secret, the URLs it was given).
`make_drain`: a factory for `rung drain` whose drain marks each event it handles in the cache.
Both write a line to DIR/stopped.log when they stop, saying what was still running then.
"""

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

import redis.asyncio

import rung

STREAM = "fake-service"
Scope = dict[str, Any]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _record_stop(what: str) -> None:
    """Append to DIR/stopped.log: this process, and which other components still answered."""
    dir = Path(os.environ["RUNG_DIR"])
    stack = json.loads((dir / "stack.json").read_text())
    ports = {c["name"]: c["port"] for c in stack["components"]}
    listening = sorted(
        name for name, port in ports.items() if port and name != what and _listening(port)
    )
    with (dir / "stopped.log").open("a") as log:
        log.write(f"{what} saw {' '.join(listening)}\n")


def _ready() -> bool:
    return not Path(os.environ["RUNG_DIR"], f"unready-{os.environ['RUNG_INSTANCE']}").exists()


def _whoami(scope: Scope) -> dict[str, Any]:
    headers = dict(scope["headers"])
    return {
        "instance": os.environ["RUNG_INSTANCE"],
        "secret_sha256": hashlib.sha256(os.environ["RUNG_SECRET"].encode()).hexdigest(),
        "primary_url": os.environ["RUNG_PRIMARY_URL"],
        "replica_urls": os.environ["RUNG_REPLICA_URLS"],
        "cache_url": os.environ["RUNG_CACHE_URL"],
        "queue_url": os.environ["RUNG_QUEUE_URL"],
        "dir": os.environ["RUNG_DIR"],
        "forwarded_for": headers.get(b"x-forwarded-for", b"").decode(),
        "rung_variables": sorted(k for k in os.environ if k.startswith("RUNG_")),
    }


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _record_stop(os.environ["RUNG_INSTANCE"])
                await send({"type": "lifespan.shutdown.complete"})
                return
    status, body = 404, {"error": "not found"}
    if scope["path"] == "/healthz":
        status, body = 200, {"status": "ok"}
    elif scope["path"] == "/readyz":
        status, body = (200, {}) if _ready() else (503, {"status": "unready"})
    elif scope["path"] == "/whoami":
        status, body = 200, _whoami(scope)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class _RecordingDrain(rung.Drain):
    def stop(self) -> None:
        _record_stop(os.environ["RUNG_INSTANCE"])
        super().stop()


def make_drain() -> rung.Drain:
    """Drains STREAM: each event's `marker` is set in the cache Redis to the worker's name."""
    cache = redis.asyncio.Redis.from_url(os.environ["RUNG_CACHE_URL"])

    async def handle(event: dict[str, Any]) -> None:
        await cache.set(f"{STREAM}:{event['marker']}", os.environ["RUNG_INSTANCE"], ex=60)

    queue = rung.Queue(os.environ["RUNG_QUEUE_URL"], stream=STREAM)
    return _RecordingDrain(queue, rung.HandlerSink(handle), max_wait=0.01)
