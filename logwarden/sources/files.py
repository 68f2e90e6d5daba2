"""Reading inputs as chunks of raw lines, with their source name and line numbers.

Plain Python: the Bytewax source in ``logwarden.sources.bytewax.files`` wraps these functions.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from logwarden.errors import ConfigError
from logwarden.parsers import PARSERS, SNIFF_LINES, ParserOptions, detect_format

STDIN = "-"


@dataclass(frozen=True, slots=True)
class RawChunk:
    source: str  # the input's path as given, or "-" for stdin
    fmt: str
    first_line: int  # 1-based number of lines[0]
    lines: list[str]
    lateness: timedelta | None = None  # its input's own allowed lateness (``--lateness``), if given
    last: bool = False  # a finite input's end: no chunk follows (its lines may be none)


def _open_bytes(path: str) -> io.BufferedReader:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"input {path}: {exc.strerror}") from None


def decode_lines(lines: list[bytes]) -> list[str]:
    """Lines of bytes (split at line feeds) as text: a carriage return before the line feed
    dropped, bytes that are not UTF-8 as U+FFFD. Decoded at once: no bad run crosses a line feed."""
    if not lines:
        return []
    text = b"\n".join(lines).decode("utf-8", "replace")
    out = text.split("\n")
    return [line.rstrip("\r") for line in out] if "\r" in text else out


def _open(path: str) -> io.TextIOBase:
    if path == STDIN:
        return sys.stdin  # type: ignore[return-value]
    try:
        return open(path, encoding="utf-8", errors="replace", newline="")
    except OSError as exc:
        raise ConfigError(f"input {path}: {exc.strerror}") from None


def sniff_file(path: str, options: ParserOptions) -> str:
    """Detect the format of a file from its first lines; a clear error when nothing fits."""
    with _open(path) as f:
        head = [f.readline().rstrip("\r\n") for _ in range(SNIFF_LINES * 5)]
    if head and head[0].lstrip().startswith("{") and '"Records"' in "".join(head[:3]):
        for name, cls in PARSERS.items():  # whole documents: {"Records": [...]}, expanded once by LineReader
            if getattr(cls, "expand_document", None):
                return name
    fmt = detect_format(head, options)
    if fmt is None:
        if not any(line.strip() for line in head):
            return "json"  # an empty file: nothing to misparse, any format will do
        raise ConfigError(f"input {path}: cannot detect its format from its first lines; "
                          f"pass --format (one of {', '.join(PARSERS)})")
    return fmt


def expand_document(path: str, fmt: str) -> list[str] | None:
    """Whole-document inputs (CloudTrail ``{"Records": [...]}``) as one record a line."""
    expander = getattr(PARSERS[fmt], "expand_document", None)
    if expander is None or path == STDIN:
        return None
    with _open(path) as f:
        head = f.read(256)
        if '"Records"' not in head:
            return None
        return expander(head + f.read())  # type: ignore[no-any-return]


class LineReader:
    """Reads one input in chunks, remembering (byte offset, line number) for resumption.

    A file is read in blocks of bytes, split at line feeds and decoded a chunk at a time (a
    ``readline`` loop cost 3-5% of a replay); only a line feed ends a line, a carriage return
    before it is dropped, and bytes that are not UTF-8 read as U+FFFD. Standard input is read
    line by line, as it comes."""

    BLOCK = 1 << 16  # bytes a file is read by

    def __init__(self, path: str, fmt: str, chunk_size: int,
                 resume: tuple[int, int] | None = None) -> None:
        self.path, self.fmt, self.chunk_size = path, fmt, chunk_size
        self._records = expand_document(path, fmt)
        self.offset, self.lineno = resume or (0, 0)
        self._f: Any = None
        self._pending = ""  # stdin: a partial last line while its writer finishes it
        self._partial = b""  # a file: the bytes after its last line feed read so far
        self._lines: list[bytes] = []  # a file: whole lines read and not yet returned
        if self._records is None:
            if path == STDIN:
                self._f = sys.stdin
            else:
                self._f = _open_bytes(path)
                if self.offset:
                    self._f.seek(self.offset)

    def read(self) -> list[str]:
        """The next chunk; empty at (current) end of input."""
        if self._records is not None:
            lines = self._records[self.lineno : self.lineno + self.chunk_size]
            self.lineno += len(lines)
            return lines
        if self.path == STDIN:
            return self._read_stdin()
        while len(self._lines) < self.chunk_size:
            block = self._f.read(self.BLOCK)
            if not block:
                break
            lines = (self._partial + block).split(b"\n")
            self._partial = lines.pop()
            self._lines += lines
        taken, self._lines = self._lines[:self.chunk_size], self._lines[self.chunk_size:]
        if not taken:
            return []
        self.offset += sum(map(len, taken)) + len(taken)
        self.lineno += len(taken)
        return decode_lines(taken)

    def _read_stdin(self) -> list[str]:
        out: list[str] = []
        readline = self._f.readline
        while len(out) < self.chunk_size:
            line = readline()
            if not line:
                break
            if not line.endswith("\n"):  # partial: keep it until the writer finishes the line
                self._pending += line
                continue
            out.append((self._pending + line).rstrip("\r\n"))
            self._pending = ""
        self.lineno += len(out)
        return out

    def finish(self) -> list[str]:
        """At the end of a finite input, a last line without a newline counts too."""
        if self._partial:  # read, so a run resumed after it does not read it again
            self.offset += len(self._partial)
            self._pending, self._partial = self._partial.decode("utf-8", "replace"), b""
        if self._pending:
            self.lineno += 1
            line, self._pending = self._pending.rstrip("\r"), ""
            return [line]
        return []

    def chunks(self) -> Iterator[RawChunk]:
        """All chunks of a finite input (used by tests, the check command and benchmarks)."""
        while True:
            start = self.lineno + 1
            lines = self.read() or self.finish()
            if not lines:
                return
            yield RawChunk(self.path, self.fmt, start, lines)

    def close(self) -> None:
        if self._f is not None and self.path != STDIN:
            self._f.close()


def resolve_inputs(paths: list[str], fmt: str | None, options: ParserOptions) -> list[tuple[str, str]]:
    """``(path, format)`` per input: ``--format`` when given, else detected per input."""
    if fmt is not None and fmt not in PARSERS:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(PARSERS)}")
    out = []
    for path in paths:
        if path != STDIN and not Path(path).is_file():
            raise ConfigError(f"input {path}: no such file")
        if fmt is None and path == STDIN:
            raise ConfigError("stdin input needs --format (its first lines cannot be read twice)")
        out.append((path, fmt or sniff_file(path, options)))
    return out
