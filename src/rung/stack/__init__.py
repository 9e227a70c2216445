"""The local stack: real PostgreSQL, PgBouncer and Redis processes on free ports, no Docker.

from rung.stack import Stack
Stack(".rung").up(replicas=1)
"""

from rung.stack.supervisor import Stack, UpResult, default_dir

__all__ = ["Stack", "UpResult", "default_dir"]
