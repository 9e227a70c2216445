"""An instance for the SIGTERM drain test: `uvicorn tests.web.drain_app:app`."""

import asyncio

from fastapi import FastAPI

import rung.web

app = FastAPI()
rung.web.install(app, secret="a-secret-of-at-least-16-bytes", grace=1.0)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


@app.get("/slow")
async def slow() -> dict[str, str]:
    await asyncio.sleep(1.0)
    return {"slow": "done"}
