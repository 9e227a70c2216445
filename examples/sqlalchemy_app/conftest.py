"""Fixtures for the app's tests: each request a fresh context, as separate requests to
separate instances are; only the app's own TokenMiddleware carries the token between them.

pytest examples/sqlalchemy_app                       # a throwaway stack, or RUNG_DIR's
SQLA_APP_CARRIER=0 pytest examples/sqlalchemy_app    # the control: no middleware, tests fail
"""

import os
from collections.abc import AsyncIterator

import pytest
from app import create_app

import rung
import rung.sqlalchemy
from rung.testing import AppClient, RungStack, truncate

CARRIER = os.environ.get("SQLA_APP_CARRIER", "1") != "0"
SECRET = "a test secret, 16+ bytes"


@pytest.fixture
async def client(rung_stack: RungStack) -> AsyncIterator[AppClient]:
    """The app on empty tables that every replica has replayed."""
    # max_lag is generous: the tests make every replica stale on purpose and still read there.
    db = rung.Database(rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0)
    Session = rung.sqlalchemy.sessionmaker(db)
    app = create_app(Session, secret=SECRET if CARRIER else None)
    # carry_tokens=False: the client carries nothing itself; cookies, as a browser keeps them.
    async with db, AppClient(app, db=db, carry_tokens=False) as client:
        await truncate(db, "sqla_tasks", "sqla_projects")
        rung_stack.wait_for_replicas()  # so a stale replica is stale from empty tables
        yield client
