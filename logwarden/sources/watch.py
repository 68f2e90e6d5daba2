"""Following every file that matches a glob, across rotations, without losing or repeating lines.

Files are tracked by (device, inode), not by name:
- a file renamed away by rotation (``app.log`` -> ``app.log.1``) is read to its end through the
  handle already open, then closed; the new ``app.log`` is a new inode, read from its start;
- a file truncated in place (``copytruncate``) is noticed by its size falling below what was read,
  and read again from its start;
- files created later are picked up on the next poll.
Line numbers are counted per path name across rotations, so ``source:line`` references and event
ids stay unique. The state (offsets and counts per inode) is plain, for snapshots.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from logwarden.parsers import UNDETECTED, ParserOptions, detect_format
from logwarden.sources.files import RawChunk, decode_lines

GLOB_CHARS = set("*?[")


def is_pattern(path: str) -> bool:
    return bool(GLOB_CHARS & set(path)) or Path(path).is_dir()


def pattern_of(path: str) -> str:
    return str(Path(path) / "*") if Path(path).is_dir() else path


@dataclass
class _Tracked:
    name: str  # the path it was found under (its source name)
    offset: int = 0
    pending: bytes = b""  # a partial last line
    fmt: str | None = None


@dataclass
class WatchState:
    files: dict[tuple[int, int], _Tracked] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # source name -> lines emitted so far


class DirectoryWatcher:
    def __init__(self, pattern: str, fmt: str | None, options: ParserOptions, chunk_size: int = 1000,
                 state: WatchState | None = None) -> None:
        self.pattern, self.fmt, self.options, self.chunk_size = pattern, fmt, options, chunk_size
        self.state = state or WatchState()
        self._handles: dict[tuple[int, int], object] = {}

    def poll(self) -> list[RawChunk]:
        """Everything new since the last poll, as chunks (one source per chunk)."""
        seen: dict[tuple[int, int], str] = {}
        for name in sorted(glob.glob(self.pattern)):
            try:
                st = os.stat(name)
            except FileNotFoundError:
                continue
            if not os.path.isfile(name):
                continue
            seen[(st.st_dev, st.st_ino)] = name
        out: list[RawChunk] = []
        # Files no longer under the pattern (rotated away) are finished through their open handle.
        for key in [k for k in self.state.files if k not in seen]:
            out += self._read(key, finish=True)
            self._close(key)
            del self.state.files[key]
        for key, name in seen.items():
            tracked = self.state.files.get(key)
            if tracked is None:
                tracked = self.state.files[key] = _Tracked(name)
            out += self._read(key)
        return out

    def _open(self, key: tuple[int, int]) -> object | None:
        handle = self._handles.get(key)
        if handle is None:
            tracked = self.state.files[key]
            try:
                handle = open(tracked.name, "rb")
            except FileNotFoundError:
                return None
            st = os.fstat(handle.fileno())
            if (st.st_dev, st.st_ino) != key:  # the name now points at another file
                handle.close()
                return None
            self._handles[key] = handle
        return handle

    def _close(self, key: tuple[int, int]) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.close()  # type: ignore[attr-defined]

    def _read(self, key: tuple[int, int], finish: bool = False) -> list[RawChunk]:
        tracked = self.state.files[key]
        handle = self._open(key)
        if handle is None:
            return []
        size = os.fstat(handle.fileno()).st_size  # type: ignore[attr-defined]
        if size < tracked.offset:  # truncated in place (copytruncate): read it again from the start
            tracked.offset, tracked.pending = 0, b""
        handle.seek(tracked.offset)  # type: ignore[attr-defined]
        data = handle.read()  # type: ignore[attr-defined]
        tracked.offset += len(data)
        data = tracked.pending + data
        lines = data.split(b"\n")
        tracked.pending = lines.pop()
        if finish and tracked.pending:
            lines.append(tracked.pending)
            tracked.pending = b""
        text = decode_lines(lines)
        if not text:
            return []
        if tracked.fmt is None:
            # Undetectable: its lines become violations and the standard reports the source,
            # instead of one new file stopping the whole flow.
            tracked.fmt = self.fmt or detect_format(text, self.options) or UNDETECTED
        out = []
        for i in range(0, len(text), self.chunk_size):
            part = text[i : i + self.chunk_size]
            first = self.state.lines.get(tracked.name, 0) + 1
            self.state.lines[tracked.name] = first - 1 + len(part)
            out.append(RawChunk(tracked.name, tracked.fmt, first, part))
        return out

    def close(self) -> None:
        for key in list(self._handles):
            self._close(key)
