"""Where the stack's server binaries are, and which Debian package brings each one.

Debian keeps PostgreSQL's server binaries (initdb, postgres, pg_basebackup) off PATH in
/usr/lib/postgresql/<major>/bin; the newest installed major wins.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rung.errors import MissingBinary

PACKAGES = {
    "initdb": "postgresql",
    "postgres": "postgresql",
    "pg_basebackup": "postgresql",
    "pg_isready": "postgresql-client",
    "psql": "postgresql-client",
    "redis-server": "redis-server",
    "pgbouncer": "pgbouncer",
    "haproxy": "haproxy",
    "setpriv": "util-linux",
}

_PG_ROOT = Path("/usr/lib/postgresql")


def _pg_bindirs() -> list[Path]:
    if not _PG_ROOT.is_dir():
        return []
    majors = sorted((p for p in _PG_ROOT.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return [p / "bin" for p in reversed(majors)]


def find(name: str) -> str:
    """The absolute path of binary `name`, or `MissingBinary` naming the package to install.

    >>> find("initdb")
    '/usr/lib/postgresql/15/bin/initdb'
    """
    for bindir in _pg_bindirs():
        if (bindir / name).is_file():
            return str(bindir / name)
    found = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise MissingBinary(name, PACKAGES.get(name, name))
    return found
