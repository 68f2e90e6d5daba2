"""A batch's events in line order, most of them held as columns: an ``Event`` is built only for
a row someone reads.

A parser that can read a whole batch at once (``Parser.parse_columns``) gives one list per
``Event`` field. The standard step judges those rows from the columns, routing and the model's
feed read whole columns (``logwarden.rules.columns``), and only the events they pass on (to a
rule's key, a principal's windows, an output) are built. Events the full path made (a redacted
line, a record the batch reader left to ``parse``) sit among the rows in their line's place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from operator import attrgetter
from typing import Any, NamedTuple

from logwarden.event import _ATTRS, Event

EVENT_ORDER = tuple(f.name for f in fields(Event) if f.name != "relevant")  # as ``parsers.base`` checks
_INDEX = {name: EVENT_ORDER.index(attr) for name, attr in _ATTRS.items()}  # ECS name -> column
_EXTRA = EVENT_ORDER.index("extra")
_GETTERS = [attrgetter(attr) for attr in EVENT_ORDER]  # a column of built events, read in C


class ParsedColumns(NamedTuple):
    """What ``Parser.parse_columns`` reads of a batch: one list per ``Event`` field (in
    ``EVENT_ORDER``), and per line whether it read it (False: the line is left to ``parse``)."""

    values: tuple[list[Any], ...]
    ok: list[bool]

    def all_set(self, names: list[str]) -> list[bool]:
        """Per row, whether every one of these fields is set (``Event.all_set`` by column)."""
        out: list[bool] | None = None
        for name in names:
            if name == "event.id":  # derived when the source has none: always set
                continue
            index = _INDEX.get(name)
            if index is not None:
                column = self.values[index]
                if None not in column:  # set in every row (the usual column), asked in C
                    continue
                flags = [v is not None for v in column]
            else:
                flags = [x is not None and x.get(name) is not None for x in self.values[_EXTRA]]
            out = flags if out is None else [a and b for a, b in zip(out, flags, strict=True)]
        return out if out is not None else [True] * len(self.ok)

    def event(self, row: int) -> Event:
        """Row ``row`` as the ``Event`` its parser's ``parse`` gives."""
        return Event(*[column[row] for column in self.values])


class EventRows:
    """A batch's events in order: ``order`` holds column rows (ints) and whole events."""

    __slots__ = ("_built", "_columns", "_order", "_rows_only")

    def __init__(self, columns: ParsedColumns | None, order: list[int | Event]) -> None:
        self._columns = columns
        self._order = order
        self._built: dict[int, Event] = {}
        self._rows_only = columns is not None and all(type(o) is int for o in order)

    @classmethod
    def of(cls, events: list[Event]) -> EventRows:
        return cls(None, events)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._order)

    def without(self, positions: list[int]) -> EventRows:
        """These events but those at ``positions`` (ascending), the events built so far shared."""
        drop = set(positions)
        rest = EventRows(self._columns, [o for k, o in enumerate(self._order) if k not in drop])
        rest._built = self._built
        return rest

    def __getitem__(self, k: int) -> Event:
        o = self._order[k]
        if type(o) is not int:
            return o  # type: ignore[return-value]
        found = self._built.get(o)  # type: ignore[arg-type]
        if found is None:
            assert self._columns is not None
            found = self._built[o] = self._columns.event(o)  # type: ignore[arg-type]
        return found

    def __iter__(self) -> Iterator[Event]:
        return map(self.__getitem__, range(len(self._order)))

    def column(self, name: str) -> list[Any] | None:
        """Every event's value of an ``Event`` attribute's ECS name (``user.name``), or of
        ``extra`` (its dicts) for ``"extra"``; None for a name with no column (``event.id``).
        Read only: it may be the parser's own column."""
        index = _EXTRA if name == "extra" else _INDEX.get(name)
        if index is None:
            return None
        if self._columns is None:
            return list(map(_GETTERS[index], self._order))
        values = self._columns.values[index]
        if self._rows_only:  # rows in line order: every row is the column itself
            return values if len(self._order) == len(values) else [values[o] for o in self._order]  # type: ignore[index]
        attr = EVENT_ORDER[index]
        return [values[o] if type(o) is int else getattr(o, attr) for o in self._order]  # type: ignore[index]
