"""Rung 1: read/write splitting over a PostgreSQL primary and streaming replicas.

from rung.db import Database, Token
"""

from rung.db import _lsn, _node, _routing, _waiters
from rung.db._database import Database
from rung.db._lsn import Token

__all__ = ["Database", "Token"]

# Internal modules under public names, for their own unit tests
# (`from rung.db import routing`); modules, so not in __all__ (tests/test_public_api.py
# pins this list).
lsn = _lsn
node = _node
routing = _routing
waiters = _waiters
