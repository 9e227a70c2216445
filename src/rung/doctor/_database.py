"""Database checks on the primary: the top statements and the indexes they lack, sequential
scans on large tables, connections (in use, churn, idle in transaction), the shared-buffer
hit ratio and the read/write ratio.

    facts = await check_database(url, timeout=5.0, sample=1.0, large_rows=10_000)
    facts.findings, facts.plans, facts.tables
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from rung.doctor._indexes import Candidate, index_candidates
from rung.doctor._model import Finding, Verdict
from rung.doctor._pg import connect, tagged
from rung.doctor._plans import Plan, generic_plan
from rung.doctor._statements import Statement, top_statements

PLANNED = 20  # statements whose generic plans are read: the costliest, by total time


@dataclass(frozen=True)
class TableWrites:
    """A table's row counters since the statistics were reset."""

    inserted: int
    updated: int
    deleted: int
    scans: int  # sequential plus index scans: how often it is read


@dataclass
class DatabaseFacts:
    """What the checks found, and what the advice on caching and levelling reads."""

    findings: list[Finding] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    plans: list[tuple[Statement, Plan]] = field(default_factory=list)
    tables: dict[tuple[str, str], TableWrites] = field(default_factory=dict)
    table_reads: int = 0  # calls of statements that read tables, on the primary
    read_share: float | None = None  # those reads' share of statement calls
    connections: tuple[int, int] | None = None  # (in use, usable) on the primary


async def check_database(
    url: str, *, timeout: float, sample: float, large_rows: int
) -> DatabaseFacts:
    facts = DatabaseFacts()
    stats = await connect(url, timeout=timeout)
    try:
        # Churn is sampled while the rest runs: the doctor's own plan session opens before.
        plans_conn = await connect(url, timeout=timeout)
        try:
            first = await _sessions(stats)
            await _statements(stats, plans_conn, facts, large_rows=large_rows)
            await _scans(stats, facts, large_rows=large_rows)
            await asyncio.sleep(max(0.0, sample - (time.monotonic() - first[1])))
            facts.findings.append(_churn(first, await _sessions(stats)))
        finally:
            await plans_conn.close()
        facts.findings += await _connections(stats, facts)
        facts.findings.append(await _hit_ratio(stats))
    finally:
        await stats.close()
    return facts


async def _statements(
    conn: asyncpg.Connection, plans_conn: asyncpg.Connection, facts: DatabaseFacts,
    *, large_rows: int,
) -> None:  # fmt: skip
    statements = await top_statements(conn, limit=500)
    if statements is None:
        facts.findings.append(Finding(
            "database", "top statements", Verdict.watch,
            "pg_stat_statements is not installed in this database: no statement can be ranked",
            "add pg_stat_statements to shared_preload_libraries, restart, then "
            "CREATE EXTENSION pg_stat_statements", rung="indexes",
        ))  # fmt: skip
        return
    facts.statements = statements
    total = sum(s.total_ms for s in statements) or 1.0
    evidence: dict[str, int | float | str | bool | None] = {}
    for i, s in enumerate(statements[:5], 1):
        evidence[f"statement_{i}"] = _short(s.query)
        evidence[f"statement_{i}_calls"] = s.calls
        evidence[f"statement_{i}_mean_ms"] = round(s.mean_ms, 3)
        evidence[f"statement_{i}_share"] = round(s.total_ms / total, 3)
    top = f"{_short(statements[0].query, 60)!r} takes {statements[0].total_ms / total:.0%}" \
        if statements else "no statements recorded yet"  # fmt: skip
    facts.findings.append(Finding("database", "top statements", Verdict.ok,
                                  f"{len(statements)} statements; {top} of their time",
                                  "nothing: the index and caching findings name what to change",
                                  evidence))  # fmt: skip
    facts.table_reads = sum(s.calls for s in statements if s.reads_table)
    calls = facts.table_reads + sum(s.calls for s in statements if not s.read)
    if calls:
        facts.read_share = facts.table_reads / calls
    for s in statements[:PLANNED]:
        plan = await generic_plan(plans_conn, s.query)
        if plan is not None:
            facts.plans.append((s, plan))
    hypopg = bool(await conn.fetchval(
        tagged("SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'")
    ))  # fmt: skip
    candidates = await index_candidates(plans_conn, facts.plans, large_rows=large_rows,
                                        hypopg=hypopg)  # fmt: skip
    facts.findings += [_index_finding(c) for c in candidates]


