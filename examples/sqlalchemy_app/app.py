"""A FastAPI app on SQLAlchemy 2 async, with rung.sqlalchemy: writes go to the primary,
reads to replicas that have its writes, and the consistency token rides in a signed cookie.

    rung up --replicas 2
    cd examples/sqlalchemy_app && RUNG_SECRET=... uvicorn --factory app:main

The database comes from RUNG_PRIMARY_URL / RUNG_REPLICA_URLS (comma-separated, as
`rung env` prints them), else from the running stack (RUNG_DIR, else .rung).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import ForeignKey, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

import rung
import rung.sqlalchemy
import rung.web
from rung.stack import Stack, default_dir


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "sqla_projects"  # the examples share one database on the local stack
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    open_tasks: Mapped[int] = mapped_column(default=0)
    tasks: Mapped[list["Task"]] = relationship(back_populates="project", order_by="Task.id")


class Task(Base):
    __tablename__ = "sqla_tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("sqla_projects.id"))
    title: Mapped[str]
    done: Mapped[bool] = mapped_column(default=False)
    project: Mapped["Project"] = relationship(back_populates="tasks")


class ProjectIn(BaseModel):
    name: str
    tasks: list[str] = []


class TaskIn(BaseModel):
    title: str


class TaskOut(BaseModel):
    id: int
    title: str
    done: bool


class ProjectOut(BaseModel):
    id: int
    name: str
    open_tasks: int
    tasks: list[TaskOut]


def create_app(Session: rung.sqlalchemy.SessionMaker, *, secret: str | None) -> FastAPI:
    """The app on `Session`'s database. With `secret`, rung.web's TokenMiddleware carries the
    consistency token between requests (None: nothing does, the control in its tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Session() as session:
            await session.run_sync(lambda s: Base.metadata.create_all(s.connection()))
            await session.commit()
        yield
        await Session.close()

    app = FastAPI(lifespan=lifespan)
    if secret is not None:
        app.add_middleware(rung.web.TokenMiddleware, db=Session.db, secret=secret)

    async def session() -> AsyncIterator[rung.sqlalchemy.RoutingSession]:
        async with Session() as session:
            yield session

    Db = Annotated[rung.sqlalchemy.RoutingSession, Depends(session)]

    async def load(session: rung.sqlalchemy.RoutingSession, project_id: int) -> ProjectOut:
        query = select(Project).options(selectinload(Project.tasks))
        project = await session.scalar(query.where(Project.id == project_id))
        if project is None:
            raise HTTPException(404, f"no project {project_id}")
        tasks = [TaskOut(id=t.id, title=t.title, done=t.done) for t in project.tasks]
        return ProjectOut(id=project.id, name=project.name, open_tasks=project.open_tasks,
                          tasks=tasks)  # fmt: skip

    @app.post("/projects", status_code=201)
    async def create_project(body: ProjectIn, session: Db) -> ProjectOut:
        project = Project(name=body.name)
        session.add(project)
        await session.flush()  # one transaction, several flushes: the first gives the id
        session.add_all(Task(project_id=project.id, title=title) for title in body.tasks)
        await session.flush()
        # A read in a transaction that wrote: the primary, which has the flushed rows.
        count = select(func.count()).where(Task.project_id == project.id)
        project.open_tasks = await session.scalar(count) or 0
        project_id = project.id  # the commit expires the objects it wrote
        await session.commit()
        return await load(session, project_id)  # read after write: sees the commit

    @app.get("/projects/{project_id}")
    async def read_project(project_id: int, session: Db) -> ProjectOut:
        return await load(session, project_id)

    @app.post("/projects/{project_id}/tasks", status_code=201)
    async def add_task(project_id: int, body: TaskIn, session: Db) -> TaskOut:
        project = await session.get(Project, project_id, with_for_update=True)  # primary
        if project is None:
            raise HTTPException(404, f"no project {project_id}")
        task = Task(project=project, title=body.title)
        project.open_tasks += 1
        session.add(task)
        await session.flush()
        out = TaskOut(id=task.id, title=task.title, done=task.done)
        await session.commit()
        return out

    @app.post("/tasks/{task_id}/done")
    async def finish_task(task_id: int, session: Db) -> TaskOut:
        task = await session.get(Task, task_id, options=[selectinload(Task.project)])
        if task is None:
            raise HTTPException(404, f"no task {task_id}")
        out = TaskOut(id=task.id, title=task.title, done=True)
        if not task.done:
            task.done = True
            task.project.open_tasks -= 1
            await session.commit()
        return out

    @app.get("/probe")
    async def probe(session: Db) -> dict[str, bool]:
        """Where this request's reads land: a replica answers pg_is_in_recovery() true."""
        return {"replica": bool(await session.scalar(text("SELECT pg_is_in_recovery()")))}

    return app


def main() -> FastAPI:
    """The app for `uvicorn --factory app:main`, on the URLs the environment names, else on
    the running stack's."""
    primary = os.environ.get("RUNG_PRIMARY_URL")
    if primary:
        replicas = [url for url in os.environ.get("RUNG_REPLICA_URLS", "").split(",") if url]
    else:
        stack = Stack(default_dir()).running()
        if stack is None:
            raise SystemExit("set RUNG_PRIMARY_URL, or start a stack first: rung up")
        primary, replicas = stack.urls()["primary_url"], stack.urls()["replica_urls"]
    Session = rung.sqlalchemy.sessionmaker(rung.Database(primary, replicas))
    return create_app(Session, secret=os.environ.get("RUNG_SECRET", "change me: 16+ bytes"))
