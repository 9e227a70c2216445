"""Which SQLAlchemy statements a replica may serve: the rules of `rung.db`'s statement
routing, read off the statement object instead of its SQL text.

    >>> is_read(select(Link).where(Link.slug == slug))
    True
    >>> is_read(select(Link).with_for_update())
    False

A `select()` (or a union of them) without FOR UPDATE/SHARE is a read; a `text()` is
classified as `rung.Database` classifies its SQL; everything else (insert, update, delete,
DDL, a statement SQLAlchemy does not say is a select) goes to the primary, since a read
sent to the primary is only slower.
"""

from __future__ import annotations

from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from rung.db import routing

PRIMARY = "rung_primary"  # the execution option that sends a statement to the primary


def is_read(clause: object) -> bool:
    """True when `clause` is a statement a replica may serve."""
    if isinstance(clause, TextClause):
        return routing.is_read(clause.text)
    if isinstance(clause, TextualSelect):  # text(...).columns(...): the text decides
        return routing.is_read(getattr(clause.element, "text", ""))
    if not getattr(clause, "is_select", False):
        return False
    if getattr(clause, "_for_update_arg", None) is not None:  # FOR UPDATE / FOR SHARE
        return False
    options = getattr(clause, "_execution_options", None)
    return not (options and options.get(PRIMARY))