def _index_finding(c: Candidate) -> Finding:
    evidence: dict[str, int | float | str | bool | None] = {
        "statement": c.statement.query,
        "calls": c.statement.calls,
        "mean_ms": round(c.statement.mean_ms, 3),
        "table": f"{c.schema}.{c.table}",
        "columns": ", ".join(c.columns),
        "cost_before": c.cost_before,
        "cost_after": c.cost_after,
        "verified": c.cost_after is not None,
        "ddl": c.ddl,
    }
    if c.saving is not None:
        evidence["cost_reduction"] = round(c.saving, 3)
        return Finding(
            "database", f"index on {c.table} ({', '.join(c.columns)})", Verdict.act,
            f"{_short(c.statement.query, 60)!r} scans {c.table} sequentially; HypoPG estimates "
            f"cost {c.cost_before:.0f} -> {c.cost_after:.0f} ({c.saving:.0%} less) with the index",
            f"run: {c.ddl}", evidence, rung="indexes",
        )  # fmt: skip
    return Finding(
        "database", f"index on {c.table} ({', '.join(c.columns)})", Verdict.watch,
        f"{_short(c.statement.query, 60)!r} scans {c.table} sequentially; the index is "
        "unverified (HypoPG is not installed here)",
        f"CREATE EXTENSION hypopg to verify it, or try it: {c.ddl}", evidence, rung="indexes",
    )  # fmt: skip


async def _scans(conn: asyncpg.Connection, facts: DatabaseFacts, *, large_rows: int) -> None:
    rows = await conn.fetch(tagged("""
        SELECT schemaname, relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan,
               n_live_tup, n_tup_ins, n_tup_upd, n_tup_del
        FROM pg_stat_user_tables"""))  # fmt: skip
    indexed = {f.evidence.get("table") for f in facts.findings}
    flagged = []
    for r in rows:
        key = (r["schemaname"], r["relname"])
        facts.tables[key] = TableWrites(r["n_tup_ins"], r["n_tup_upd"], r["n_tup_del"],
                                        r["seq_scan"] + r["idx_scan"])  # fmt: skip
        full_scans = r["seq_tup_read"] / max(r["n_live_tup"], 1)
        if r["n_live_tup"] >= large_rows and full_scans >= 1.0:
            flagged.append(r)
    for r in flagged:
        table = f"{r['schemaname']}.{r['relname']}"
        evidence: dict[str, int | float | str | bool | None] = {
            "table": table, "rows": r["n_live_tup"], "seq_scans": r["seq_scan"],
            "rows_read_by_seq_scans": r["seq_tup_read"], "index_scans": r["idx_scan"],
        }  # fmt: skip
        known = table in indexed
        facts.findings.append(Finding(
            "database", f"sequential scans on {r['relname']}",
            Verdict.act if known else Verdict.watch,
            f"{r['seq_scan']} sequential scans read {r['seq_tup_read']} rows of "
            f"{r['n_live_tup']}-row {table}",
            "create the index recommended for it (above)" if known else
            "find the statement that scans it (pg_stat_statements, EXPLAIN) and index "
            "its filter", evidence, rung="indexes",
        ))  # fmt: skip
    if not flagged:
        facts.findings.append(Finding(
            "database", "sequential scans on large tables", Verdict.ok,
            f"no table of {large_rows} rows or more is read by sequential scans",
            "nothing", {"large_rows": large_rows},
        ))  # fmt: skip


