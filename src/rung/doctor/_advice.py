"""What to cache and what to level, from the statements' measured load and their tables'
writes.

    findings = advice(facts)

Cache: a read statement that costs the database real time (calls/s x mean time) is a
candidate; with a TTL when its tables are rarely written (tolerably stale data), with
explicit invalidation after commit when they are written often. The saving assumes a 90 %
hit rate. Level: a high-rate single-row INSERT into an append-only table (no UPDATE or
DELETE seen, few reads) is a candidate for rung.Queue + rung.Drain, which writes it in
batches: a drain commits at most every `max_wait` (0.05 s) or every `batch_size` rows.
"""

from __future__ import annotations

from rung.doctor._database import DatabaseFacts, TableWrites
from rung.doctor._model import Evidence, Finding, Verdict

HIT_RATE = 0.9  # the hit rate the saving assumes
MIN_LOAD_MS_PER_S = 100.0  # a tenth of a core: less is not worth a cache
MIN_INSERTS_PER_S = 10.0
OFTEN_WRITTEN = 0.1  # rows written per read of the table
BATCH_ROWS, MAX_WAIT = 1000, 0.05  # rung.Drain's defaults


def advice(facts: DatabaseFacts) -> list[Finding]:
    return [*_cache(facts), *_level(facts)]


def _cache(facts: DatabaseFacts) -> list[Finding]:
    found = []
    for statement, plan in facts.plans:
        load = statement.calls_per_s * statement.mean_ms  # ms of database time per second
        if not statement.read or load < MIN_LOAD_MS_PER_S or not plan.reads:
            continue
        writes = {t: facts.tables.get(t) for t in plan.reads}
        often = sorted(
            f"{s}.{t}" for (s, t), w in writes.items() if w and _churn(w) >= OFTEN_WRITTEN
        )
        how = (
            "explicit invalidation after commit: db.after_commit(cache.invalidate, key)"
            if often
            else "a TTL: its tables are rarely written, so slightly stale is fine"
        )
        evidence: dict[str, Evidence] = {
            "statement": statement.query, "calls_per_s": round(statement.calls_per_s, 2),
            "mean_ms": round(statement.mean_ms, 3), "db_ms_per_s": round(load, 1),
            "saves_db_ms_per_s": round(load * HIT_RATE, 1),
            "often_written_tables": ", ".join(often) or None,
        }  # fmt: skip
        found.append(Finding(
            "database", f"cache candidate: {', '.join(t for _, t in sorted(plan.reads))}",
            Verdict.watch,
            f"{' '.join(statement.query.split())[:60]!r} costs {load:.0f} ms of database time "
            f"per second; cached at {HIT_RATE:.0%} hits it would save {load * HIT_RATE:.0f}",
            f"cache it with rung.Cache.get_or_load and {how}", evidence, rung="cache",
        ))  # fmt: skip
    return found or [Finding("database", "what to cache", Verdict.ok,
                             f"no read statement costs {MIN_LOAD_MS_PER_S:.0f} ms/s or more",
                             "nothing")]  # fmt: skip


def _level(facts: DatabaseFacts) -> list[Finding]:
    found = []
    for statement, plan in facts.plans:
        if statement.verb != "INSERT" or len(plan.writes) != 1:
            continue
        table = next(iter(plan.writes))
        w = facts.tables.get(table)
        single_row = statement.rows <= 1.5 * statement.calls
        if (w is None or not single_row or statement.calls_per_s < MIN_INSERTS_PER_S
                or w.updated or w.deleted or w.scans > OFTEN_WRITTEN * w.inserted):  # fmt: skip
            continue
        rate = statement.calls_per_s
        batched = rate / BATCH_ROWS if rate > BATCH_ROWS / MAX_WAIT else min(rate, 1 / MAX_WAIT)
        evidence: dict[str, Evidence] = {
            "statement": statement.query, "table": ".".join(table),
            "inserts_per_s": round(rate, 1), "commits_per_s_now": round(rate, 1),
            "commits_per_s_levelled": round(batched, 1),
        }  # fmt: skip
        found.append(Finding(
            "database", f"level writes to {table[1]}", Verdict.watch,
            f"{rate:.0f} single-row INSERTs/s into append-only {'.'.join(table)}; a drain "
            f"would write them in about {batched:.0f} batch commits/s",
            "put the rows on rung.Queue and write them with rung.Drain(queue, "
            f"rung.TableSink(db, table={table[1]!r}, ...))", evidence, rung="queue",
        ))  # fmt: skip
    return found or [Finding("database", "what to level", Verdict.ok,
                             "no high-rate single-row INSERT into an append-only table",
                             "nothing")]  # fmt: skip


def _churn(w: TableWrites) -> float:
    return (w.inserted + w.updated + w.deleted) / max(w.scans, 1)
