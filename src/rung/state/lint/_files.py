"""Which files `rung lint` reads, and how: regular files only, up to a size limit, decoded
as Python decodes source (a PEP 263 coding line, a BOM, else UTF-8), strictly.

    for path in python_files([Path("app")], onerror=report):
        source = read_source(path)      # None: not a regular file; NotAnalysable: why not
"""

from __future__ import annotations

import io
import os
import stat
import tokenize
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

# Hand-written modules stay far below this (mypy's checker.py, one of the largest, is 0.45 MB);
# a bigger file is generated code, and parsing one costs memory many times its size.
MAX_FILE_BYTES = 4 * 1024 * 1024

SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})  # and hidden ones


class NotAnalysable(Exception):
    """A file or source that `rung lint` cannot check; `reason` is one line."""

    def __init__(self, reason: str, line: int = 1, col: int = 1) -> None:
        self.reason = " ".join(reason.split())
        self.line = max(line, 1)
        self.col = max(col, 1)
        super().__init__(self.reason)


def python_files(
    paths: Iterable[Path], *, onerror: Callable[[Path, OSError], None]
) -> Iterator[Path]:
    """Each .py file under `paths`; a path that is not a directory is yielded as it is.
    Hidden directories and `SKIP_DIRS` are not entered, symlinked directories are not
    followed (no cycles); a directory that cannot be listed goes to `onerror`."""
    for path in paths:
        if path.is_dir():
            yield from _walk(path, onerror)
        else:
            yield path


def read_source(path: Path) -> str | None:
    """The text of the module at `path`; None for a FIFO, socket or device, which is never
    opened (opening a FIFO blocks until a writer comes). NotAnalysable says why a file
    cannot be read: unreadable, over `MAX_FILE_BYTES`, or not decodable."""
    try:
        info = os.stat(path)  # follows symlinks: a link to a regular file is read
        if not stat.S_ISREG(info.st_mode):
            return None
        _check_size(info.st_size)
        # O_NONBLOCK: should a FIFO replace the file after the stat, open returns at once.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = f.read(MAX_FILE_BYTES + 1)  # the file may have grown since the stat
    except OSError as e:
        raise NotAnalysable(f"cannot read the file: {e.strerror or e}") from e
    _check_size(len(data))
    return decode(data)


def decode(data: bytes) -> str:
    """`data` decoded as the interpreter would decode it; NotAnalysable at the first byte
    that does not decode (where replacing it would check text that does not exist)."""
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError as e:  # an unknown or contradictory coding line, or bad first lines
        _decode_strictly(data, "utf-8")  # names the bad byte, when that is the reason
        raise NotAnalysable(f"cannot decode: {e.msg}") from e
    return _decode_strictly(data, encoding)


def _decode_strictly(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        raise NotAnalysable(
            f"cannot decode as {encoding}: {e.reason} (byte 0x{data[e.start]:02x})",
            line=data.count(b"\n", 0, e.start) + 1,
            col=e.start - line_start + 1,
        ) from e
    except LookupError as e:  # a coding line naming a codec that does not make text (rot13)
        raise NotAnalysable(f"cannot decode: {e}") from e


def _check_size(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise NotAnalysable(
            f"the file is over rung lint's size limit of {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        )


def _walk(root: Path, onerror: Callable[[Path, OSError], None]) -> Iterator[Path]:
    # An explicit stack rather than recursion, so a deep tree cannot exhaust Python's.
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as e:
            onerror(directory, e)
            continue
        subdirectories = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.name.startswith(".") and entry.name not in SKIP_DIRS:
                    subdirectories.append(Path(entry.path))
            elif entry.name.endswith(".py"):
                yield Path(entry.path)
        pending.extend(reversed(subdirectories))
