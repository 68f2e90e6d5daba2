"""Redis Streams as log inputs: the URL, reading entries as chunks, and shipping files into a stream.

Plain Python over redis-py; the Bytewax source in ``logwarden.sources.bytewax.redis_stream`` wraps
``StreamReader`` (one stream, one partition). An entry holds a raw log line (field ``line``,
or the URL's ``field=``) and optionally ``source`` and ``format``. Its source defaults to the
stream's name; each source gets its own line numbers, kept in the reader's state, so a restart
numbers lines exactly as the first run did.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import orjson
import redis
import structlog

from logwarden.errors import ConfigError, LogwardenError
from logwarden.parsers import PARSERS, ParserOptions, build_parser, detect_format
from logwarden.sources.files import LineReader, RawChunk, sniff_file

GLOB_CHARS = "*?["
log = structlog.get_logger("logwarden.sources.redis_streams")


@dataclass(frozen=True)
class StreamURL:
    """``redis://[user:password@]host:port/db?stream=NAME_OR_GLOB[&field=line]``."""

    url: str  # the Redis connection URL, without the query
    stream: str
    field: str = "line"

    @property
    def is_pattern(self) -> bool:
        return any(c in self.stream for c in GLOB_CHARS)

    def redacted(self) -> str:
        """The URL without its password: what logs, the audit trail and errors show."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = (f"{parts.username or ''}:***@" if parts.password else "") + host + (
            f":{parts.port}" if parts.port else "")
        query = urlencode({"stream": self.stream, **({"field": self.field} if self.field != "line" else {})},
                          safe=":*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=5)


def is_stream_url(text: str) -> bool:
    return text.startswith(("redis://", "rediss://", "unix://"))


def parse_stream_url(text: str, credentials_from: str | None = None, field_name: str = "line") -> StreamURL:
    """Parse a stream input; a URL without a password borrows it from ``credentials_from``
    (``LOGWARDEN_REDIS_URL``) when both name the same host, so no password sits on a command line.
    ``field_name`` (``LOGWARDEN_STREAM_FIELD``) is the entries' line field unless the URL says ``field=``."""
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    stream = (query.pop("stream", [None]) or [None])[0]
    if not stream:
        raise ConfigError(f"input {StreamURL(urlunsplit(parts._replace(query='')), '?').redacted()}: "
                          "add ?stream=NAME (a stream name or a glob such as logs:*)")
    field_name = (query.pop("field", [field_name]) or [field_name])[0]
    url = urlunsplit(parts._replace(query=urlencode({k: v[0] for k, v in query.items()})))
    if credentials_from and parts.password is None:
        cred = urlsplit(credentials_from)
        if cred.password is not None and (cred.hostname, cred.port) == (parts.hostname, parts.port):
            netloc = f"{cred.username or ''}:{cred.password}@{parts.netloc}"
            url = urlunsplit(urlsplit(url)._replace(netloc=netloc))
    return StreamURL(url, stream, field_name)


def list_streams(client: redis.Redis, url: StreamURL) -> list[str]:
    """The streams an input names: the one stream, or every existing stream matching the glob."""
    if not url.is_pattern:
        return [url.stream]
    found = {k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=url.stream, _type="STREAM")}
    return sorted(s for s in found if fnmatch.fnmatchcase(s, url.stream))


@dataclass
class StreamState:
    """Where a reader is: the last entry id consumed, and per source its line count and format."""

    last_id: str = "0-0"
    lines: dict[str, int] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class StreamReader:
    """Reads one stream in id order as ``RawChunk``s (one per run of entries of one source).

    ``follow=False`` stops at the stream's last entry as of opening (a replay of what is there);
    ``follow=True`` keeps reading what arrives."""

    def __init__(self, client: redis.Redis, stream: str, field_name: str, fmt: str | None, options: ParserOptions,
                 chunk_size: int, follow: bool, resume: StreamState | None = None) -> None:
        self.client, self.stream, self.field = client, stream, field_name.encode()
        self.fmt, self.options, self.chunk_size, self.follow = fmt, options, chunk_size, follow
        self.state = resume or StreamState()
        self._down = False
        self.end_id: str | None = None if follow else self._last_id()

    def _last_id(self) -> str:
        try:
            info = self.client.xinfo_stream(self.stream)
        except redis.ResponseError:  # no such stream (yet): nothing to replay
            return "0-0"
        except redis.RedisError as exc:
            raise ConfigError(f"stream {self.stream}: {type(exc).__name__}: {exc}") from None
        last = info["last-generated-id"]
        return last.decode() if isinstance(last, bytes) else str(last)

    @property
    def finished(self) -> bool:
        return self.end_id is not None and _id_tuple(self.state.last_id) >= _id_tuple(self.end_id)

    def read(self) -> list[RawChunk]:
        """The next entries as chunks; empty when there is nothing new (or ``finished``)."""
        if self.finished:
            return []
        try:
            entries = self.client.xrange(self.stream, min=f"({self.state.last_id}", max=self.end_id or "+",
                                         count=self.chunk_size)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis restarting or unreachable for a moment: keep the position and try again at
            # the next poll (redis-py reconnects); nothing is read twice or skipped.
            if not self._down:
                log.warning("stream_unreachable", stream=self.stream, error=type(exc).__name__)
            self._down = True
            return []
        if self._down:
            log.info("stream_reachable", stream=self.stream)
            self._down = False
        if not entries:
            return []
        chunks: list[RawChunk] = []
        st = self.state
        for _id, fields in entries:
            source, fmt, line = self._decode(fields)
            n = st.lines.get(source, 0) + 1
            st.lines[source] = n
            last = chunks[-1] if chunks else None
            if last is not None and last.source == source and last.fmt == fmt:
                last.lines.append(line)
            else:
                chunks.append(RawChunk(source, fmt, n, [line]))
        st.last_id = entries[-1][0].decode()
        return chunks

    def _decode(self, fields: dict[bytes, bytes]) -> tuple[str, str, str]:
        raw = fields.get(self.field)
        if raw is None:
            # Not a log entry of ours: kept, as a line the standard step quarantines (parse error).
            line = orjson.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                                 for k, v in fields.items()}).decode()
        else:
            line = raw.decode(errors="replace").rstrip("\r\n")
        source = fields[b"source"].decode(errors="replace") if b"source" in fields else self.stream
        fmt = self.state.formats.get(source)
        if fmt is None:
            given = fields.get(b"format", b"").decode(errors="replace") or self.fmt
            fmt = given if given in PARSERS else (detect_format([line], self.options) or "json")
            self.state.formats[source] = fmt
        return source, fmt, line


