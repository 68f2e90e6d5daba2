"""Bytewax sinks: JSON lines to a file and the audit trail (one writer each for the whole cluster,
exactly once across a crash and a resume), and a callback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

from logwarden.audit.setup import ReplayGuard, lineage_position, record_of
from logwarden.audit.trail import AuditTrail
from logwarden.event import EventBatch

# Every item a sink gets is (key, record); records have ``to_dict``, but the ``EventBatch`` of a
# chunk's events that the sinks archiving every event get.
Keyed = tuple[str, Any]
S = TypeVar("S")


class _OneWriter(FixedPartitionedSink[Any, S], Generic[S]):
    """A sink with a single partition, so one worker of the whole cluster writes everything."""

    name = "out"

    @override
    def list_parts(self) -> list[str]:
        return [self.name]

    @override
    def part_fn(self, item_key: str) -> int:
        return 0


class _JsonLinesPartition(StatefulSinkPartition[Any, int]):
    def __init__(self, path: Path, resume_offset: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        self._f = os.fdopen(fd, "r+b")
        # A new run writes its output anew; a resumed one cuts what it wrote after the snapshot
        # it resumes from, which the flow is about to emit again: no line is lost or doubled.
        self._f.truncate(resume_offset or 0)
        self._f.seek(0, os.SEEK_END)

    @override
    def write_batch(self, values: list[Any]) -> None:
        self._f.write(b"".join(orjson.dumps(v.to_dict()) + b"\n" for v in values))
        self._f.flush()

    @override
    def snapshot(self) -> int:
        return self._f.tell()

    @override
    def close(self) -> None:
        self._f.close()


class JsonLinesSink(_OneWriter[int]):
    """Writes each record's ``to_dict()`` as one JSON line. One partition: one writer. Its
    recovery state is the file's length, so a resumed flow neither loses nor repeats lines."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _JsonLinesPartition:
        return _JsonLinesPartition(self._path, resume_state)


# A trail sink's recovery state: the trail's position, and what a resumed run still owes again.
TrailState = tuple[int, list[tuple[tuple[str, ...], int]]]


class _TrailPartition(StatefulSinkPartition[Any, TrailState]):
    def __init__(self, trail: AuditTrail, resume: TrailState | int | None, start: int | None) -> None:
        self._trail = trail
        seq, carried = resume if isinstance(resume, tuple) else (resume, [])  # an int: an older snapshot
        # no snapshot yet: a resumed run emits again all this sink wrote since its runs began
        self._guard = ReplayGuard(trail, start if seq is None else seq, carried)

    @override
    def write_batch(self, values: list[Any]) -> None:
        records = [record_of(e) for v in values for e in (v.events if type(v) is EventBatch else (v,))]
        self._trail.append(self._guard.fresh(records))

    @override
    def snapshot(self) -> TrailState:
        return self._trail.position(), self._guard.pending()


class TrailSink(_OneWriter[TrailState]):
    """Appends what the flow decided (or saw) to an audit trail, never the same record twice
    across crashes and resumes (its recovery state is the trail's position and the records a
    resumed run has yet to emit again)."""

    def __init__(self, trail: AuditTrail, name: str, recovery_dir: Path | None = None) -> None:
        self._trail, self.name, self._recovery_dir = trail, name, recovery_dir

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: TrailState | int | None) -> _TrailPartition:
        start = lineage_position(self._recovery_dir, self._trail.cls) if resume_state is None else None
        return _TrailPartition(self._trail, resume_state, start)


class _BatchPartition(StatefulSinkPartition[Any, Any]):
    def __init__(self, write: Callable[[list[Any]], Any], state: Callable[[], Any] | None) -> None:
        self._write, self._state = write, state

    @override
    def write_batch(self, values: list[Any]) -> None:
        self._write(values)

    @override
    def snapshot(self) -> Any:
        return self._state() if self._state is not None else None


class BatchSink(_OneWriter[Any]):
    """Hands each batch of records to ``write`` on a single worker: the incident store (one
    transaction a batch), metrics, the terminal, tests.

    A writer that keeps state across a crash gives ``state`` (taken at each snapshot) and
    ``restore`` (handed it when a resumed run builds the sink): the incident updates that wait
    for Redis."""

    def __init__(self, write: Callable[[list[Any]], Any], name: str = "out", *,
                 state: Callable[[], Any] | None = None, restore: Callable[[Any], None] | None = None) -> None:
        self._write, self._state, self._restore = write, state, restore
        self.name = name

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _BatchPartition:
        if self._restore is not None:
            self._restore(resume_state)
        return _BatchPartition(self._write, self._state)


def each(fn: Callable[[Any], None]) -> Callable[[list[Any]], None]:
    """A per-record function as a batch writer for ``BatchSink``."""

    def write(values: list[Any]) -> None:
        for value in values:
            fn(value)

    return write
