"""rung.TableSink's COPY text against the real PostgreSQL: every kind of JSON value lands
as the column reads it, whatever characters its strings hold; an entry that is not one
JSON value fails the write (for the drain to split it out), never a neighbour's row."""

import secrets
import uuid

import orjson
import pytest

import rung
from rung.queue import Delivery
from rung.testing import RungStack
from tests.queue.support import on_primary

COLUMNS = ("id", "n", "f", "ok", "note", "doc")


@pytest.fixture
def kinds(rung_stack: RungStack) -> str:
    name = f"kinds_{secrets.token_hex(4)}"
    rung_stack.sql("primary", f"CREATE TABLE {name} (id uuid PRIMARY KEY, n bigint, "
                              "f double precision, ok boolean, note text, doc jsonb)")  # fmt: skip
    return name


def batch(*raws: bytes) -> list[Delivery]:
    return [Delivery(f"0-{i}", raw, None, 1) for i, raw in enumerate(raws)]


def event(**fields: object) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    return event_id, orjson.dumps({"id": event_id, **fields})


@pytest.mark.parametrize("escaped", [False, True], ids=["plain batch", "batch with escapes"])
async def test_each_kind_of_value_lands_as_its_column_reads_it(
    db: rung.Database, kinds: str, escaped: bool
) -> None:
    plain_id, plain = event(n=2**40, f=0.1, ok=True, note="é ü 日本", doc={"a": [1, None]})
    empty_id, empty = event(n=None, ok=False, note="")  # f and doc missing: NULL
    weird = 'tab\there\nline\r\\N back\\slash "quoted"'
    weird_id, weird_raw = event(n=-1, note=weird if escaped else "x", doc=["\t", "\\"])
    sink = rung.TableSink(db, table=kinds, columns=COLUMNS, key="id")
    assert await sink.write(batch(plain, empty, weird_raw)) == {}

    async def row(event_id: str) -> tuple[object, ...]:
        async with db.primary() as conn:
            found = await conn.fetchrow(f"SELECT n, f, ok, note, doc::text FROM {kinds} "
                                        "WHERE id = $1", uuid.UUID(event_id))  # fmt: skip
        assert found is not None
        return tuple(found)

    assert await row(plain_id) == (2**40, 0.1, True, "é ü 日本", '{"a": [1, null]}')
    assert await row(empty_id) == (None, None, False, "", None)
    assert await row(weird_id) == (-1, None, None, weird if escaped else "x", '["\\t", "\\\\"]')


async def test_an_entry_that_is_not_one_json_value_fails_the_write(
    db: rung.Database, kinds: str
) -> None:
    # Two halves that would make valid JSON together, and two values in one entry:
    # each batch fails as a whole (the drain then splits it), and writes nothing.
    sink = rung.TableSink(db, table=kinds, columns=COLUMNS, key="id")
    _, good = event(n=1)
    for bad in ([b'{"id": "a", "doc": [1', b"2]}", good], [good + b"," + good, b"", good]):
        with pytest.raises(orjson.JSONDecodeError):
            await sink.write(batch(*bad))
    assert await on_primary(db, f"SELECT count(*) FROM {kinds}") == 0


async def test_a_table_of_one_column_takes_its_key_alone(
    rung_stack: RungStack, db: rung.Database
) -> None:
    name = f"keys_{secrets.token_hex(4)}"
    rung_stack.sql("primary", f"CREATE TABLE {name} (id uuid PRIMARY KEY)")
    sink = rung.TableSink(db, table=name, columns=("id",), key="id")
    raws = [event()[1] for _ in range(450)]  # more than one chunk of the encoder
    assert await sink.write(batch(*raws)) == {}
    assert await sink.write(batch(*raws[:10])) == {}  # again: skipped by key
    assert await on_primary(db, f"SELECT count(*) FROM {name}") == 450
