"""What the supervisor knows of a component: how to prepare it, run it, and ask if it answers.

Each server is one subclass in its own module (_postgres.py, _pgbouncer.py, _redis.py,
_haproxy.py), and so are the service's processes (_service.py: app instances, drain workers);
the supervisor starts them in plan order and stops them in reverse.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rung.stack._proc import Proc, User


@dataclass(frozen=True)
class Layout:
    """Where a stack keeps its files.

    `dir` holds stack.json, logs and Redis data; `server_root` holds what the unprivileged
    server user owns (PostgreSQL data directories, PgBouncer's config). It is `dir/servers`
    unless that user cannot reach `dir` (say, a checkout under /root), then a private
    directory under /var/tmp.
    """

    dir: Path
    server_root: Path
    user: User

    @property
    def stack_file(self) -> Path:
        return self.dir / "stack.json"

    def log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"


class Component(ABC):
    """One server process of the stack."""

    kind: ClassVar[str]
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    listens: ClassVar[bool] = True  # False: no port of its own (stack.json says 0)

    def __init__(self, name: str, layout: Layout, ports: Mapping[str, int]) -> None:
        self.name = name
        self.layout = layout
        self.ports = ports  # every component's port, by name: replicas need the primary's
        self.proc: Proc | None = None  # the running process, when the supervisor knows it

    @property
    def port(self) -> int:
        return self.ports[self.name]

    @property
    def log(self) -> Path:
        return self.layout.log(self.name)

    @property
    @abstractmethod
    def url(self) -> str:
        """How a client reaches this component."""

    def prepare(self) -> None:
        """One-off setup before the first start (init, config files); idempotent."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    def env(self) -> dict[str, str] | None:
        """The process's environment; None: the supervisor's own."""
        return None

    @abstractmethod
    def answers(self) -> bool:
        """A quick probe: does the server accept clients now?"""

    def settle(self) -> None:
        """Once it answers: finish setting up (create the database, wait for streaming)."""

    def health(self) -> dict[str, Any]:
        """Extra facts for `rung status` (replication lag, role); empty by default."""
        return {}
