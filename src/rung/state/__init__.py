"""Rung 3: stateless instances. Sessions in Redis, one timer across N instances, and a
linter for the traps that keep a service from scaling out.

from rung.state import SessionMiddleware, Singleton
"""

from rung.state._sessions import Session, SessionMiddleware
from rung.state._singleton import Singleton

__all__ = ["Session", "SessionMiddleware", "Singleton"]
