"""Versioned SQL migrations, applied at startup exactly once however many instances start.

    applied = await migrate(db, instance="app1")   # the versions this call applied

The migrations are the files `migrations/NNNN_name.sql`, in version order. Each is applied
in its own transaction on the primary that first takes a transaction-level advisory lock
(`pg_advisory_xact_lock`), then reads `schema_migrations`, applies the lowest version not
recorded there and records it. So N instances starting at once queue on the lock, and each
later one finds the version recorded. A transaction-level lock, not a session one: through
PgBouncer in transaction mode a session lock would stay on a server connection the pool
hands to someone else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import rung

# Any fixed 64-bit key shared by every instance: 'rung_lnk' in ASCII.
LOCK_KEY = int.from_bytes(b"rung_lnk", "big") - 2**63

_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_by text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The packaged migrations in version order; `ValueError` on a misnamed or repeated one."""
    found: dict[int, Migration] = {}
    for entry in resources.files("rung_links").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.fullmatch(entry.name)
        if match is None:
            raise ValueError(f"migration {entry.name!r} is not named NNNN_name.sql")
        version = int(match[1])
        if version in found:
            raise ValueError(f"two migrations have version {version}")
        found[version] = Migration(version, match[2], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(
    db: rung.Database, *, instance: str, pending: list[Migration] | None = None,
    upto: int | None = None,
) -> list[int]:  # fmt: skip
    """Apply the migrations `schema_migrations` does not record yet, up to version `upto`
    (default: all); the versions applied by this call (none when another instance got there
    first)."""
    todo = migrations() if pending is None else pending
    todo = [m for m in todo if upto is None or m.version <= upto]
    applied: list[int] = []
    while True:
        async with db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            await db.execute(_CREATE_LEDGER)
            done = {
                row["version"] for row in await db.fetch("SELECT version FROM schema_migrations")
            }
            due = [m for m in todo if m.version not in done]
            if not due:
                return applied
            await db.execute(due[0].sql)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_by) VALUES ($1, $2, $3)",
                due[0].version,
                due[0].name,
                instance,
            )
        applied.append(due[0].version)
