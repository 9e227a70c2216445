"""A short end-to-end check of a running stack: replication and both Redis servers work.

for line in smoke(stack_file): print(line)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import redis

from rung.errors import StackError
from rung.stack._pgbouncer import database_name
from rung.stack._postgres import psql
from rung.stack._stackfile import StackFile


def smoke(stack: StackFile, *, replication_timeout: float = 2.0) -> Iterator[str]:
    """Yield one line per check that passed; raise `StackError` on the first that fails."""
    ports = {c.name: c.port for c in stack.components}
    marker = secrets.token_hex(8)
    psql(ports["primary"], "CREATE TABLE IF NOT EXISTS rung_smoke (marker text PRIMARY KEY)")
    psql(ports["primary"], f"INSERT INTO rung_smoke VALUES ('{marker}')")
    lsn = psql(ports["primary"], "SELECT pg_current_wal_lsn()")
    query = f"SELECT count(*) FROM rung_smoke WHERE marker = '{marker}'"
    for name in sorted(n for n in ports if n.startswith("replica")):
        began = time.monotonic()
        replayed = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
        while psql(ports[name], replayed) != "t":
            if time.monotonic() - began > replication_timeout:
                raise StackError(f"a row written on the primary did not reach {name}")
            time.sleep(0.005)
        if psql(ports[name], query) != "1":
            raise StackError(f"{name} replayed past the write but does not show the row")
        yield f"a row written on the primary was read on {name} after {_ms(began)}"
        pooled = psql(ports["pgbouncer"], query, db=database_name(name))
        if pooled != "1":
            raise StackError(f"PgBouncer's {database_name(name)} did not see the row")
        yield f"PgBouncer's {database_name(name)} reads it too"
    psql(ports["primary"], f"DELETE FROM rung_smoke WHERE marker = '{marker}'")
    for name in ("cache", "queue"):
        with redis.Redis(port=ports[name], socket_timeout=2.0, decode_responses=True) as client:
            client.set(f"rung:smoke:{marker}", marker, ex=60)
            if client.get(f"rung:smoke:{marker}") != marker:
                raise StackError(f"SET then GET on the {name} Redis did not return the value")
            client.delete(f"rung:smoke:{marker}")
        yield f"SET then GET on the {name} Redis"


def _ms(began: float) -> str:
    return f"{(time.monotonic() - began) * 1000:.0f} ms"
