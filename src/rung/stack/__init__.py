"""The local stack: real PostgreSQL, PgBouncer and Redis processes on free ports, no Docker.

from rung.stack import Stack
Stack(".rung").up(replicas=1)
"""

from rung.stack import (
    _binaries,
    _component,
    _haproxy,
    _ports,
    _proc,
    _service,
    _supervisor,
)
from rung.stack._postgres import psql
from rung.stack._stackfile import StackFile
from rung.stack._supervisor import Stack, UpResult, default_dir

__all__ = ["Stack", "StackFile", "UpResult", "default_dir", "psql"]

# Internal modules under public names, for their own unit tests
# (`from rung.stack import proc`); modules, so not in __all__ (tests/test_public_api.py
# pins this list).
binaries = _binaries
component = _component
haproxy = _haproxy
ports = _ports
proc = _proc
service = _service
supervisor = _supervisor
