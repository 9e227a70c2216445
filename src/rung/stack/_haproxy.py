"""HAProxy in front of the app instances: round robin over the ones whose `/readyz` is 200.

The config (DIR/haproxy.cfg) is written at every start, since the instances' ports may have
changed; `backends()` reads each instance's state from the stats socket (DIR/haproxy.sock),
which is what `rung status` shows.
"""

from __future__ import annotations

import csv
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.errors import ComponentFailed
from rung.stack import _binaries as binaries
from rung.stack import _proc as proc
from rung.stack._component import Component

BACKEND = "apps"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the final NUL

# Why each line is there:
# - hard-stop-after: the soft stop (SIGUSR1) finishes requests in flight, for at most 5 s.
# - log: the frontend alone logs, to stdout (the component's log file); dontlog-normal keeps
#   only errors, retries and redispatches, so a load test does not fill the disk, and
#   dontlognull skips the probes that connect and close (`rung status`). Server state
#   changes reach the same file through stderr (haproxy -db prints them there).
# - http-server-close: a new connection per request to an instance. An idle keep-alive
#   connection that the instance closes (its keep-alive timeout, a drain) as HAProxy reuses
#   it fails the request with an empty response, which must not be retried for a POST.
# - retries 3, redispatch 1: a connection refused (a killed instance, not yet marked DOWN)
#   is tried again at once on another instance, not after a 1 s pause on the same one.
# - retry-on: the request is sent again after a connection failure (never sent, so always
#   safe), and, for GET/HEAD/OPTIONS only, after an empty response or a response timeout:
#   a POST the instance may have committed before it died is not replayed.
# - X-Rung-Request: an id per request, the same on every retry of it (a client's own is
#   dropped), so an app can tell a replayed GET from a new one (rung_links: one click each).
# - checks every 500 ms, 2 to fall or rise: an instance that dies or starts draining is out
#   within about a second; rung.web's drain keeps serving for its grace (2 s) meanwhile.
_CONFIG = """\
# Written by rung at every start of the stack's haproxy: edits are lost.
global
    stats socket {socket} mode 600 level admin
    stats timeout 10s
    hard-stop-after 5s
    maxconn 4096

defaults
    mode http
    option httplog
    option dontlog-normal
    option dontlognull
    option http-server-close
    option forwardfor
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    timeout check 1s

frontend web
    bind 127.0.0.1:{port}
    log stdout format raw local0
    http-request del-header X-Rung-Request
    unique-id-format %[uuid()]
    unique-id-header X-Rung-Request
    default_backend {backend}

backend {backend}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-request disable-l7-retry unless {{ method GET HEAD OPTIONS }}
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


@dataclass(frozen=True)
class Backend:
    """One app instance as HAProxy sees it: `status` UP, DOWN, 'UP 1/2' (failing, not yet
    out), MAINT...; `check` the last check's result (L7OK, L7STS: a status not 200, L4CON:
    refused, INI: not checked yet) and `detail` what it means."""

    name: str
    status: str
    check: str
    detail: str

    @property
    def up(self) -> bool:
        """Taking traffic after a check that passed (not merely UP since HAProxy started)."""
        return self.status == "UP" and self.check.startswith("L7OK")


class HAProxy(Component):
    """The stack's load balancer: `app_url` in stack.json, one server per app instance."""

    kind = "haproxy"
    stop_signal = signal.SIGUSR1  # soft stop: unbind at once, finish what is in flight

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.layout.dir / "haproxy.cfg"

    @property
    def socket(self) -> Path:
        return self.layout.dir / "haproxy.sock"

    @property
    def instances(self) -> list[str]:
        apps = [n for n in self.ports if n.startswith("app") and n[3:].isdigit()]
        return sorted(apps, key=lambda n: int(n[3:]))

    def prepare(self) -> None:
        if len(str(self.socket).encode()) > _SOCKET_PATH_MAX:
            raise ComponentFailed(
                self.name,
                f"the stats socket path {self.socket} is longer than {_SOCKET_PATH_MAX} bytes; "
                "use a shorter --dir",
            )
        servers = "\n".join(f"    server {n} 127.0.0.1:{self.ports[n]}" for n in self.instances)
        self.config.write_text(  # rung: ignore[RUNG201] (the stack's own config)
            _CONFIG.format(socket=self.socket, port=self.port, backend=BACKEND, servers=servers)
        )
        check = subprocess.run([binaries.find("haproxy"), "-c", "-f", str(self.config)],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        if check.returncode != 0:
            output = (check.stdout + check.stderr).strip()
            raise ComponentFailed(self.name, f"{self.config} is not valid", output)

    def argv(self) -> list[str]:
        # -db: in the foreground, one process (the pid we record), messages on stderr.
        return [binaries.find("haproxy"), "-db", "-f", str(self.config)]

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                pass
            self.backends()
        except OSError:
            return False
        return True

    def settle(self, names: list[str] | None = None, *, timeout: float = 30.0) -> None:
        """Return once every instance (or each of `names`, the ones running) is UP after a
        check that passed."""
        deadline = time.monotonic() + timeout
        while not_up := [
            b for b in self.backends() if not b.up and (names is None or b.name in names)
        ]:
            if time.monotonic() > deadline:
                reason = f"not every instance is UP after {timeout:.0f}s: {_describe(not_up)}"
                raise ComponentFailed(self.name, reason, proc.tail(self.log))
            time.sleep(0.02)

    def health(self) -> dict[str, Any]:
        backends = self.backends()
        facts: dict[str, Any] = {"backends": {b.name: b.status for b in backends}}
        if not_up := [b for b in backends if not b.up]:
            facts["error"] = _describe(not_up)
        return facts

    def backends(self) -> list[Backend]:
        """Each app instance's state, read from the stats socket (`show stat`)."""
        return parse_stat(self._query("show stat"))

    def _query(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2.0)
            client.connect(str(self.socket))
            client.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := client.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()


def parse_stat(text: str) -> list[Backend]:
    """The servers of the `apps` backend in `show stat` CSV (header line `# pxname,...`)."""
    rows = csv.DictReader(text.removeprefix("# ").splitlines())
    return [
        Backend(row["svname"], row["status"], row["check_status"], row["check_desc"])
        for row in rows
        if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
    ]


def _describe(backends: list[Backend]) -> str:
    return "; ".join(f"{b.name} is {b.status} ({b.check}: {b.detail})" for b in backends)
