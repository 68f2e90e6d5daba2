"""Kafka input through Bytewax's Kafka connector: its partitions are our partitions, its offsets
our recovery state; messages become chunks of raw lines (``logwarden.sources.kafka``)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import structlog
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from logwarden.errors import LogwardenError
from logwarden.parsers import ParserOptions
from logwarden.sources.files import RawChunk
from logwarden.sources.kafka import KafkaURL, MessageDecoder
from logwarden.timeutil import utcnow

log = structlog.get_logger("logwarden.kafka")
# librdkafka logs every failed connection attempt; what matters reaches us as errors instead.
RDKAFKA_LOG = logging.getLogger("logwarden.rdkafka")
RDKAFKA_LOG.setLevel(logging.CRITICAL)


class KafkaInputError(LogwardenError):
    """A fatal error of the Kafka consumer (authentication, unknown topic, ...)."""


class _KafkaPartition(StatefulSourcePartition[RawChunk, Any]):
    def __init__(self, inner: Any, decoder: MessageDecoder, poll: timedelta) -> None:
        self._inner, self._decoder, self._poll = inner, decoder, poll
        self._awake: datetime | None = None

    @override
    def next_batch(self) -> list[RawChunk]:
        from bytewax.connectors.kafka import KafkaError

        batch = self._inner.next_batch()  # raises StopIteration at the end of a replay
        messages = []
        for item in batch:
            if isinstance(item, KafkaError):
                err = item.err
                if err.fatal() or not err.retriable():
                    raise KafkaInputError(f"Kafka topic {item.msg.topic} partition {item.msg.partition}: {err.str()}")
                log.warning("kafka_error", topic=item.msg.topic, partition=item.msg.partition, error=err.str())
                continue
            messages.append(item)
        self._awake = None if messages else utcnow() + self._poll
        return self._decoder.chunks(messages)

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> Any:
        return self._inner.snapshot()

    @override
    def close(self) -> None:
        self._inner.close()


class LogKafkaSource(FixedPartitionedSource[RawChunk, Any]):
    """Wraps ``bytewax.connectors.kafka.KafkaSource``: same partitions, same resume state."""

    def __init__(self, inner: Any, url: KafkaURL, fmt: str | None, options: ParserOptions, poll: timedelta,
                 extra_config: dict[str, str], timeout: timedelta = timedelta(seconds=10)) -> None:
        self.inner, self.url, self._fmt, self._options, self._poll = inner, url, fmt, options, poll
        self._extra, self._timeout = extra_config, timeout

    @override
    def list_parts(self) -> list[str]:
        """``PARTITION-TOPIC`` names, as the connector's ``build_part`` expects; unlike the connector,
        an unreachable cluster or a missing topic is a clear error within ``timeout``, not a hang."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        url = self.url
        client = AdminClient({"bootstrap.servers": ",".join(url.brokers), **url.config, **self._extra,
                              "logger": RDKAFKA_LOG})
        parts = []
        for topic in url.topics:
            try:
                meta = client.list_topics(topic, timeout=self._timeout.total_seconds()).topics[topic]
            except KafkaException as exc:
                raise KafkaInputError(f"{url.describe()}: cannot list the partitions of {topic}: "
                                      f"{exc.args[0].str() if exc.args else exc}") from None
            if meta.error is not None:
                raise KafkaInputError(f"{url.describe()}: topic {topic}: {meta.error.str()}")
            parts += [f"{i}-{topic}" for i in sorted(meta.partitions)]
        return parts

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _KafkaPartition:
        return _KafkaPartition(self.inner.build_part(step_id, for_part, resume_state),
                               MessageDecoder(self._fmt, self._options), self._poll)


def kafka_source(url: KafkaURL, fmt: str | None, options: ParserOptions, chunk_size: int, follow: bool,
                 poll: timedelta, extra_config: dict[str, str] | None = None) -> LogKafkaSource:
    try:
        from bytewax.connectors.kafka import KafkaSource
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END
    except ImportError:
        raise LogwardenError("Kafka input needs confluent-kafka: pip install 'logwarden[kafka]'") from None
    extra = extra_config or {}
    inner = KafkaSource(list(url.brokers), list(url.topics), tail=follow,
                        starting_offset=OFFSET_END if url.from_end else OFFSET_BEGINNING,
                        add_config={**url.config, **extra, "logger": RDKAFKA_LOG}, batch_size=chunk_size,
                        raise_on_errors=False)
    return LogKafkaSource(inner, url, fmt, options, poll, extra)
