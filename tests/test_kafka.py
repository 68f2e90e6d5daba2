"""Kafka input without a broker (none can run here): the URL, decoding messages into chunks, the
connector's own message and error types, and clear errors when the cluster cannot be reached.
The path through a real broker is the compose file's ``kafka`` profile (see docs/containers.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import confluent_kafka
import pytest
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage

from logwarden.errors import ConfigError
from logwarden.parsers import ParserOptions
from logwarden.sources.bytewax.kafka import KafkaInputError, _KafkaPartition, kafka_source
from logwarden.sources.kafka import MessageDecoder, parse_kafka_url
from tests.fakes import _free_port

ROOT = Path(__file__).resolve().parents[1]
SSH = "Nov 24 10:00:0{} gw sshd[1]: Failed password for alice from 192.0.2.7 port 22 ssh2"


def test_kafka_urls() -> None:
    url = parse_kafka_url("kafka://b1:9092,b2:9092/logs,audit?from=end&security.protocol=SSL")
    assert url.brokers == ("b1:9092", "b2:9092") and url.topics == ("logs", "audit") and url.from_end
    assert url.config == {"security.protocol": "SSL"} and url.describe() == "kafka://b1:9092,b2:9092/logs,audit"
    with pytest.raises(ConfigError, match="name brokers and topics"):
        parse_kafka_url("kafka://b1:9092/")
    with pytest.raises(ConfigError, match="'beginning' or 'end'"):
        parse_kafka_url("kafka://b1:9092/t?from=middle")
    with pytest.raises(ConfigError, match="LOGWARDEN_KAFKA_CONFIG") as err:
        parse_kafka_url("kafka://b1:9092/t?sasl.password=hunter2")
    assert "hunter2" not in str(err.value)


def _msg(offset: int, value: bytes | None, partition: int = 0, **headers: bytes) -> KafkaSourceMessage:
    return KafkaSourceMessage(key=None, value=value, topic="logs", partition=partition, offset=offset,
                              headers=list(headers.items()))


def test_messages_become_chunks_numbered_by_offset() -> None:
    decoder = MessageDecoder(None, ParserOptions())
    chunks = decoder.chunks([
        _msg(10, SSH.format(1).encode(), source=b"gw/auth.log", format=b"syslog"),
        _msg(11, SSH.format(2).encode() + b"\r\n", source=b"gw/auth.log"),
        _msg(12, b'{"@timestamp":"2026-11-24T10:00:01Z","user":"a"}'),
        _msg(13, SSH.format(3).encode(), source=b"gw/auth.log"),
        _msg(5, b'{"@timestamp":"2026-11-24T10:00:02Z"}', partition=1),
        _msg(14, None),  # a tombstone: an empty line, which the standard step counts as blank
    ])
    assert [(c.source, c.fmt, c.first_line, c.lines) for c in chunks] == [
        ("gw/auth.log", "syslog", 11, [SSH.format(1), SSH.format(2)]),
        ("kafka:logs/0", "json", 13, ['{"@timestamp":"2026-11-24T10:00:01Z","user":"a"}']),
        ("gw/auth.log", "syslog", 14, [SSH.format(3)]),
        ("kafka:logs/1", "json", 6, ['{"@timestamp":"2026-11-24T10:00:02Z"}']),
        ("kafka:logs/0", "json", 15, [""]),
    ]


class _Inner:
    """Stands in for the connector's partition (which needs a broker): same interface."""

    def __init__(self, batches: list[list[object]]) -> None:
        self.batches, self.closed, self.offset = batches, False, 0

    def next_batch(self) -> list[object]:
        if not self.batches:
            raise StopIteration
        batch = self.batches.pop(0)
        self.offset += len(batch)
        return batch

    def snapshot(self) -> int:
        return self.offset

    def close(self) -> None:
        self.closed = True


def test_partition_skips_transient_errors_and_stops_on_fatal_ones() -> None:
    transient = KafkaError(confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT, "down", retriable=True),
                           _msg(3, None))
    fatal = KafkaError(confluent_kafka.KafkaError(confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                                  "not allowed", fatal=True), _msg(4, None))
    inner = _Inner([[_msg(0, SSH.format(1).encode()), transient], [], [fatal]])
    part = _KafkaPartition(inner, MessageDecoder("syslog", ParserOptions()), timedelta(milliseconds=50))
    assert [(c.first_line, c.lines) for c in part.next_batch()] == [(1, [SSH.format(1)])]
    assert part.next_awake() is None and part.snapshot() == 2
    assert part.next_batch() == [] and part.next_awake() is not None  # nothing new: poll again shortly
    with pytest.raises(KafkaInputError, match=r"topic logs partition 0: .*not allowed"):
        part.next_batch()
    part.close()
    assert inner.closed


def test_unreachable_cluster_is_a_clear_error_not_a_hang() -> None:
    port = _free_port()
    source = kafka_source(parse_kafka_url(f"kafka://127.0.0.1:{port}/logs"), None, ParserOptions(), 100,
                          follow=True, poll=timedelta(milliseconds=50))
    source._timeout = timedelta(seconds=1)
    with pytest.raises(KafkaInputError, match=f"kafka://127.0.0.1:{port}/logs: cannot list the partitions of logs"):
        source.list_parts()
    inner = source.inner  # the connector is configured as asked: tail while following, batches, our logger
    assert inner._tail is True and inner._batch_size == 100 and inner._raise_on_errors is False
    assert inner._starting_offset == confluent_kafka.OFFSET_BEGINNING and "logger" in inner._add_config


def test_run_reports_an_unreachable_cluster_plainly() -> None:
    done = subprocess.run([sys.executable, "-m", "logwarden", "run", "-i", f"kafka://127.0.0.1:{_free_port()}/logs"],
                          env=os.environ, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 2 and "logwarden: error: kafka://" in done.stderr
    assert "Traceback" not in done.stderr and "BytewaxRuntimeError" not in done.stderr
