"""Fixtures of the doctor tests: a database of its own on the stack, holding rung_links'
tables, so that the statements, sessions and scans the doctor reads are the test's alone."""

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

import pytest

from rung.testing import RungStack


@dataclass(frozen=True)
class Scratch:
    name: str
    primary_url: str
    replica_urls: tuple[str, ...]


def _in(url: str, database: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + database


def migration(name: str) -> str:
    return resources.files("rung_links").joinpath(f"migrations/{name}").read_text()


@pytest.fixture
def scratch(rung_stack: RungStack) -> Iterator[Scratch]:
    """A new database with pg_stat_statements, HypoPG and rung_links' tables but none of
    its secondary indexes, already on every replica; dropped afterwards."""
    name = f"doctor_{secrets.token_hex(4)}"
    rung_stack.sql("primary", f"CREATE DATABASE {name}")
    try:
        port = rung_stack.ports["primary"]
        from rung.stack import psql

        psql(port, "CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg", db=name)
        psql(port, migration("0001_tables.sql"), db=name)
        rung_stack.wait_for_replicas()
        yield Scratch(
            name,
            _in(rung_stack.primary_url, name),
            tuple(_in(url, name) for url in rung_stack.replica_urls),
        )
    finally:
        rung_stack.sql("primary", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
