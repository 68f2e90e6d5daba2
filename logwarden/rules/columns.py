"""A batch of events read column by column: rule conditions evaluated once per batch.

Routing asks, for every event of a batch and every rule, whether the rule could use the event.
Asked event by event that is a Python call per rule per event (a regex on each URL, again for
each rule). Here each field the conditions name is read once per batch and factorized (its
distinct values and, per event, the index of its value); a condition's test runs once per
*distinct* value and its answer is spread back to the events by numpy indexing. Logs repeat
themselves (the same paths, agents, actions and addresses), so a batch of 20,000 events has a
few thousand distinct values at most.

The tests are the very functions the per-event predicates use, so both answer the same for
every event; ``tests/test_rules.py`` checks it on the simulator's events.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from logwarden.event import ECS_FIELDS, Event
from logwarden.rows import EventRows

Mask = np.ndarray  # bool, one per event of the batch


class Columns:
    """The events of one batch, with each field factorized on first use."""

    __slots__ = ("_extra_names", "_extras", "_factorized", "_leaves", "_marks", "events", "n")

    def __init__(self, events: list[Event] | EventRows) -> None:
        # EventRows: most events held as columns, each built only when read (``events[i]``)
        self.events = events if isinstance(events, EventRows) else EventRows.of(events)
        self.n = len(events)
        self._factorized: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self._leaves: dict[Hashable, Mask] = {}
        self._extras: list[dict[str, Any] | None] | None = None
        self._extra_names: set[str] = set()
        self._marks: list[tuple[Any, str, int]] | None = None

    def factorized(self, field: str) -> tuple[np.ndarray, list[Any]]:
        """``(codes, uniques)``: ``uniques[codes[i]]`` is event i's value of ``field``."""
        found = self._factorized.get(field)
        if found is None:
            column = self._column(field)
            found = self._factorized[field] = _factorize(column) if column is not None else \
                (np.zeros(self.n, dtype=np.intp), [None])
        return found

    def _column(self, field: str) -> list[Any] | None:
        """Every event's value of ``field``; None when no event has it."""
        if field in ECS_FIELDS:
            found = self.events.column(field)
            return found if found is not None else list(map(Event.getter(field), self.events))
        # A rare field, in ``extra``: most batches hold it in no event, which one look at every
        # event's extra names tells once for all such fields.
        if self._extras is None:
            self._extras = self.events.column("extra")
            self._extra_names = set().union(*filter(None, self._extras))
        if field not in self._extra_names:
            return None if self.n else []
        return [x.get(field) if x else None for x in self._extras]

    def values(self, field: str) -> list[Any]:
        codes, uniques = self.factorized(field)
        return [uniques[c] for c in codes.tolist()]

    def test(self, field: str, test: Callable[[Any], bool], key: Hashable | None = None) -> Mask:
        """``test(value of field)`` for every event, asked once per distinct value. ``key``:
        names the test, so the same condition written in several rules runs once."""
        if key is not None and (key := (field, key)) in self._leaves:
            return self._leaves[key]
        codes, uniques = self.factorized(field)
        answers = np.fromiter(map(test, uniques), dtype=bool, count=len(uniques))
        mask = answers[codes] if len(uniques) else np.zeros(self.n, dtype=bool)
        if key is not None:
            self._leaves[key] = mask
        return mask

    def present(self, field: str) -> Mask:
        return self.test(field, _is_set, "present")

    def marks(self, rows: list[int]) -> list[tuple[Any, str, int]]:
        """``(timestamp, source, line)`` of these rows, without building their events."""
        if self._marks is None:
            self._marks = list(zip(*(self._column(f) or [None] * self.n
                                     for f in ("@timestamp", "log.file.path", "log.file.line")), strict=True))
        return [self._marks[r] for r in rows]

    def each(self, pred: Callable[[Event], bool]) -> Mask:
        """A predicate with no column form, asked event by event."""
        return np.fromiter(map(pred, self.events), dtype=bool, count=self.n)


def _is_set(value: Any) -> bool:
    return value is not None


_TEXTS = {str, type(None)}


def _factorize(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    if values and (type(first := values[0]) is str or first is None) and values.count(first) == len(values):
        # one text or none down the column (a source's dataset, action, category): only equal
        # texts (or None) equal a text (or None), and ``count`` compares them in C
        return np.zeros(len(values), dtype=np.intp), [first]
    index: dict[Any, int] = {}
    try:  # one pass: each value's code, a new value taking the next
        codes = np.fromiter([index.setdefault(v, len(index)) for v in values], dtype=np.intp, count=len(values))
    except TypeError:  # an unhashable value (a list field): no sharing, each event its own
        return np.arange(len(values), dtype=np.intp), values
    uniques = list(index)
    # 1, 1.0 and True are one dict key but not one value to a test (or in a group key's text):
    # a column that mixes such values is not shared. Only numbers hide others so (a text equals
    # only texts): a column of texts is not asked again, row by row.
    if {type(u) for u in uniques} - _TEXTS and len(set(map(type, values)) - {type(None)}) > 1 \
            and len({(type(v), v) for v in values}) != len(index):
        return np.arange(len(values), dtype=np.intp), values
    return codes, uniques