# -- shipping files into a stream ---------------------------------------------------------------

def stream_for(url: StreamURL, path: str) -> str:
    """The stream a file goes to: the URL's stream, its ``*`` replaced by the file's stem."""
    return url.stream.replace("*", Path(path).stem) if "*" in url.stream else url.stream


def ship(url: StreamURL, paths: list[str], fmt: str | None, options: ParserOptions, *, follow: bool = False,
         chunk_size: int = 1000, maxlen: int | None = None, poll: float = 0.5,
         client: Any = None, stop: Any = None) -> dict[str, int]:
    """Send every line of the files into the stream (``XADD``, one pipeline a chunk), with the
    file's path as ``source`` and its detected format. ``follow`` keeps tailing until ``stop`` is set.
    Returns the lines sent per file."""
    if any(c in url.stream.replace("*", "") for c in GLOB_CHARS):
        raise ConfigError(f"ship --to {url.redacted()}: a target stream may hold only '*' (the file's stem)")
    client = client or url.client()
    readers = [LineReader(p, fmt or sniff_file(p, options), chunk_size) for p in paths]
    sent = {p: 0 for p in paths}
    try:
        while True:
            moved = 0
            for reader in readers:
                for chunk in _chunks(reader, follow):
                    target = stream_for(url, reader.path)
                    _send(client, url, maxlen, [(target, reader.path, reader.fmt, line) for line in chunk.lines])
                    sent[reader.path] += len(chunk.lines)
                    moved += len(chunk.lines)
            if not follow or (stop is not None and stop.is_set()):
                return sent
            if not moved:
                time.sleep(poll)
    finally:
        for reader in readers:
            reader.close()


def time_ordered(inputs: list[tuple[str, str]], options: ParserOptions) -> list[tuple[str, str, str]]:
    """``(path, format, line)`` of every line of the inputs, merged in event-time order (ties: path,
    line number), as a shipper forwarding live sources would have sent them. A line without a
    readable time keeps its place after the line before it, so it still reaches the standard step."""
    keyed = []
    for path, fmt in inputs:
        parser, last = build_parser(fmt, options), ""
        for n, line in enumerate(chain.from_iterable(c.lines for c in LineReader(path, fmt, 5000).chunks()), 1):
            try:
                ts = parser.parse(line, path, n).timestamp
            except LogwardenError:
                ts = None
            if ts is not None:  # a zone-less time counts as UTC, as the standard step takes it
                last = (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)).isoformat()
            keyed.append((last, path, n, fmt, line))
    keyed.sort(key=lambda k: k[:3])
    return [(path, fmt, line) for _, path, _, fmt, line in keyed]


def ship_merged(url: StreamURL, paths: list[str], fmt: str | None, options: ParserOptions, *,
                chunk_size: int = 1000, maxlen: int | None = None, client: Any = None) -> dict[str, int]:
    """Send whole files into one stream in event-time order (``ship --merge``): history replayed as
    if it arrived live, so a ``--follow`` flow sees no source running hours ahead of another."""
    if url.is_pattern:
        raise ConfigError(f"ship --merge --to {url.redacted()}: name one stream, not a glob")
    client = client or url.client()
    merged = time_ordered([(p, fmt or sniff_file(p, options)) for p in paths], options)
    sent = dict.fromkeys(paths, 0)
    for i in range(0, len(merged), chunk_size):
        batch = merged[i:i + chunk_size]
        _send(client, url, maxlen, [(url.stream, path, f, line) for path, f, line in batch])
        for path, _, _ in batch:
            sent[path] += 1
    return sent


def _send(client: Any, url: StreamURL, maxlen: int | None, entries: list[tuple[str, str, str, str]]) -> None:
    """``XADD`` each ``(stream, source, format, line)`` entry, in one pipeline."""
    pipe = client.pipeline(transaction=False)
    for stream, source, fmt, line in entries:
        pipe.xadd(stream, {url.field: line, "source": source, "format": fmt}, maxlen=maxlen,
                  approximate=maxlen is not None)
    pipe.execute()


def _chunks(reader: LineReader, follow: bool) -> Iterator[RawChunk]:
    if not follow:
        yield from reader.chunks()
        return
    while lines := reader.read():  # following: a partial last line waits for its newline
        yield RawChunk(reader.path, reader.fmt, reader.lineno - len(lines) + 1, lines)
