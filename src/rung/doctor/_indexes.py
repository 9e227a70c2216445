"""Index candidates: a sequential scan on a large table in a top statement's generic plan,
the filter's columns as an index (equality columns first, then one range column, as a
B-tree serves them), verified with HypoPG when it is installed.

    candidates = await index_candidates(conn, plans, large_rows=10_000, hypopg=True)
    candidates[0].ddl   # 'CREATE INDEX CONCURRENTLY ON public.clicks (link_id, clicked_at)'

As dexter does, a verified candidate is recommended when it cuts the statement's estimated
cost by at least `min_saving` (50 %); without HypoPG it is reported unverified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from rung.doctor._pg import tagged
from rung.doctor._plans import Plan, cost_with_index
from rung.doctor._statements import Statement

_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class Candidate:
    statement: Statement
    schema: str
    table: str
    columns: tuple[str, ...]
    cost_before: float
    cost_after: float | None  # None: not verified (no HypoPG)

    @property
    def target(self) -> str:
        return f"{ident(self.schema)}.{ident(self.table)} ({', '.join(map(ident, self.columns))})"

    @property
    def ddl(self) -> str:
        """The statement to run: concurrently, so the table stays writable meanwhile."""
        return f"CREATE INDEX CONCURRENTLY ON {self.target}"

    @property
    def saving(self) -> float | None:
        """The share of the estimated cost the index saves (0.0 to 1.0)."""
        if self.cost_after is None or self.cost_before <= 0:
            return None
        return max(0.0, 1.0 - self.cost_after / self.cost_before)


def ident(name: str) -> str:
    """`name` as an SQL identifier: quoted unless it is a plain lower-case one."""
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'


async def index_candidates(
    conn: asyncpg.Connection,
    plans: list[tuple[Statement, Plan]],
    *,
    large_rows: int,
    hypopg: bool,
    min_saving: float = 0.5,
) -> list[Candidate]:
    """One candidate per (table, columns), for the costliest statement that wants it."""
    found: dict[tuple[str, str, tuple[str, ...]], Candidate] = {}
    for statement, plan in plans:
        for scan in plan.seq_scans:
            columns = await _columns(conn, scan.schema, scan.table, large_rows=large_rows)
            if columns is None:
                continue
            equal, ranged = scan.columns()
            wanted = tuple([c for c in equal if c in columns][:3] +
                           [c for c in ranged if c in columns][:1])  # fmt: skip
            key = (scan.schema, scan.table, wanted)
            if not wanted or key in found:
                continue
            candidate = Candidate(statement, scan.schema, scan.table, wanted, plan.cost, None)
            if hypopg:
                hypothetical = f"CREATE INDEX ON {candidate.target}"
                after = await cost_with_index(conn, statement.query, hypothetical)
                candidate = Candidate(statement, *key[:2], wanted, plan.cost, after)
                if after is None or (candidate.saving or 0.0) < min_saving:
                    continue
            found[key] = candidate
    return list(found.values())


async def _columns(
    conn: asyncpg.Connection, schema: str, table: str, *, large_rows: int
) -> set[str] | None:
    """The columns of `schema.table` when the planner thinks it has `large_rows` or more."""
    rows = await conn.fetch(
        tagged("""
        SELECT a.attname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = $1 AND c.relname = $2 AND c.reltuples >= $3"""),
        schema, table, float(large_rows),
    )  # fmt: skip
    return {r["attname"] for r in rows} or None
