"""Bytewax sinks: JSON lines to a file (one writer for the whole cluster), and a callback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

# Every item a sink gets is (key, record); records have ``to_dict``.
Keyed = tuple[str, Any]


class _JsonLinesPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "ab")

    @override
    def write_batch(self, values: list[Any]) -> None:
        self._f.write(b"".join(orjson.dumps(v.to_dict()) + b"\n" for v in values))
        self._f.flush()

    @override
    def snapshot(self) -> None:
        return None

    @override
    def close(self) -> None:
        self._f.close()


class JsonLinesSink(FixedPartitionedSink[Any, None]):
    """Appends each record's ``to_dict()`` as one JSON line. One partition: one writer."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @override
    def list_parts(self) -> list[str]:
        return ["out"]

    @override
    def part_fn(self, item_key: str) -> int:
        return 0

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _JsonLinesPartition:
        return _JsonLinesPartition(self._path)


class _BatchPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, write: Callable[[list[Any]], Any]) -> None:
        self._write = write

    @override
    def write_batch(self, values: list[Any]) -> None:
        self._write(values)

    @override
    def snapshot(self) -> None:
        return None


class BatchSink(FixedPartitionedSink[Any, None]):
    """Hands each batch of records to ``write`` on a single worker: the incident store (one
    transaction a batch), the audit trail (one append a batch), the terminal, tests."""

    def __init__(self, write: Callable[[list[Any]], Any], name: str = "out") -> None:
        self._write = write
        self._name = name

    @override
    def list_parts(self) -> list[str]:
        return [self._name]

    @override
    def part_fn(self, item_key: str) -> int:
        return 0

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BatchPartition:
        return _BatchPartition(self._write)


def each(fn: Callable[[Any], None]) -> Callable[[list[Any]], None]:
    """A per-record function as a batch writer for ``BatchSink``."""

    def write(values: list[Any]) -> None:
        for value in values:
            fn(value)

    return write
