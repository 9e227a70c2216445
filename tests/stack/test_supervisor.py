"""The shared session stack: what `rung up` promises, checked on the real servers."""

import json
import secrets
import subprocess

import pytest
import redis

from rung.errors import ComponentFailed, StackError
from rung.stack import psql, supervisor
from rung.testing import RungStack, wait_until
from tests.helpers import RUNG


def _psql_url(url: str, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-A", "-t", "-c", sql, url], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_stack_json_follows_the_schema(rung_stack: RungStack) -> None:
    """stack.json has every URL key and a pid, port and log per component."""
    data = json.loads((rung_stack.dir / "stack.json").read_text())
    for key in ("primary_url", "replica_urls", "pooled_primary_url", "pooled_replica_urls",
                "cache_url", "queue_url", "components"):  # fmt: skip
        assert key in data
    names = [c["name"] for c in data["components"]]
    replicas = [f"replica{i}" for i in range(1, len(data["replica_urls"]) + 1)]
    kinds = [c["kind"] for c in data["components"]]
    shape = {"instances": kinds.count("app"), "workers": kinds.count("drain")}
    assert names == supervisor.plan(replicas=len(replicas), **shape)
    assert ("app_url" in data) == (shape["instances"] > 0)
    for c in data["components"]:
        assert {"name", "kind", "pid", "port", "log"} <= c.keys()
        assert isinstance(c["pid"], int)
    assert data["pooled_primary_url"].endswith("/rung_primary")
    assert [u.rsplit("/", 1)[1] for u in data["pooled_replica_urls"]] == [
        f"rung_{r}" for r in replicas
    ]


def test_psql_reaches_every_url_and_replicas_are_in_recovery(rung_stack: RungStack) -> None:
    """Direct and pooled URLs all answer; replicas report pg_is_in_recovery() = t."""
    assert _psql_url(rung_stack.primary_url, "SELECT pg_is_in_recovery()") == "f"
    assert _psql_url(rung_stack.pooled_primary_url, "SELECT pg_is_in_recovery()") == "f"
    for url in rung_stack.replica_urls + rung_stack.pooled_replica_urls:
        assert _psql_url(url, "SELECT pg_is_in_recovery()") == "t"


def test_primary_has_pg_stat_statements_and_replication_settings(rung_stack: RungStack) -> None:
    """The primary preloads pg_stat_statements and runs wal_level=replica."""
    assert rung_stack.sql("primary", "SHOW wal_level") == "replica"
    assert "pg_stat_statements" in rung_stack.sql("primary", "SHOW shared_preload_libraries")
    ext = "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'"
    assert rung_stack.sql("primary", ext) == "pg_stat_statements"


def test_a_row_written_on_the_primary_reaches_every_replica(rung_stack: RungStack) -> None:
    """Streaming replication: the row is readable on each replica within 2 s."""
    marker = secrets.token_hex(6)
    rung_stack.sql("primary", "CREATE TABLE IF NOT EXISTS repl_check (m text)")
    rung_stack.wait_for_replicas()
    rung_stack.sql("primary", f"INSERT INTO repl_check VALUES ('{marker}')")
    query = f"SELECT count(*) FROM repl_check WHERE m = '{marker}'"
    for i in range(len(rung_stack.replica_urls)):
        wait_until(lambda i=i: rung_stack.sql(f"replica{i + 1}", query) == "1", timeout=2.0)


def test_redis_servers_have_their_policies(rung_stack: RungStack) -> None:
    """cache: allkeys-lru, no AOF, maxmemory 256mb; queue: AOF everysec, noeviction."""
    cache = redis.Redis.from_url(rung_stack.cache_url, decode_responses=True)
    queue = redis.Redis.from_url(rung_stack.queue_url, decode_responses=True)
    with cache, queue:
        assert cache.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert cache.config_get("appendonly") == {"appendonly": "no"}
        assert cache.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        assert queue.config_get("appendonly") == {"appendonly": "yes"}
        assert queue.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert queue.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


def test_status_reports_every_component_healthy_with_replica_lag(rung_stack: RungStack) -> None:
    """`rung status --json` lists each component as healthy; replicas carry their lag."""
    done = subprocess.run(
        [RUNG, "status", "--dir", str(rung_stack.dir), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is True
    assert all(c["healthy"] and c["status"] == "healthy" for c in report["components"])
    replicas = [c for c in report["components"] if c["name"].startswith("replica")]
    assert replicas
    for r in replicas:
        assert r["state"] == "streaming"
        assert r["lag_bytes"] is not None and r["lag_s"] is not None


def test_pause_replay_makes_a_replica_stale_until_resumed(rung_stack: RungStack) -> None:
    """While replay is paused a new row is missing on the replica; after resume it arrives."""
    marker = secrets.token_hex(6)
    rung_stack.sql("primary", "CREATE TABLE IF NOT EXISTS pause_check (m text)")
    rung_stack.wait_for_replicas()
    rung_stack.pause_replay(0)
    try:
        rung_stack.sql("primary", f"INSERT INTO pause_check VALUES ('{marker}')")
        query = f"SELECT count(*) FROM pause_check WHERE m = '{marker}'"
        # The WAL reaches the replica (received) but is not applied while replay is paused.
        received = "SELECT pg_last_wal_receive_lsn() >= '{lsn}'::pg_lsn"
        lsn = rung_stack.sql("primary", "SELECT pg_current_wal_lsn()")
        wait_until(lambda: rung_stack.sql("replica1", received.format(lsn=lsn)) == "t")
        assert rung_stack.sql("replica1", query) == "0"
        lag = next(c for c in rung_stack.stack.status() if c["name"] == "replica1")
        assert lag["replay_paused"] is True and lag["lag_bytes"] > 0
    finally:
        rung_stack.resume_replay(0)
    wait_until(lambda: rung_stack.sql("replica1", query) == "1", timeout=2.0)


def test_a_stopped_replica_starts_again_and_catches_up(rung_stack: RungStack) -> None:
    """stop(name) ends the replica; writes meanwhile reach it after start(name)."""
    name = f"replica{len(rung_stack.replica_urls)}"
    rung_stack.stop(name)
    with pytest.raises(ComponentFailed):
        psql(rung_stack.ports[name], "SELECT 1", timeout=5)
    marker = secrets.token_hex(6)
    rung_stack.sql("primary", "CREATE TABLE IF NOT EXISTS restart_check (m text)")
    rung_stack.sql("primary", f"INSERT INTO restart_check VALUES ('{marker}')")
    rung_stack.start(name)
    rung_stack.wait_for_replicas(name)
    query = f"SELECT count(*) FROM restart_check WHERE m = '{marker}'"
    assert rung_stack.sql(name, query) == "1"


def test_pause_replay_names_an_unknown_replica(rung_stack: RungStack) -> None:
    """Asking for a replica the stack does not have is a clear error."""
    with pytest.raises(StackError, match="no replica"):
        rung_stack.pause_replay(99)


def test_the_plan_starts_servers_then_workers_then_instances_then_haproxy() -> None:
    """Drain workers before the instances that feed their queue; HAProxy last, and only
    when there are instances."""
    assert supervisor.plan(replicas=1, instances=2, workers=1) == [
        "primary", "replica1", "pgbouncer", "cache", "queue", "drain1", "app1", "app2", "haproxy",
    ]  # fmt: skip
    assert "haproxy" not in supervisor.plan(replicas=1, instances=0, workers=2)


def test_instances_and_workers_start_and_stop_as_groups() -> None:
    """In stop order: HAProxy alone, then every instance at once, then every worker."""
    names = list(reversed(supervisor.plan(replicas=1, instances=2, workers=2)))
    assert supervisor.groups(names) == [
        ["haproxy"], ["app2", "app1"], ["drain2", "drain1"],
        ["queue"], ["cache"], ["pgbouncer"], ["replica1"], ["primary"],
    ]  # fmt: skip
