"""Which SQLAlchemy statements a replica may serve (pure: no server)."""

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import column, delete, func, insert, literal, select, table, text, union, update

from rung.sqlalchemy import PRIMARY, routing

items = table("items", column("id"), column("name"))


@pytest.mark.parametrize(
    "statement",
    [
        select(items),
        select(items).where(items.c.id == 1).limit(1),
        union(select(items), select(items)),
        select(func.count()).select_from(items),
        text("SELECT * FROM items"),
        text("WITH x AS (SELECT 1) SELECT * FROM x").columns(column("x")),
    ],
)
def test_a_plain_read_may_go_to_a_replica(statement: object) -> None:
    assert routing.is_read(statement) is True


@pytest.mark.parametrize(
    "statement",
    [
        select(items).with_for_update(),
        select(items).with_for_update(read=True),  # FOR SHARE
        select(items).execution_options(**{PRIMARY: True}),
        insert(items).values(id=1),
        update(items).values(name="x"),
        delete(items),
        text("INSERT INTO items VALUES (1, 'x')"),
        text("SELECT nextval('items_id_seq')"),
        text("WITH d AS (DELETE FROM items RETURNING *) SELECT * FROM d"),
        text("INSERT INTO items VALUES (1) RETURNING id").columns(column("id")),
        literal(1),  # not a statement SQLAlchemy says is a select
        None,  # session.connection(): no statement at all
    ],
)
def test_anything_else_goes_to_the_primary(statement: object) -> None:
    assert routing.is_read(statement) is False
