"""A Bytewax source over Redis Streams: one partition per stream, its position in the recovery state."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from logwarden.inputs import RawChunk
from logwarden.parsers import ParserOptions
from logwarden.streams import StreamReader, StreamState, StreamURL, list_streams
from logwarden.timeutil import utcnow


class _StreamPartition(StatefulSourcePartition[RawChunk, StreamState]):
    def __init__(self, reader: StreamReader, poll: timedelta) -> None:
        self._reader, self._poll = reader, poll
        self._awake: datetime | None = None

    @override
    def next_batch(self) -> list[RawChunk]:
        chunks = self._reader.read()
        if chunks:
            self._awake = None
            return chunks
        if self._reader.finished:
            raise StopIteration
        self._awake = utcnow() + self._poll
        return []

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> StreamState:
        return copy.deepcopy(self._reader.state)

    @override
    def close(self) -> None:
        self._reader.client.close()


class RedisStreamSource(FixedPartitionedSource[RawChunk, StreamState]):
    """Every stream an input URL names (a name or a glob, resolved at start)."""

    def __init__(self, url: StreamURL, fmt: str | None, options: ParserOptions, chunk_size: int = 1000,
                 follow: bool = False, poll: timedelta = timedelta(milliseconds=50)) -> None:
        self._url, self._fmt, self._options = url, fmt, options
        self._chunk_size, self._follow, self._poll = chunk_size, follow, poll

    @override
    def list_parts(self) -> list[str]:
        client = self._url.client()
        try:
            return [f"redis:{s}" for s in list_streams(client, self._url)]
        finally:
            client.close()

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: StreamState | None) -> _StreamPartition:
        reader = StreamReader(self._url.client(), for_part.removeprefix("redis:"), self._url.field, self._fmt,
                              self._options, self._chunk_size, self._follow, resume_state)
        return _StreamPartition(reader, self._poll)
