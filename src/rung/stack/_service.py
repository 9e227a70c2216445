"""The service's own processes: app instances (uvicorn) and drain workers (`rung drain`).

Stack(".rung").up(instances=2, workers=1, app="myapp.main:app", drain="myapp.workers:clicks")

Each process gets the stack through its environment: `RUNG_PRIMARY_URL` and
`RUNG_REPLICA_URLS` (comma-separated) lead through PgBouncer, `RUNG_CACHE_URL`,
`RUNG_QUEUE_URL`, `RUNG_SECRET` (one per stack directory, the same for every instance, so a
cookie signed by one verifies on the next), `RUNG_INSTANCE` (its component name) and
`RUNG_DIR`; then the variables `Stack.configure` set, over those.
SIGTERM stops both: an app drains (readiness first, then the requests in flight),
a drain worker writes and acknowledges its batch in flight.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rung.errors import ComponentFailed, StackError
from rung.stack import _proc as proc
from rung.stack._component import Component, Layout
from rung.stack._pgbouncer import PgBouncer
from rung.stack._redis import Redis

DEFAULT_APP = "rung_links.app:app"
DEFAULT_DRAIN = "rung_links.drain:make"
GRACEFUL_SHUTDOWN = 10  # seconds uvicorn gives requests in flight once it stops listening

_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_SECRET = re.compile(r"[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STACK_VARIABLE = re.compile(r"RUNG_(\w+_URLS?|DIR|SECRET|INSTANCE)")


@dataclass(frozen=True)
class Service:
    """What the stack's app instances and drain workers run, as stack.json keeps it, so that
    a restart runs the same code. `workdir` is where `rung up` ran: the targets' modules are
    imported from there (uvicorn's `--app-dir`, and PYTHONPATH), wherever later commands run.
    """

    app: str = DEFAULT_APP
    drain: str = DEFAULT_DRAIN
    workdir: str = field(default_factory=os.getcwd)
    env: dict[str, str] = field(default_factory=dict)  # over the stack's (`Stack.configure`)

    def __post_init__(self) -> None:
        for option, target in (("--app", self.app), ("--drain", self.drain)):
            if not _TARGET.fullmatch(target):
                raise StackError(
                    f"{option} must be MODULE:NAME (e.g. myapp.main:app), not {target!r}"
                )
        for name, value in self.env.items():
            if not (isinstance(value, str) and _ENV_NAME.fullmatch(name)) or "\0" in value:
                raise StackError(f"the service's environment has a bad variable {name!r}")


def secret(dir: Path) -> str:
    """The stack's secret: 32 random bytes as hex in `dir/secret` (mode 0600), made on first
    use and kept across down and up; `rung down --purge` removes it with the directory."""
    path = dir / "secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if not _SECRET.fullmatch(value):
            raise StackError(
                f"{path} is not a secret rung made (64 hex digits): remove it"
            ) from None
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # copied or restored with looser permissions: only ours again
        return value
    value = secrets.token_hex(32)
    # the local stack's own secret, kept in its directory for the next `rung up`
    with os.fdopen(fd, "w") as file:  # rung: ignore[RUNG201]
        file.write(value + "\n")
    return value


class ServiceProcess(Component):
    """A process of the service: its code is the user's, its environment the stack's."""

    def __init__(
        self, name: str, layout: Layout, ports: Mapping[str, int], *, service: Service
    ) -> None:
        super().__init__(name, layout, ports)
        self.service = service

    def env(self) -> dict[str, str]:
        pooled = PgBouncer("pgbouncer", self.layout, self.ports)
        replicas = sorted(
            (n for n in self.ports if n.startswith("replica")),
            key=lambda n: int(n.removeprefix("replica")),
        )
        path = [self.service.workdir, *filter(None, [os.environ.get("PYTHONPATH")])]
        # Another stack's URLs exported in this shell (`rung env`) must not reach the app.
        inherited = {k: v for k, v in os.environ.items() if not _STACK_VARIABLE.fullmatch(k)}
        return {
            **inherited,
            "PYTHONPATH": os.pathsep.join(path),
            "RUNG_PRIMARY_URL": pooled.node_url("primary"),
            "RUNG_REPLICA_URLS": ",".join(pooled.node_url(r) for r in replicas),
            "RUNG_CACHE_URL": Redis("cache", self.layout, self.ports).url,
            "RUNG_QUEUE_URL": Redis("queue", self.layout, self.ports).url,
            "RUNG_SECRET": secret(self.layout.dir),
            "RUNG_INSTANCE": self.name,
            "RUNG_DIR": str(self.layout.dir),
            **self.service.env,
        }


class App(ServiceProcess):
    """One uvicorn process serving the app on its own port; it answers once `/healthz` is
    200. HAProxy decides from `/readyz` whether it gets traffic."""

    kind = "app"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", self.service.app,
                "--app-dir", self.service.workdir, "--host", "127.0.0.1",
                "--port", str(self.port), "--no-access-log",
                "--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN)]  # fmt: skip

    def answers(self) -> bool:
        return get(self.port, "/healthz") == 200


class DrainWorker(ServiceProcess):
    """One `rung drain` process. It has no port (0 in stack.json); it answers once it holds
    a connection to the queue Redis, that is once its factory built the Drain and it runs."""

    kind = "drain"
    listens = False

    @property
    def port(self) -> int:
        return 0

    @property
    def url(self) -> str:
        return ""

    def argv(self) -> list[str]:
        # The `rung` script of this Python's environment, whatever PATH says.
        beside = Path(sys.executable).parent / "rung"
        script = str(beside) if beside.is_file() else shutil.which("rung")
        if script is None:
            raise ComponentFailed(self.name, f"no `rung` command beside {sys.executable}")
        return [script, "drain", self.service.drain]

    def answers(self) -> bool:
        return self.proc is not None and proc.connected_to(self.proc, self.ports["queue"])


def get(port: int, path: str, *, timeout: float = 1.0) -> int | None:
    """The status of `GET http://127.0.0.1:<port><path>`, None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
