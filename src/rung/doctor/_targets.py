"""What the doctor looks at: URLs given one by one, or a running stack's stack.json.

Targets(db="postgresql://app@db:5432/app", cache="redis://cache:6379/0")
Targets.from_stack(Path(".rung"), streams=("clicks",))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rung.errors import RungError
from rung.stack import Stack

_SCHEMES = {
    "db": ("postgresql://", "postgres://"),
    "replicas": ("postgresql://", "postgres://"),
    "cache": ("redis://", "rediss://", "unix://"),
    "queue": ("redis://", "rediss://", "unix://"),
    "app_url": ("http://", "https://"),
    "instance_urls": ("http://", "https://"),
}


@dataclass(frozen=True)
class Targets:
    """`streams` empty: every stream on the queue Redis; `app` a source tree for `rung lint`;
    `balancer_socket` HAProxy's stats socket and `instance_urls` each app instance's own
    URL (both known only from a stack's directory)."""

    db: str | None = None
    replicas: tuple[str, ...] = ()
    cache: str | None = None
    queue: str | None = None
    app_url: str | None = None
    streams: tuple[str, ...] = ()
    app: Path | None = None
    balancer_socket: Path | None = None
    instance_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for option, schemes in _SCHEMES.items():
            value = getattr(self, option)
            for url in value if isinstance(value, tuple) else (value,):
                if url is not None and not url.startswith(schemes):
                    flag = "--" + option.replace("_", "-").removesuffix("s")
                    raise ValueError(f"{flag} {url!r}: expected a URL starting {schemes[0]}")
        if self.app is not None and not self.app.exists():
            raise ValueError(f"--app {self.app}: no such file or directory")
        if not any((self.db, self.cache, self.queue, self.app_url, self.app)):
            raise ValueError("nothing to check: give --dir, or --db/--cache/--queue/--app-url")

    @classmethod
    def from_stack(
        cls, dir: Path, *, streams: tuple[str, ...] = (), app: Path | None = None
    ) -> Targets:
        """The running stack in `dir`: its primary (directly, not through PgBouncer, whose
        transaction mode would spread the doctor's session over server connections), its
        replicas, Redis servers, HAProxy and its stats socket."""
        stack = Stack(dir)
        record = stack.running()
        if record is None:
            raise RungError(f"no stack running in {dir}: start one with `rung up`, or pass --db")
        urls = record.urls()
        socket = Path(record.dir) / "haproxy.sock" if record.get("haproxy") else None
        return cls(
            db=urls.get("primary_url"),
            replicas=tuple(urls.get("replica_urls", ())),
            cache=urls.get("cache_url"),
            queue=urls.get("queue_url"),
            app_url=urls.get("app_url"),
            streams=streams,
            app=app,
            balancer_socket=socket,
            instance_urls=tuple(
                f"http://127.0.0.1:{c.port}" for c in record.components if c.kind == "app"
            ),
        )
