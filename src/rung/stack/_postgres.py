"""PostgreSQL: a primary (initdb) and streaming replicas (pg_basebackup -R) over TCP only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from rung.errors import ComponentFailed
from rung.stack import _binaries as binaries
from rung.stack._component import Component

ROLE = "rung"  # superuser role and database: this is a local development stack
_SETTINGS = """
# rung: settings of the local stack
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 500ms
shared_preload_libraries = 'pg_stat_statements'
"""


def psql(port: int, sql: str, *, db: str = ROLE, timeout: float = 10.0) -> str:
    """Run `sql` through psql on 127.0.0.1:`port`; the unaligned output, stripped.

    >>> psql(primary_port, "SELECT pg_is_in_recovery()")
    'f'
    """
    argv = [binaries.find("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, "-d", db, "-c", sql]  # fmt: skip
    env = {**os.environ, "PGCONNECT_TIMEOUT": "3"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise ComponentFailed(f"127.0.0.1:{port}", f"psql timed out after {timeout}s") from e
    if done.returncode != 0:
        raise ComponentFailed(f"127.0.0.1:{port}", done.stderr.strip() or "psql failed")
    return done.stdout.strip()


class _Postgres(Component):
    kind = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients, checkpoint, exit

    @property
    def data(self) -> Path:
        return self.layout.server_root / self.name

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{ROLE}"

    def argv(self) -> list[str]:
        cmd = [binaries.find("postgres"), "-D", str(self.data), "-p", str(self.port)]
        return self.layout.user.wrap(cmd + self.extra_args())

    def extra_args(self) -> list[str]:
        return []

    def answers(self) -> bool:
        argv = [binaries.find("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", ROLE, "-d", "postgres", "-t", "1"]  # fmt: skip
        return subprocess.run(argv, capture_output=True, timeout=5).returncode == 0

    def _run_as_server_user(self, argv: list[str], what: str) -> None:
        done = subprocess.run(
            self.layout.user.wrap(argv), capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise ComponentFailed(self.name, f"{what} failed", done.stderr.strip())


class Primary(_Postgres):
    """The primary: `wal_level=replica`, pg_stat_statements, role and database `rung`."""

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self._run_as_server_user(
            [binaries.find("initdb"), "-D", str(self.data), "-U", ROLE, "-A", "trust",
             "-E", "UTF8", "--locale=C.UTF-8"],
            "initdb",
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:  # rung: ignore[RUNG201]
            conf.write(_SETTINGS)

    def settle(self) -> None:
        if psql(self.port, f"SELECT 1 FROM pg_database WHERE datname = '{ROLE}'", db="postgres"):
            return
        psql(self.port, f"CREATE DATABASE {ROLE}", db="postgres")
        psql(self.port, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if psql(self.port, "SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'"):
            psql(self.port, "CREATE EXTENSION IF NOT EXISTS hypopg")

    def health(self) -> dict[str, Any]:
        return {"role": "primary"}


class Replica(_Postgres):
    """A hot standby streaming from the primary through its own replication slot."""

    @property
    def primary_port(self) -> int:
        return self.ports["primary"]

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        # A slot left by an earlier replica of this name would make `-C` fail.
        psql(
            self.primary_port,
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            f"WHERE slot_name = '{self.name}' AND NOT active",
        )
        self._run_as_server_user(
            [binaries.find("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary_port),
             "-U", ROLE, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
             "-C", "-S", self.name],
            "pg_basebackup",
        )  # fmt: skip

    def extra_args(self) -> list[str]:
        # On the command line, so that a primary on a new port is followed on the next start.
        conninfo = (
            f"host=127.0.0.1 port={self.primary_port} user={ROLE} application_name={self.name}"
        )
        return ["-c", f"cluster_name={self.name}", "-c", f"primary_conninfo={conninfo}",
                "-c", f"primary_slot_name={self.name}"]  # fmt: skip

    def replication_state(self) -> str:
        """This replica's state in the primary's pg_stat_replication ('' when not connected)."""
        return psql(
            self.primary_port,
            f"SELECT state FROM pg_stat_replication WHERE application_name = '{self.name}'",
        )

    def settle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.replication_state() != "streaming":
            if time.monotonic() > deadline:
                raise ComponentFailed(self.name, f"not streaming from the primary after {timeout}s")
            time.sleep(0.02)

    def health(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "role": "replica",
            "in_recovery": None,
            "replay_paused": None,
            "state": "",
            "lag_bytes": None,
            "lag_s": None,
        }
        try:
            primary_lsn = psql(self.primary_port, "SELECT pg_current_wal_lsn()", timeout=3)
            facts["state"] = self.replication_state()
        except ComponentFailed:
            primary_lsn = None  # the primary is down: lag is unknown
        lag = "NULL" if primary_lsn is None else f"'{primary_lsn}'::pg_lsn"
        row = psql(
            self.port,
            "SELECT pg_is_in_recovery(), pg_is_wal_replay_paused(), "
            f"greatest(0, pg_wal_lsn_diff({lag}, pg_last_wal_replay_lsn()))::bigint, "
            "coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)",
        ).split("|")
        facts["in_recovery"], facts["replay_paused"] = row[0] == "t", row[1] == "t"
        if row[2]:
            facts["lag_bytes"] = int(row[2])
            facts["lag_s"] = 0.0 if facts["lag_bytes"] == 0 else round(float(row[3]), 3)
        return facts