async def _sessions(conn: asyncpg.Connection) -> tuple[int, float]:
    sessions = await conn.fetchval(
        tagged("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
    )
    return int(sessions or 0), time.monotonic()


def _churn(first: tuple[int, float], second: tuple[int, float]) -> Finding:
    # pg_stat_database.sessions counts sessions established; the doctor opened none between.
    rate = (second[0] - first[0]) / max(second[1] - first[1], 1e-3)
    evidence = {"new_sessions_per_s": round(rate, 2), "sampled_s": round(second[1] - first[1], 2)}
    if rate >= 5.0:
        verdict, summary = Verdict.act, f"{rate:.1f} new sessions/s: a connection per request"
    elif rate >= 1.0:
        verdict, summary = Verdict.watch, f"{rate:.1f} new sessions/s"
    else:
        verdict, summary = Verdict.ok, f"{rate:.1f} new sessions/s: connections are reused"
    step = (
        "nothing"
        if verdict is Verdict.ok
        else "pool connections: one rung.Database per "
        "process (its pools keep connections open), or PgBouncer in transaction mode"
    )
    return Finding("database", "connection churn", verdict, summary, step, evidence,
                   rung="pooling")  # fmt: skip


async def _connections(conn: asyncpg.Connection, facts: DatabaseFacts) -> list[Finding]:
    r = await conn.fetchrow(tagged("""
        SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS in_use,
               count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_tx,
               coalesce(extract(epoch FROM max(now() - state_change)
                   FILTER (WHERE state LIKE 'idle in transaction%')), 0) AS oldest_idle_in_tx_s,
               current_setting('max_connections')::int AS max_connections,
               current_setting('superuser_reserved_connections')::int AS reserved
        FROM pg_stat_activity"""))  # fmt: skip
    assert r is not None
    usable = max(r["max_connections"] - r["reserved"], 1)
    share = r["in_use"] / usable
    facts.connections = (r["in_use"], usable)
    verdict = Verdict.act if share >= 0.8 else Verdict.watch if share >= 0.6 else Verdict.ok
    in_use = Finding(
        "database", "connections in use", verdict,
        f"{r['in_use']} of {usable} usable connections ({share:.0%})",
        "nothing" if verdict is Verdict.ok else "pool: PgBouncer in transaction mode in front of "
        "the primary; size each process's pool so that their sum stays under max_connections",
        {"in_use": r["in_use"], "max_connections": r["max_connections"],
         "superuser_reserved": r["reserved"], "share": round(share, 3)}, rung="pooling",
    )  # fmt: skip
    oldest = float(r["oldest_idle_in_tx_s"])
    idle_verdict = Verdict.act if oldest >= 60 else Verdict.watch if oldest >= 5 else Verdict.ok
    idle = Finding(
        "database", "idle in transaction", idle_verdict,
        f"{r['idle_in_tx']} sessions idle in a transaction, the oldest for {oldest:.1f}s",
        "nothing" if idle_verdict is Verdict.ok else "find the code that keeps a transaction "
        "open across I/O; set idle_in_transaction_session_timeout",
        {"idle_in_transaction": r["idle_in_tx"], "oldest_s": round(oldest, 1)}, rung="pooling",
    )  # fmt: skip
    return [in_use, idle]


async def _hit_ratio(conn: asyncpg.Connection) -> Finding:
    r = await conn.fetchrow(tagged(
        "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
    ))  # fmt: skip
    assert r is not None
    accesses = r["blks_hit"] + r["blks_read"]
    ratio = r["blks_hit"] / accesses if accesses else 1.0
    evidence = {"blocks_hit": r["blks_hit"], "blocks_read": r["blks_read"],
                "hit_ratio": round(ratio, 4)}  # fmt: skip
    if accesses < 10_000:
        return Finding(
            "database",
            "shared-buffer hit ratio",
            Verdict.ok,
            f"{accesses} block accesses: too few to judge",
            "nothing",
            evidence,
        )
    verdict = Verdict.ok if ratio >= 0.99 else Verdict.watch if ratio >= 0.95 else Verdict.act
    return Finding(
        "database", "shared-buffer hit ratio", verdict,
        f"{ratio:.2%} of block reads come from shared buffers",
        "nothing" if verdict is Verdict.ok else "the working set outgrows shared_buffers: "
        "index the scans that read whole tables, raise shared_buffers, or cache hot reads",
        evidence, rung="cache",
    )  # fmt: skip


def _short(query: str, width: int = 120) -> str:
    one_line = " ".join(query.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"
