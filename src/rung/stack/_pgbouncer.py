"""PgBouncer in transaction mode, one database entry per PostgreSQL node.

`rung_primary` → the primary, `rung_replica1`… → each replica; clients connect as `rung`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rung.stack import _binaries as binaries
from rung.stack._component import Component
from rung.stack._postgres import ROLE, psql

_CONFIG = """\
[databases]
{databases}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
admin_users = {role}
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
logfile =
pidfile =
"""


def database_name(node: str) -> str:
    """The PgBouncer database that leads to PostgreSQL node `node` ('primary', 'replica1'...)."""
    return f"{ROLE}_{node}"


class PgBouncer(Component):
    """PgBouncer in front of every PostgreSQL node of the stack."""

    kind = "pgbouncer"

    @property
    def nodes(self) -> list[str]:
        return [n for n in self.ports if n == "primary" or n.startswith("replica")]

    @property
    def url(self) -> str:
        return self.node_url("primary")

    def node_url(self, node: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database_name(node)}"

    @property
    def config(self) -> Path:
        return self.layout.server_root / "pgbouncer" / "pgbouncer.ini"

    def prepare(self) -> None:
        # Rewritten at every start: the nodes' ports may have changed.
        directory = self.config.parent
        directory.mkdir(parents=True, exist_ok=True)
        auth_file = directory / "userlist.txt"
        auth_file.write_text(f'"{ROLE}" ""\n')  # rung: ignore[RUNG201] (the stack's config)
        databases = "\n".join(
            f"{database_name(n)} = host=127.0.0.1 port={self.ports[n]} dbname={ROLE}"
            for n in self.nodes
        )
        self.config.write_text(  # rung: ignore[RUNG201] (the stack's own config)
            _CONFIG.format(databases=databases, port=self.port, auth_file=auth_file, role=ROLE)
        )
        user = self.layout.user
        for path in (directory, auth_file, self.config):
            _chown(path, user.uid, user.gid)

    def argv(self) -> list[str]:
        return self.layout.user.wrap([binaries.find("pgbouncer"), str(self.config)])

    def answers(self) -> bool:
        argv = [binaries.find("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", ROLE, "-d", "pgbouncer", "-t", "1"]  # fmt: skip
        return subprocess.run(argv, capture_output=True, timeout=5).returncode == 0

    def settle(self) -> None:
        psql(self.port, "SELECT 1", db=database_name("primary"))


def _chown(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
