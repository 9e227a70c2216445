"""Rung 1: read/write splitting over a PostgreSQL primary and streaming replicas.

from rung.db import Database, Token
"""

from rung.db.database import Database
from rung.db.lsn import Token

__all__ = ["Database", "Token"]
