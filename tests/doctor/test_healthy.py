"""A healthy system: every check is ok; and the command's JSON holds to its schema."""

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import jsonschema
import pytest
import redis

import rung
from rung.doctor import SCHEMA, Targets, Verdict, diagnose, to_dict
from rung.testing import RungStack
from tests.doctor.conftest import Scratch, migration
from tests.helpers import rung as rung_command


@pytest.fixture
def quiet_cache(rung_stack: RungStack) -> Iterator[None]:
    """The cache Redis's counters start from zero, so its hit rate is this test's."""
    client = redis.Redis.from_url(rung_stack.cache_url)
    try:
        client.config_resetstat()
        yield
    finally:
        client.close()


async def test_a_healthy_stack_has_every_check_ok(
    rung_stack: RungStack, scratch: Scratch, quiet_cache: None
) -> None:
    """Indexed tables, pooled connections, reads on the replicas, a cache that hits."""
    conn = await asyncpg.connect(scratch.primary_url)
    try:
        await conn.execute(migration("0002_indexes.sql"))
        await conn.execute(
            "INSERT INTO clicks (id, link_id, clicked_at) "
            "SELECT gen_random_uuid(), i % 50, now() FROM generate_series(1, 2000) i"
        )
    finally:
        await conn.close()
    rung_stack.wait_for_replicas()
    db = rung.Database(scratch.primary_url, list(scratch.replica_urls), max_lag=60.0)
    cache = rung.Cache(rung_stack.cache_url, namespace=f"doctor{secrets.token_hex(4)}")
    async with db, cache:

        async def clicks(link_id: int) -> int:
            count = await db.fetchval("SELECT count(*) FROM clicks WHERE link_id = $1", link_id)
            return int(count)

        for i in range(1200):
            await cache.get_or_load(f"clicks:{i % 10}", lambda i=i: clicks(i % 10), ttl=60.0)
        targets = Targets(
            db=scratch.primary_url,
            replicas=scratch.replica_urls,
            cache=rung_stack.cache_url,
            queue=rung_stack.queue_url,
            streams=(f"doctor_{secrets.token_hex(4)}",),
            app=Path(__file__).parents[2] / "examples" / "db_in_an_app.py",
        )
        report = await diagnose(targets, sample=0.5)
    not_ok = [(f.area, f.name, f.verdict, f.summary) for f in report.findings if f.verdict != "ok"]
    assert not_ok == []
    assert report.next == []
    assert report.at == "no inflection point reached: every check is ok"
    assert {f.area for f in report.findings} == {"database", "cache", "queue", "instances"}
    jsonschema.validate(to_dict(report), SCHEMA)


def test_the_commands_json_validates_against_its_schema(scratch: Scratch) -> None:
    done = rung_command("doctor", "--db", scratch.primary_url, "--format", "json", timeout=60)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    assert "connection churn" in [f["name"] for f in report["findings"]]


def test_markdown_output_has_a_row_per_finding_and_the_verdict(scratch: Scratch) -> None:
    done = rung_command("doctor", "--db", scratch.primary_url, "--format", "md", timeout=60)
    assert "| database | connection churn |" in done.stdout
    assert "**Verdict:**" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "mysql://x/y"], "--db 'mysql://x/y': expected a URL starting postgresql://"),
        (
            ["--dir", "/tmp", "--db", "postgresql://x/y"],
            "give --dir or URLs (--db, --replica, --cache, --queue, --app-url), not both",
        ),
        (["--dir", "/no/such/stack"], "no stack running in /no/such/stack: start one with "
         "`rung up`, or pass --db"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = rung_command("doctor", *args, timeout=60)
    assert (done.returncode, done.stderr.splitlines()) == (2, [f"rung: {message}"])


def test_a_finding_that_could_not_run_is_no_error_of_the_command() -> None:
    """A refused database is a finding in the report (exit 1), not a crash (exit 2)."""
    done = rung_command("doctor", "--db", "postgresql://rung@127.0.0.1:1/rung", "--timeout",
                        "1", "--format", "json", timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    [finding] = json.loads(done.stdout)["findings"]
    assert finding["verdict"] == Verdict.unreachable
