"""A Bytewax source over Redis Streams: one partition per stream, its position in the recovery state."""

from __future__ import annotations

from datetime import timedelta

import redis
from bytewax.inputs import FixedPartitionedSource
from typing_extensions import override

from logwarden.errors import ConfigError
from logwarden.parsers import ParserOptions
from logwarden.sources.bytewax.polling import PollingPartition
from logwarden.sources.files import RawChunk
from logwarden.sources.redis_streams import StreamReader, StreamState, StreamURL, list_streams


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
            client.ping()  # a wrong host, port or password: said at start
            return [f"redis:{s}" for s in list_streams(client, self._url)]
        except redis.RedisError as exc:  # at start: a clear error, not a traceback
            raise ConfigError(f"input {self._url.redacted()}: {type(exc).__name__}: {exc}") from None
        finally:
            client.close()

    @override
    def build_part(self, step_id: str, for_part: str,
                   resume_state: StreamState | None) -> PollingPartition[StreamState]:
        reader = StreamReader(self._url.client(), for_part.removeprefix("redis:"), self._url.field, self._fmt,
                              self._options, self._chunk_size, self._follow, resume_state)
        return PollingPartition(reader.read, lambda: reader.finished, lambda: reader.state, reader.client.close,
                                self._poll)
