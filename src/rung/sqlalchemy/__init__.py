"""rung.sqlalchemy: SQLAlchemy 2 async sessions with rung's read/write splitting and exact
read-your-writes (`pip install 'rung[sqlalchemy]'`).

    import rung, rung.sqlalchemy
    db = rung.Database(primary_url, replica_urls)
    Session = rung.sqlalchemy.sessionmaker(db, expire_on_commit=False)
    async with Session() as session:
        session.add(Link(slug="abc", target_url=url))
        await session.commit()                           # primary; the context's token advances
        link = await session.get(Link, "abc")             # a replica that has replayed it

Writes, flushes, FOR UPDATE and statements marked `execution_options(rung_primary=True)` go
to the primary, and so does everything after them in the same transaction; other reads go
to a replica that has replayed the context's token, as `rung.Database`'s reads do. The token
is the Database's: `rung.web.TokenMiddleware(db=Session.db)` carries it across instances.
"""

from rung.sqlalchemy import _routing
from rung.sqlalchemy._factory import SessionMaker, sessionmaker
from rung.sqlalchemy._routing import PRIMARY
from rung.sqlalchemy._session import RoutingSession

__all__ = ["PRIMARY", "RoutingSession", "SessionMaker", "sessionmaker"]

# An internal module under a public name, for its own unit tests (`from rung.sqlalchemy
# import routing`); a module, so not in __all__ (tests/test_public_api.py pins this list).
routing = _routing
