"""The statements that cost the database the most, from pg_stat_statements.

    statements = await top_statements(conn, limit=20)   # None: the extension is not there
    statements[0].query, statements[0].calls_per_s, statements[0].total_ms

PostgreSQL 13 renamed `total_time`/`mean_time` to `total_exec_time`/`mean_exec_time` (and
added planning times beside them): the columns are read under whichever name the view has.
Rates are averages since the statistics were last reset (`pg_stat_statements_info`, 14+),
else since the server started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from rung.db._routing import is_read
from rung.doctor._pg import TAG, tagged

_FROM = re.compile(r"\bFROM\b", re.IGNORECASE)
_DML = ("SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Statement:
    query: str  # normalized: constants are $n
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    calls_per_s: float

    @property
    def read(self) -> bool:
        return is_read(self.query)

    @property
    def reads_table(self) -> bool:
        """A read with a FROM: `SELECT pg_current_wal_lsn()` (a health poll) is not one."""
        return self.read and _FROM.search(self.query) is not None

    @property
    def verb(self) -> str:
        return self.query.lstrip("( \n\t").split(None, 1)[0].upper()


async def time_columns(conn: asyncpg.Connection) -> tuple[str, str] | None:
    """(total, mean) column names of pg_stat_statements here; None without the view."""
    names = {
        r["attname"]
        for r in await conn.fetch(
            tagged("SELECT attname FROM pg_attribute "
                   "WHERE attrelid = to_regclass('pg_stat_statements') AND attnum > 0"),
        )
    }  # fmt: skip
    if "total_exec_time" in names:
        return "total_exec_time", "mean_exec_time"
    if "total_time" in names:
        return "total_time", "mean_time"
    return None


async def top_statements(conn: asyncpg.Connection, *, limit: int = 20) -> list[Statement] | None:
    """This database's `limit` DML statements by total execution time, the doctor's own left
    out; None when pg_stat_statements is not installed in this database."""
    columns = await time_columns(conn)
    if columns is None:
        return None
    total, mean = columns
    since = (
        "(SELECT stats_reset FROM pg_stat_statements_info)"
        if await conn.fetchval(tagged("SELECT to_regclass('pg_stat_statements_info') IS NOT NULL"))
        else "pg_postmaster_start_time()"
    )
    rows = await conn.fetch(
        tagged(f"""
        SELECT query, calls, {total} AS total_ms, {mean} AS mean_ms, rows,
               calls / greatest(extract(epoch FROM now() - {since}), 1) AS calls_per_s
        FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND query NOT LIKE $1
          AND upper(substring(query FROM '^[[:space:](]*([A-Za-z]+)')) = ANY($2)
        ORDER BY {total} DESC LIMIT $3"""),
        f"{TAG}%", list(_DML), limit,
    )  # fmt: skip
    return [
        Statement(r["query"], r["calls"], float(r["total_ms"]), float(r["mean_ms"]), r["rows"],
                  float(r["calls_per_s"]))
        for r in rows
    ]  # fmt: skip
