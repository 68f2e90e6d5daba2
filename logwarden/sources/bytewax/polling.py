"""The partition shape every polling source shares: hand on what a read gives; when it gives
nothing, end (a finite input) or ask Bytewax to wake the partition after a poll interval."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from bytewax.inputs import StatefulSourcePartition
from typing_extensions import override

from logwarden.sources.files import RawChunk
from logwarden.timeutil import utcnow

S = TypeVar("S")


class PollingPartition(StatefulSourcePartition[RawChunk, S], Generic[S]):
    def __init__(self, read: Callable[[], list[RawChunk]], finished: Callable[[], bool], state: Callable[[], S],
                 close: Callable[[], None], poll: timedelta) -> None:
        self._read, self._finished, self._state, self._close, self._poll = read, finished, state, close, poll
        self._awake: datetime | None = None

    @override
    def next_batch(self) -> list[RawChunk]:
        chunks = self._read()
        if chunks:
            self._awake = None
            return chunks
        if self._finished():
            raise StopIteration
        self._awake = utcnow() + self._poll
        return []

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> S:
        return copy.deepcopy(self._state())

    @override
    def close(self) -> None:
        self._close()
