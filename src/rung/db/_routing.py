"""Statement routing: which SQL may run on a replica.

A read is a statement that starts with SELECT, WITH, VALUES, TABLE or SHOW and contains no
data-modifying CTE, no row-locking clause (FOR UPDATE/SHARE), no SELECT ... INTO and no call
of a function that writes or needs the primary's session (nextval, setval, pg_notify, ...).
Everything else goes to the primary. Strings, quoted identifiers and comments are skipped,
so `SELECT 'delete me'` is a read. When in doubt the answer is "primary": a read sent to the
primary is only slower, a write sent to a replica fails.

    >>> is_read("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x")
    False
"""

from __future__ import annotations

import functools
import re

_READ_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW"})
_WRITE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "COPY", "TRUNCATE"})
_LOCK_AFTER_FOR = frozenset({"UPDATE", "SHARE", "NO", "KEY"})
_WRITE_FUNCTIONS = frozenset(
    {
        "NEXTVAL", "SETVAL", "CURRVAL", "LASTVAL", "PG_NOTIFY", "TXID_CURRENT",
        "PG_CURRENT_XACT_ID", "LO_CREATE", "LO_IMPORT", "LO_UNLINK", "LO_FROM_BYTEA", "LO_PUT",
        "PG_ADVISORY_LOCK", "PG_ADVISORY_XACT_LOCK", "PG_TRY_ADVISORY_LOCK",
        "PG_TRY_ADVISORY_XACT_LOCK", "PG_ADVISORY_LOCK_SHARED", "PG_ADVISORY_XACT_LOCK_SHARED",
    }
)  # fmt: skip

# One alternation, tried left to right at each position: what to skip, then what to keep.
_TOKEN = re.compile(
    r"""
      (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$)
    | (?P<estring>[Ee]'(?:[^'\\]|\\.|'')*'?)
    | (?P<string>'(?:[^']|'')*'?)
    | (?P<ident>"(?:[^"]|"")*"?)
    | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
    | (?P<paren>\()
    """,
    re.VERBOSE | re.DOTALL,
)


def words(sql: str) -> list[tuple[str, bool]]:
    """The bare words of `sql`, upper-cased, each with whether a '(' follows it: strings,
    quoted identifiers and comments (nested /* */ included) are dropped."""
    out: list[tuple[str, bool]] = []
    pos, end = 0, len(sql)
    while pos < end:
        m = _TOKEN.search(sql, pos)
        if m is None:
            break
        kind = m.lastgroup
        if kind == "block_comment":
            pos = _skip_block_comment(sql, m.end())
            continue
        if kind == "dollar":
            close = sql.find(m.group("dollar"), m.end())
            pos = end if close < 0 else close + len(m.group("dollar"))
            continue
        if kind == "word":
            after = m.end()
            while after < end and sql[after].isspace():
                after += 1
            out.append((m.group().upper(), after < end and sql[after] == "("))
        pos = m.end()
    return out


def _skip_block_comment(sql: str, pos: int) -> int:
    depth = 1
    while depth and pos < len(sql):
        if sql.startswith("/*", pos):
            depth, pos = depth + 1, pos + 2
        elif sql.startswith("*/", pos):
            depth, pos = depth - 1, pos + 2
        else:
            pos += 1
    return pos


@functools.lru_cache(maxsize=4096)
def is_read(sql: str) -> bool:
    """True when `sql` may run on a replica (see the module docstring)."""
    tokens = words(sql)
    if not tokens or tokens[0][0] not in _READ_STARTS:
        return False
    previous = ""
    for word, call in tokens:
        if word in _WRITE_WORDS:
            return False
        if previous == "FOR" and word in _LOCK_AFTER_FOR:
            return False
        if call and word in _WRITE_FUNCTIONS:
            return False
        previous = word
    return True
