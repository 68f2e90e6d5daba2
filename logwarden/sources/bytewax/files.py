"""A Bytewax source over log files and stdin: one partition per input, one item per chunk."""

from __future__ import annotations

from datetime import datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from logwarden.parsers import ParserOptions
from logwarden.replay import ReplayClock
from logwarden.sources.bytewax.polling import PollingPartition
from logwarden.sources.files import LineReader, RawChunk
from logwarden.sources.watch import DirectoryWatcher, WatchState
from logwarden.timeutil import utcnow

PACE_WAIT = timedelta(milliseconds=1)  # an input ahead of the others in a replay waits this long


class _LogFilePartition(StatefulSourcePartition[RawChunk, tuple[int, int]]):
    def __init__(self, path: str, fmt: str, chunk_size: int, follow: bool, poll: timedelta,
                 resume: tuple[int, int] | None, pace: ReplayClock | None = None) -> None:
        self._reader = LineReader(path, fmt, chunk_size, resume)
        self._follow = follow
        self._poll = poll
        self._awake: datetime | None = None
        self._ended = False
        self._pace = pace

    @override
    def next_batch(self) -> list[RawChunk]:
        if self._ended:
            raise StopIteration
        reader = self._reader
        if self._pace is not None and self._pace.ahead(reader.path):  # a replay read abreast
            self._awake = utcnow() + PACE_WAIT
            return []
        start = reader.lineno + 1
        lines = reader.read()
        if not lines:
            if self._follow:
                self._awake = utcnow() + self._poll
                return []
            # The end, told by a last chunk (``RawChunk.last``, with the line left without a
            # newline, if any): the input no longer holds a replay's watermark back.
            self._ended = True
            return [RawChunk(reader.path, reader.fmt, start, reader.finish(), last=True)]
        self._awake = None
        return [RawChunk(reader.path, reader.fmt, start, lines)]

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> tuple[int, int]:
        return (self._reader.offset, self._reader.lineno)

    @override
    def close(self) -> None:
        self._reader.close()


class LogFileSource(FixedPartitionedSource[RawChunk, tuple[int, int]]):
    """Reads ``(path, format)`` inputs; ``follow`` keeps tailing files at their end."""

    def __init__(self, inputs: list[tuple[str, str]], chunk_size: int = 1000,
                 follow: bool = False, poll: timedelta = timedelta(milliseconds=100)) -> None:
        self._inputs = dict(inputs)
        self._chunk_size = chunk_size
        self._follow = follow
        self._poll = poll
        # A replay's clock (``logwarden.replay``): its inputs are read abreast in event time.
        self.pace: ReplayClock | None = None

    @override
    def list_parts(self) -> list[str]:
        return list(self._inputs)

    @override
    def build_part(self, step_id: str, for_part: str,
                   resume_state: tuple[int, int] | None) -> _LogFilePartition:
        return _LogFilePartition(for_part, self._inputs[for_part], self._chunk_size,
                                 self._follow, self._poll, resume_state, self.pace)


class DirectorySource(FixedPartitionedSource[RawChunk, WatchState]):
    """Every file matching a glob, including files created later and rotated ones."""

    def __init__(self, pattern: str, fmt: str | None, options: ParserOptions, chunk_size: int = 1000,
                 follow: bool = False, poll: timedelta = timedelta(milliseconds=100)) -> None:
        self._pattern, self._fmt, self._options = pattern, fmt, options
        self._chunk_size, self._follow, self._poll = chunk_size, follow, poll

    @override
    def list_parts(self) -> list[str]:
        return [f"dir:{self._pattern}"]

    @override
    def build_part(self, step_id: str, for_part: str,
                   resume_state: WatchState | None) -> PollingPartition[WatchState]:
        watcher = DirectoryWatcher(self._pattern, self._fmt, self._options, self._chunk_size, resume_state)
        return PollingPartition(watcher.poll, lambda: not self._follow, lambda: watcher.state, watcher.close,
                                self._poll)
