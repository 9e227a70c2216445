"""The doctor's PostgreSQL sessions: bounded, tagged, and never in the statements it ranks.

conn = await connect(url, timeout=5.0)
rows = await conn.fetch(tagged("SELECT ... FROM pg_stat_statements"))
"""

from __future__ import annotations

import asyncpg

# pg_stat_statements keeps a statement's first text, comment included: the doctor's own
# statements carry this tag so that they are left out of what it ranks.
TAG = "/* rung doctor */"


def tagged(sql: str) -> str:
    return f"{TAG} {sql}"


async def connect(url: str, *, timeout: float) -> asyncpg.Connection:
    """A connection whose connect and every statement are bounded by `timeout` seconds. No
    statement cache: it works through PgBouncer in transaction mode too."""
    return await asyncpg.connect(
        url,
        timeout=timeout,
        command_timeout=timeout,
        statement_cache_size=0,
        server_settings={"application_name": "rung doctor"},
    )
