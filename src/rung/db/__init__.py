"""Rung 1: read/write splitting over a PostgreSQL primary and streaming replicas.

from rung.db import Database
"""

from rung.db.database import Database

__all__ = ["Database"]
