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


class _CallbackPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, fn: Callable[[Any], None]) -> None:
        self._fn = fn

    @override
    def write_batch(self, values: list[Any]) -> None:
        for v in values:
            self._fn(v)

    @override
    def snapshot(self) -> None:
        return None


class CallbackSink(FixedPartitionedSink[Any, None]):
    """Calls ``fn(record)`` for each record, on a single worker (terminal output, tests)."""

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self._fn = fn

    @override
    def list_parts(self) -> list[str]:
        return ["out"]

    @override
    def part_fn(self, item_key: str) -> int:
        return 0

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _CallbackPartition:
        return _CallbackPartition(self._fn)


class _IncidentPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, apply: Callable[[list[Any]], Any]) -> None:
        self._apply = apply

    @override
    def write_batch(self, values: list[Any]) -> None:
        self._apply(values)  # one transaction for the whole batch

    @override
    def snapshot(self) -> None:
        return None


class IncidentSink(FixedPartitionedSink[Any, None]):
    """Applies each batch of alerts to the incident store in one transaction."""

    def __init__(self, apply: Callable[[list[Any]], Any]) -> None:
        self._apply_fn = apply

    @override
    def list_parts(self) -> list[str]:
        return ["incidents"]

    @override
    def part_fn(self, item_key: str) -> int:
        return 0

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _IncidentPartition:
        return _IncidentPartition(self._apply_fn)


class _AuditPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, write: Callable[[list[Any]], Any]) -> None:
        self._write = write

    @override
    def write_batch(self, values: list[Any]) -> None:
        self._write(values)

    @override
    def snapshot(self) -> None:
        return None


class AuditSink(FixedPartitionedSink[Any, None]):
    """Appends each batch to an audit trail (one partition: one writer per class)."""

    def __init__(self, write: Callable[[list[Any]], Any], name: str) -> None:
        self._write_fn = write
        self._name = name

    @override
    def list_parts(self) -> list[str]:
        return [self._name]

    @override
    def part_fn(self, item_key: str) -> int:
        return 0

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _AuditPartition:
        return _AuditPartition(self._write_fn)
