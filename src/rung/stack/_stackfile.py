"""`DIR/stack.json`: every component's pid, port, URL and log, written as the stack starts.

It is saved after each component starts, so that `rung down` can stop a half-started stack
even if `rung up` itself was killed.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rung.errors import StackError
from rung.stack._proc import Proc
from rung.stack._service import Service


@dataclass
class Record:
    """One component as stack.json holds it; `pid` is None while it is stopped, `port` is 0
    for a component with no port of its own (a drain worker) and `url` then ''."""

    name: str
    kind: str
    port: int
    log: str
    url: str
    pid: int | None = None
    started: int | None = None  # start time in clock ticks: a reused pid is not ours

    @property
    def proc(self) -> Proc | None:
        if self.pid is None or self.started is None:
            return None
        return Proc(self.pid, self.started)


@dataclass
class StackFile:
    """The whole stack.json: the URLs clients use, the components, and what the service's
    processes run (`service`: the app and drain targets, kept so a restart runs the same)."""

    dir: str
    server_root: str
    components: list[Record] = field(default_factory=list)
    service: Service = field(default_factory=Service)

    def get(self, name: str) -> Record | None:
        return next((c for c in self.components if c.name == name), None)

    def ports(self) -> dict[str, int]:
        """Every component's port by name, the ones without a port left out."""
        return {c.name: c.port for c in self.components if c.port}

    def put(self, record: Record) -> None:
        self.components = [c for c in self.components if c.name != record.name] + [record]

    def urls(self) -> dict[str, Any]:
        """The schema's URL keys, derived from the components."""
        by_name = {c.name: c for c in self.components}
        replicas = sorted(
            (c for c in self.components if c.name.startswith("replica")),
            key=lambda c: int(c.name.removeprefix("replica")),
        )
        urls: dict[str, Any] = {}
        if "primary" in by_name:
            urls["primary_url"] = by_name["primary"].url
            urls["replica_urls"] = [c.url for c in replicas]
        if "pgbouncer" in by_name:
            base = by_name["pgbouncer"].url.rsplit("/", 1)[0]
            urls["pooled_primary_url"] = f"{base}/rung_primary"
            urls["pooled_replica_urls"] = [f"{base}/rung_{c.name}" for c in replicas]
        for name in ("cache", "queue"):
            if name in by_name:
                urls[f"{name}_url"] = by_name[name].url
        if "haproxy" in by_name:
            urls["app_url"] = by_name["haproxy"].url
        return urls

    def to_json(self) -> dict[str, Any]:
        return {
            **self.urls(),
            "dir": self.dir,
            "server_root": self.server_root,
            "service": asdict(self.service),
            "components": [asdict(c) for c in self.components],
        }

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        # the CLI's own file (stack.json), written once per command, never by a request
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")  # rung: ignore[RUNG201]
        os.replace(tmp, path)  # rung: ignore[RUNG201]

    @classmethod
    def load(cls, path: Path) -> StackFile | None:
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would hang the read
                raise StackError(f"{path} is not a regular file")
            data = json.loads(path.read_text())
            fields = set(Record.__dataclass_fields__)
            return cls(
                dir=data["dir"],
                server_root=data["server_root"],
                components=[
                    Record(**{k: v for k, v in c.items() if k in fields})
                    for c in data["components"]
                ],
                service=Service(**data["service"]) if "service" in data else Service(),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            raise StackError(f"{path} is not a stack file rung can read ({e!r})") from e
