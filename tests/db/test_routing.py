import pytest
from hypothesis import given
from hypothesis import strategies as st

from rung.db import routing

READS = [
    "SELECT 1",
    "  \n\tselect * from links where slug = $1",
    "(SELECT 1) UNION (SELECT 2)",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "VALUES (1), (2)",
    "TABLE links",
    "SHOW server_version",
    "-- a comment\nSELECT 1",
    "/* block /* nested */ comment */ SELECT 1",
    "SELECT 'delete from links' AS s",
    "SELECT E'it\\'s an update' AS s",
    "SELECT $$insert into t$$ AS s",
    "SELECT $tag$ for update $tag$",
    'SELECT "update" FROM t',
    "SELECT * FROM t -- FOR UPDATE",
    "SELECT count(*) FROM clicks WHERE day > now() - interval '1 day'",
    "select pg_last_wal_replay_lsn()",
]

WRITES = [
    "INSERT INTO t VALUES (1)",
    "update t set x = 1",
    "DELETE FROM t",
    "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone",
    "WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM x",
    "with u as (update t set x = 2 returning *) select * from u",
    "SELECT * FROM t FOR UPDATE",
    "select * from t for no key update",
    "SELECT * FROM t FOR SHARE",
    "SELECT * FROM t FOR KEY SHARE SKIP LOCKED",
    "SELECT nextval('seq')",
    "SELECT setval('seq', 10)",
    "SELECT pg_catalog.nextval ('seq')",
    "SELECT * INTO new_table FROM t",
    "SELECT pg_notify('ch', 'x')",
    "SELECT pg_advisory_lock(1)",
    "SELECT 1; DELETE FROM t",
    "CREATE TABLE t (x int)",
    "BEGIN",
    "SET search_path = x",
    "EXPLAIN ANALYZE DELETE FROM t",
    "COPY t FROM STDIN",
    "",
    "   ",
    "-- only a comment",
]


@pytest.mark.parametrize("sql", READS)
def test_reads_may_go_to_a_replica(sql: str) -> None:
    """Plain reads, with comments, case, whitespace, parentheses and strings, are reads."""
    assert routing.is_read(sql) is True


@pytest.mark.parametrize("sql", WRITES)
def test_writes_and_locking_reads_go_to_the_primary(sql: str) -> None:
    """Writes, data-modifying CTEs, row locks, nextval/setval and anything else: primary."""
    assert routing.is_read(sql) is False


words = st.sampled_from(["INSERT", "update", "Delete", "MERGE"])
filler = st.text(alphabet="abcdefghij ,*=()1", max_size=30)


@given(prefix=filler, word=words, suffix=filler)
def test_a_write_keyword_outside_strings_is_never_a_read(
    prefix: str, word: str, suffix: str
) -> None:
    """However a SELECT is dressed, a bare INSERT/UPDATE/DELETE/MERGE makes it a write."""
    assert routing.is_read(f"SELECT {prefix} {word} {suffix}") is False


@given(text=st.text(alphabet=st.characters(blacklist_characters="'\\"), max_size=40))
def test_string_contents_never_change_a_read(text: str) -> None:
    """Whatever a string literal holds (no quote inside), the SELECT around it is a read."""
    assert routing.is_read(f"SELECT '{text}' AS s") is True
