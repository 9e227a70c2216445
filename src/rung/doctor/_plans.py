"""Generic plans of normalized statements, and hypothetical indexes to try on them.

    plan = await generic_plan(conn, "SELECT ... FROM clicks WHERE link_id = $1")
    plan.cost, plan.seq_scans, plan.reads, plan.writes

pg_stat_statements holds statements with $n parameters and no values. PostgreSQL 16 can
`EXPLAIN (GENERIC_PLAN)` them; 15 cannot, so: PREPARE the text (the server infers the
parameter types), force a generic plan, and EXPLAIN EXECUTE it with NULLs, which a generic
plan never looks at. Each EXPLAIN runs in a transaction that is rolled back, and each
prepares a statement of its own name: a generic plan is cached by its prepared statement,
and a hypothetical index creates no invalidation that would make a cached one replan.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from rung.doctor._pg import tagged

_names = itertools.count(1)

# `(clicks.link_id = $1)`, `((slug)::text = ($1)::text)`, `(clicked_at >= $3)`: a column compared.
_COMPARED = re.compile(
    r"\(\(?(?:\"?\w+\"?\.)?\"?([A-Za-z_]\w*)\"?\)?(?:::[A-Za-z ]+)?\s+(=|<=|>=|<|>)\s"
)


@dataclass(frozen=True)
class SeqScan:
    """A sequential scan node: the table, its filter as EXPLAIN prints it, rows estimated."""

    schema: str
    table: str
    filter: str
    rows: float

    def columns(self) -> tuple[list[str], list[str]]:
        """The filter's columns compared by equality, and by range, in order of appearance."""
        equal: list[str] = []
        ranged: list[str] = []
        for column, op in _COMPARED.findall(self.filter):
            into = equal if op == "=" else ranged
            if column not in equal and column not in ranged:
                into.append(column)
        return equal, ranged


@dataclass(frozen=True)
class Plan:
    cost: float
    reads: set[tuple[str, str]] = field(default_factory=set)  # (schema, table) scanned
    writes: set[tuple[str, str]] = field(default_factory=set)  # (schema, table) modified
    seq_scans: list[SeqScan] = field(default_factory=list)


async def generic_plan(conn: asyncpg.Connection, query: str) -> Plan | None:
    """The generic plan of `query`, or None when it cannot be prepared (a utility statement,
    a parameter whose type the server cannot infer, a table dropped since)."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        return await _explain(conn, query)
    except asyncpg.PostgresError:
        return None
    finally:
        await tx.rollback()


async def cost_with_index(conn: asyncpg.Connection, query: str, ddl: str) -> float | None:
    """The generic plan's estimated cost of `query` with the hypothetical index `ddl`
    (`CREATE INDEX ON t (c)`, HypoPG); None when the plan cannot be made."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(tagged("SELECT hypopg_create_index($1)"), ddl)
        try:
            plan = await _explain(conn, query)
        finally:
            await conn.execute(tagged("SELECT hypopg_reset()"))
        return None if plan is None else plan.cost
    except asyncpg.PostgresError:
        return None
    finally:
        await tx.rollback()


async def _explain(conn: asyncpg.Connection, query: str) -> Plan | None:
    name = f"rung_doctor_{next(_names)}"
    await conn.execute(f"PREPARE {name} AS {query}")
    try:
        params = await conn.fetchval(
            tagged("SELECT cardinality(parameter_types) FROM pg_prepared_statements "
                   "WHERE name = $1"), name,
        )  # fmt: skip
        nulls = f"({', '.join(['NULL'] * params)})" if params else ""
        raw = await conn.fetchval(tagged(f"EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE {name}{nulls}"))
    finally:
        await conn.execute(f"DEALLOCATE {name}")
    return _plan(orjson.loads(raw)[0]["Plan"])


def _plan(top: dict[str, Any]) -> Plan:
    plan = Plan(cost=float(top["Total Cost"]))
    for node in _nodes(top):
        if "Relation Name" not in node:
            continue
        table = (node.get("Schema", "public"), node["Relation Name"])
        if node["Node Type"] == "ModifyTable":
            plan.writes.add(table)
            continue
        plan.reads.add(table)
        if node["Node Type"] == "Seq Scan" and "Filter" in node:
            plan.seq_scans.append(SeqScan(*table, node["Filter"], float(node["Plan Rows"])))
    return plan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)
