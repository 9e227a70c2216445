"""Fixtures for the notes app's tests: a client that carries rung's consistency token.

pytest examples/notes_app                        # a throwaway stack, or RUNG_DIR's
NOTES_CARRY_TOKENS=0 pytest examples/notes_app   # the control: carrying off, tests fail
"""

import os
from collections.abc import AsyncIterator

import pytest
from app import create_app

import rung
from rung.testing import AppClient, RungStack, truncate

CARRY_TOKENS = os.environ.get("NOTES_CARRY_TOKENS", "1") != "0"


@pytest.fixture
async def client(rung_stack: RungStack) -> AsyncIterator[AppClient]:
    """The app on an empty notes table that every replica has replayed."""
    # max_lag is generous: the tests make every replica stale on purpose and still read there.
    db = rung.Database(rung_stack.primary_url, rung_stack.replica_urls, max_lag=60.0)
    async with AppClient(create_app(db), db=db, carry_tokens=CARRY_TOKENS) as client:
        await truncate(db, "app_notes")  # not a rolled-back transaction: replicas serve the reads
        rung_stack.wait_for_replicas()  # so a stale replica is stale from an empty table
        client.observe(db.token())  # the test may not run in this fixture's context
        yield client
