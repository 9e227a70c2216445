"""The click drain: queue -> `clicks`, for `rung drain rung_links.drain:make`.

    $ rung drain rung_links.drain:make         # settings from the environment, as the app's
    drain = make(settings); await drain.run()

Batches of up to 1,000 clicks go into `clicks` in one transaction each (rung.TableSink:
COPY into a staging table, then `INSERT ... ON CONFLICT (id) DO NOTHING`), acknowledged
only after the commit. A click the redirect had to insert directly (the queue was
unreachable) and that reached the queue after all is the same id: still one row.
"""

from __future__ import annotations

import rung
from rung_links.clicks import COLUMNS
from rung_links.settings import Settings


def make(settings: Settings | None = None, *, db: rung.Database | None = None) -> rung.Drain:
    """A Drain from the stream `settings.stream` into the `clicks` table, through `db` (by
    default a Database of its own on the primary, opened on the first batch)."""
    settings = Settings.from_env() if settings is None else settings
    if db is None:
        db = rung.Database(settings.primary_url, max_size=2)  # the sink writes on the primary
    queue = rung.Queue(settings.queue_url, stream=settings.stream,
                       max_depth=settings.queue_max_depth)  # fmt: skip
    sink = rung.TableSink(db, table="clicks", columns=COLUMNS, key="id")
    return rung.Drain(queue, sink, batch_size=1000, max_wait=0.05)
