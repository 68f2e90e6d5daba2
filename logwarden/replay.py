"""A replay's watermark: a time no event still to come from any of its inputs is older than.

A replay reads several files, each at its own pace, so a principal's feature windows and a
group key's rule buffer could only be folded at the end of input: its memory grew with the
input. Yet the standard bounds each source's disorder: a source passes on no event older than
its newest by more than ``max_age`` (``timestamp.max_age``, 7 days by default; older ones are
``bad_timestamp`` violations), or than ``now - max_age`` with ``age_reference: wallclock``.
That *floor* only rises. The lowest floor of the inputs still being read is a watermark no
later event falls below: what lies before it folds as the end of input would fold it, and the
state held is bounded by the disorder the standard allows, not by the input's length.

- The inputs are read abreast in event time, or the watermark would wait for the slowest: an
  input more than ``slack`` ahead of another waits (``ahead``) while the others catch up.
- A key that gets no more events would never hear the watermark and would hold what it has
  until the end. So every ``every`` of watermark, each key the watermark has passed an event
  of is told it again, with no events, until the watermark is ``every`` past its newest
  (``due``); a key whose events are all newer than the watermark has nothing to fold yet.
- The watermark is exact only when the items a step emits reach the next steps in the order it
  emitted them, which holds on one worker: ``logwarden.app`` makes a clock only then.
- A source whose profile sets no ``max_age`` has no floor: such a replay folds at its end.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


class ReplayClock:
    """The floors of a replay's inputs, each named as its chunks name it (``RawChunk.source``)."""

    def __init__(self, sources: Iterable[str], every: timedelta = timedelta(days=1),
                 slack: timedelta = timedelta(hours=1)) -> None:
        self._floors: dict[str, datetime | None] = dict.fromkeys(sources)
        self._newest: dict[str, datetime] = {}  # per input still read, its newest accepted event
        self.slack = slack
        self._stray = False  # a chunk of an input not named here: no watermark at all
        self.every = every
        self._told: datetime | None = None  # the watermark keys were last told
        # (step, key) -> [the oldest event sent to it, the newest] (kept while it is told)
        self._sent: dict[tuple[str, str], list[datetime]] = {}

    def advance(self, source: str, floor: datetime | None, newest: datetime | None = None) -> None:
        """``source`` has been checked up to here, its newest accepted event at ``newest``, and
        passes on nothing older than ``floor`` from now on (None: no bound yet, or none at all)."""
        if source not in self._floors:
            self._stray = True
            return
        if newest is not None:
            self._newest[source] = newest
        current = self._floors[source]
        if floor is not None and (current is None or floor > current):
            self._floors[source] = floor

    def finished(self, source: str) -> None:
        """``source`` has no more lines: it holds nothing back."""
        self._floors.pop(source, None)
        self._newest.pop(source, None)

    def ahead(self, source: str) -> bool:
        """Whether ``source`` should wait before its next chunk: its newest event is more than
        ``slack`` ahead of another input's still being read. The slowest input never waits, nor
        does one whose time is not known yet (nor holds another back)."""
        mine = self._newest.get(source)
        return mine is not None and any(mine - other > self.slack for other in self._newest.values())

    def watermark(self) -> datetime | None:
        """No event of any input still to come is older than this; None: no such time is known
        (an input not read yet, one without a bound, or every input finished)."""
        floors = self._floors.values()
        if self._stray or not floors or None in floors:
            return None
        return min(floors)  # type: ignore[type-var]

    def sent(self, step: str, key: str, oldest: datetime, newest: datetime) -> None:
        """``key`` of ``step`` was sent events from ``oldest`` to ``newest``."""
        at = (step, key)
        known = self._sent.get(at)
        if known is None:
            self._sent[at] = [oldest, newest]
        else:
            known[0], known[1] = min(known[0], oldest), max(known[1], newest)

    def due(self, watermark: datetime | None) -> list[tuple[str, str]]:
        """Once the watermark has moved ``every`` since keys were last told it: the ``(step, key)``
        to tell it now. A key is told once the watermark has passed an event sent to it (before,
        it has nothing to fold or close), and then again each time until the watermark is
        ``every`` past its newest event (by then it has folded everything and closed every
        window, the width of a window being at most ``every``)."""
        if watermark is None or (self._told is not None and watermark - self._told < self.every):
            return []
        self._told = watermark
        due = [at for at, (oldest, _) in self._sent.items() if oldest < watermark]
        gone = watermark - self.every
        self._sent = {at: sent for at, sent in self._sent.items() if sent[1] >= gone}
        return due
