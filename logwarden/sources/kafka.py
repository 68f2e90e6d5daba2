"""Kafka as a log input: the URL, and Kafka messages as chunks of raw lines.

Plain Python; ``logwarden.sources.bytewax.kafka`` wraps Bytewax's Kafka connector with it. A message's
value is one raw log line; the headers ``source`` and ``format`` are optional. Its source
defaults to ``kafka:TOPIC/PARTITION``, and a message's line number is its offset + 1, so a
resumed flow numbers lines exactly as the first run did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from logwarden.errors import ConfigError
from logwarden.parsers import PARSERS, ParserOptions, detect_format
from logwarden.sources.files import RawChunk


@dataclass(frozen=True)
class KafkaURL:
    """``kafka://broker1:9092,broker2:9092/topic1,topic2[?from=end&security.protocol=SSL...]``:
    query keys other than ``from`` go to librdkafka as configuration."""

    brokers: tuple[str, ...]
    topics: tuple[str, ...]
    from_end: bool = False
    config: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"kafka://{','.join(self.brokers)}/{','.join(self.topics)}"


SECRET_CONFIG = ("sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret")


def parse_kafka_url(text: str) -> KafkaURL:
    parts = urlsplit(text)
    if parts.scheme != "kafka":
        raise ConfigError(f"input {text.split('?')[0]}: a Kafka input starts with kafka://")
    brokers = tuple(b for b in parts.netloc.split(",") if b)
    topics = tuple(t for t in parts.path.strip("/").split(",") if t)
    if not brokers or not topics:
        raise ConfigError(f"input kafka://{parts.netloc}{parts.path}: name brokers and topics, "
                          "kafka://broker:9092/topic[,topic2]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    start = query.pop("from", "beginning")
    if start not in ("beginning", "end"):
        raise ConfigError(f"input kafka://{parts.netloc}{parts.path}: from= is 'beginning' or 'end', not {start!r}")
    leaked = [k for k in query if k in SECRET_CONFIG]
    if leaked:
        raise ConfigError(f"input kafka://{parts.netloc}{parts.path}: pass {', '.join(leaked)} through "
                          "LOGWARDEN_KAFKA_CONFIG, never on a command line")
    return KafkaURL(brokers, topics, start == "end", query)


class MessageDecoder:
    """Turns a batch of Kafka messages (objects with ``topic``, ``partition``, ``offset``, ``value``
    and ``headers``) into chunks: one per run of consecutive messages of one source."""

    def __init__(self, fmt: str | None, options: ParserOptions) -> None:
        self.fmt, self.options = fmt, options
        self.formats: dict[str, str] = {}

    def chunks(self, messages: list[Any]) -> list[RawChunk]:
        out: list[RawChunk] = []
        for msg in messages:
            headers = {k: v for k, v in (msg.headers or [])}
            source = _text(headers.get("source")) or f"kafka:{msg.topic}/{msg.partition}"
            line = _text(msg.value).rstrip("\r\n")
            fmt = self.formats.get(source)
            if fmt is None:
                given = _text(headers.get("format")) or self.fmt
                fmt = given if given in PARSERS else (detect_format([line], self.options) or "json")
                self.formats[source] = fmt
            lineno = msg.offset + 1
            last = out[-1] if out else None
            if last is not None and last.source == source and last.fmt == fmt and \
                    last.first_line + len(last.lines) == lineno:
                last.lines.append(line)
            else:
                out.append(RawChunk(source, fmt, lineno, [line]))
        return out


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
