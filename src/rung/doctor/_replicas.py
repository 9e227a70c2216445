"""Replica checks: each replica's lag and replay state, whether reads reach the replicas,
and, without any, whether the read/write ratio says one would pay off.

    finding, reads = await check_replica("replica1", url, timeout=5.0, max_lag=5.0)
    spread = reads_reach_replicas(primary_reads=900, replica_reads={"replica1": 0}, read_share=0.9)

Lag is read on the replica itself (WAL received but not replayed, and the time since the
last replayed commit while it is behind), so the doctor opens no session on the primary
during its churn sample. Whether reads reach a replica is read from its own
pg_stat_statements: the calls of statements that read tables, there and on the primary.
"""

from __future__ import annotations

from rung.doctor._model import Finding, Verdict
from rung.doctor._pg import connect, tagged
from rung.doctor._statements import top_statements

REPLICA_PAYS = 0.75  # reads' share of statement calls from which a replica takes real load
MIN_READS = 1000  # fewer reads than this say nothing about where reads go


async def check_replica(
    name: str, url: str, *, timeout: float, max_lag: float
) -> tuple[Finding, int]:
    """The replica's lag finding, and the calls of statements that read tables on it."""
    conn = await connect(url, timeout=timeout)
    try:
        r = await conn.fetchrow(tagged("""
            SELECT pg_is_in_recovery() AS standby,
                   pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                       AS lag_bytes,
                   extract(epoch FROM now() - pg_last_xact_replay_timestamp()) AS since_replay_s,
                   pg_get_wal_replay_pause_state() AS pause"""))  # fmt: skip
        statements = await top_statements(conn, limit=500) if r and r["standby"] else None
    finally:
        await conn.close()
    assert r is not None
    reads = sum(s.calls for s in statements or () if s.reads_table)
    if not r["standby"]:
        finding = Finding("database", f"replica {name}", Verdict.act,
                          f"{name} is not in recovery: it is a primary, not a replica",
                          f"check --replica {name}: it should name a streaming standby",
                          {"in_recovery": False}, rung="replicas")  # fmt: skip
        return finding, reads
    lag_bytes = int(r["lag_bytes"] or 0)
    # Time since the last replayed commit is lag only while WAL waits to be replayed: an
    # idle primary sends nothing, and its replica is not behind.
    lag_s = float(r["since_replay_s"] or 0.0) if lag_bytes > 0 else 0.0
    paused = r["pause"] != "not paused"
    evidence = {"lag_bytes": lag_bytes, "lag_s": round(lag_s, 2), "replay": r["pause"],
                "max_lag_s": max_lag}  # fmt: skip
    if paused:
        verdict = Verdict.act
        summary = f"replay is {r['pause']} with {lag_bytes} bytes of WAL waiting ({lag_s:.1f}s)"
        step = f"resume replay on {name}: SELECT pg_wal_replay_resume()"
    elif lag_s >= max_lag:
        verdict = Verdict.act
        summary = f"{lag_s:.1f}s ({lag_bytes} bytes) behind: past max_lag, it serves no reads"
        step = (f"find what holds {name} back (I/O, a long query with hot_standby_feedback, "
                "the network); add a replica if it is load")  # fmt: skip
    elif lag_bytes >= 16 * 2**20:
        verdict = Verdict.watch
        summary = f"{lag_bytes} bytes of WAL not replayed yet ({lag_s:.1f}s)"
        step = f"watch {name}'s replay: it is falling behind the primary's writes"
    else:
        verdict, summary, step = Verdict.ok, f"{lag_s:.1f}s, {lag_bytes} bytes behind", "nothing"
    finding = Finding("database", f"replica {name}", verdict, summary, step, evidence,
                      rung="replicas")  # fmt: skip
    return finding, reads


def reads_reach_replicas(
    *, primary_reads: int, replica_reads: dict[str, int], read_share: float | None
) -> Finding:
    """Whether the replicas serve reads (their share of the calls of statements that read
    tables) and, without replicas, whether one would pay off."""
    share = f"{read_share:.0%}" if read_share is not None else "unknown"
    evidence: dict[str, int | float | str | bool | None] = {
        "read_share_of_calls": None if read_share is None else round(read_share, 3),
        "primary_table_reads": primary_reads,
        **{f"{name}_table_reads": n for name, n in replica_reads.items()},
    }
    readsy = read_share is not None and read_share >= REPLICA_PAYS and primary_reads >= MIN_READS
    if not replica_reads:
        return Finding(
            "database", "read replicas", Verdict.watch if readsy else Verdict.ok,
            f"no replica; reads are {share} of statement calls",
            "add a streaming replica and route reads to it: rung.Database(replicas=[...])"
            if readsy else "nothing: too few reads for a replica to pay off", evidence,
            rung="replicas",
        )  # fmt: skip
    served = sum(replica_reads.values())
    spread = served / max(served + primary_reads, 1)
    evidence["replica_share_of_reads"] = round(spread, 3)
    if readsy and spread < 0.1:
        return Finding(
            "database", "reads reach the replicas", Verdict.act,
            f"reads are {share} of statement calls, but the replicas served {spread:.0%} of "
            "them",
            "route reads to the replicas: rung.Database(primary, replicas=[...]) sends each "
            "read to one that has the caller's writes", evidence, rung="replicas",
        )  # fmt: skip
    return Finding("database", "reads reach the replicas", Verdict.ok,
                   f"the replicas served {spread:.0%} of the reads; reads are {share} of "
                   "statement calls", "nothing", evidence)  # fmt: skip
