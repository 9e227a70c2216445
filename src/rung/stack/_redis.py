"""The two Redis servers: `cache` (LRU, nothing on disk) and `queue` (AOF, never evicts).

State that must not vanish (sessions, leases, queues) goes on `queue`; `cache` may evict
anything at any time.
"""

from __future__ import annotations

from typing import Any

import redis

from rung.stack import _binaries as binaries
from rung.stack._component import Component

CACHE_MAXMEMORY = "256mb"
QUEUE_APPENDFSYNC = "everysec"  # 'always' loses nothing acknowledged; 'everysec' up to ~1 s

_SETTINGS = {
    "cache": {
        "maxmemory": CACHE_MAXMEMORY,
        "maxmemory-policy": "allkeys-lru",
        "appendonly": "no",
        "save": "",
    },
    "queue": {
        "maxmemory-policy": "noeviction",
        "appendonly": "yes",
        "appendfsync": QUEUE_APPENDFSYNC,
        "save": "",
    },
}


class Redis(Component):
    """A Redis server whose settings follow its name: 'cache' or 'queue'."""

    kind = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        data = self.layout.dir / self.name
        data.mkdir(parents=True, exist_ok=True)
        args = [binaries.find("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(data), "--daemonize", "no", "--protected-mode", "yes"]  # fmt: skip
        for key, value in _SETTINGS[self.name].items():
            args += [f"--{key}", value]
        return args

    def _client(self) -> redis.Redis:
        return redis.Redis(
            port=self.port, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
        )

    def answers(self) -> bool:
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def health(self) -> dict[str, Any]:
        with self._client() as client:
            facts: dict[str, Any] = client.config_get("maxmemory-policy")
            facts.update(client.config_get("appendonly"))
        return facts
