"""A small notes app on rung.Database: writes go to the primary, reads to the replicas.

    rung up --replicas 2
    cd examples/notes_app && uvicorn --factory app:main

The database comes from RUNG_PRIMARY_URL / RUNG_REPLICA_URLS (comma-separated, as
`rung env` prints them), else from the running stack (RUNG_DIR, else .rung).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

import rung
from rung.stack import Stack, default_dir

# Not "notes": on the local stack the examples share one database.
SCHEMA = "CREATE TABLE IF NOT EXISTS app_notes (id serial PRIMARY KEY, body text NOT NULL)"


class NoteIn(BaseModel):
    body: str


class Note(BaseModel):
    id: int
    body: str


def create_app(db: rung.Database) -> FastAPI:
    """The app on `db`; its lifespan opens `db` and creates the table."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with db:
            await db.execute(SCHEMA)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/notes", status_code=201)
    async def create_note(note: NoteIn) -> Note:
        row = await db.fetchrow("INSERT INTO app_notes (body) VALUES ($1) RETURNING *", note.body)
        return Note(**row)

    @app.patch("/notes/{note_id}")
    async def update_note(note_id: int, note: NoteIn) -> Note:
        row = await db.fetchrow(
            "UPDATE app_notes SET body = $1 WHERE id = $2 RETURNING *", note.body, note_id
        )
        if row is None:
            raise HTTPException(404, f"no note {note_id}")
        return Note(**row)

    @app.get("/notes/{note_id}")
    async def read_note(note_id: int) -> Note:
        row = await db.fetchrow("SELECT * FROM app_notes WHERE id = $1", note_id)
        if row is None:
            raise HTTPException(404, f"no note {note_id}")
        return Note(**row)

    @app.get("/notes")
    async def list_notes() -> list[Note]:
        return [Note(**row) for row in await db.fetch("SELECT * FROM app_notes ORDER BY id")]

    return app


def database_from_env() -> rung.Database:
    """A Database on the URLs the environment names, else on the running stack's."""
    primary = os.environ.get("RUNG_PRIMARY_URL")
    if primary:
        replicas = [url for url in os.environ.get("RUNG_REPLICA_URLS", "").split(",") if url]
        return rung.Database(primary, replicas)
    stack = Stack(default_dir()).running()
    if stack is None:
        raise SystemExit("set RUNG_PRIMARY_URL, or start a stack first: rung up")
    urls = stack.urls()
    return rung.Database(urls["primary_url"], urls["replica_urls"])


def main() -> FastAPI:
    """The app for `uvicorn --factory app:main`."""
    return create_app(database_from_env())
