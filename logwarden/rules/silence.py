"""``silence``: a log source (or any key) that normally emits events goes quiet for longer
than ``max_gap`` during its active hours (UTC, e.g. ``"08-18"``). Quiet outside the active
hours is expected: a source that is always quiet at night never fires at night.

Detected in event time when the source speaks again (the gap between two of its events), so
replays find every outage in the archive; the alert spans the silent period. In a live run the
rule is also driven by the clock (``tick``): a source that stays silent alerts once its silence
passes ``max_gap`` of active hours, and the same alert is updated when it speaks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import ClassVar

from pydantic import field_validator

from logwarden.alerts import Alert, make_alert_id
from logwarden.event import Event
from logwarden.rules.base import Params, Predicate, RuleMeta
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import evaluate, holds
from logwarden.rules.threshold import Duration


class SilenceParams(Params):
    max_gap: Duration
    active_hours: str = "00-24"

    @field_validator("active_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, _, end = value.partition("-")
        if not (start.isdigit() and end.isdigit() and 0 <= int(start) < int(end) <= 24):
            raise ValueError(f"active_hours is 'HH-HH' in UTC with start < end, got {value!r}")
        return value


@dataclass
class SilenceState:
    last: datetime | None = None
    last_ref: str = ""
    alerted: str | None = None  # the alert raised by the clock for the silence after ``last``


@dataclass(frozen=True)
class SilenceRule:
    type: ClassVar[str] = "silence"
    Params: ClassVar[type[SilenceParams]] = SilenceParams
    clock_driven: ClassVar[bool] = True  # live runs call tick() with the wall clock
    meta: RuleMeta
    where: Predicate
    max_gap: timedelta
    start_hour: int
    end_hour: int

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: SilenceParams) -> SilenceRule:
        start, _, end = params.active_hours.partition("-")
        return cls(meta, where, params.max_gap, int(start), int(end))

    def relevant(self, event: Event) -> bool:
        return self.where(event)

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols)

    def thin(self, marks: list[tuple[datetime, str, int]]) -> list[int]:
        """Replays: which of one key's events of a batch the fold needs (indices), from their
        ``(timestamp, source, line)``. It tells only gaps longer than ``max_gap`` between
        neighbours in event time, so an event is left out when the last one kept and the one
        after it are within ``max_gap`` of each other: every gap the fold can tell still has
        both its ends, and the key's last event is kept."""
        order = sorted(range(len(marks)), key=marks.__getitem__)
        kept = order[:1]
        last = marks[order[0]][0] if order else None
        for here, after in pairwise(order[1:]):
            if marks[after][0] - last > self.max_gap:  # type: ignore[operator]
                kept.append(here)
                last = marks[here][0]
        return kept + order[-1:] if len(order) > 1 else kept

    def init(self) -> SilenceState:
        return SilenceState()

    def fold(self, state: SilenceState, entity: str, event: Event) -> Alert | None:
        if not holds(self, event):
            return None
        ts = event.timestamp
        assert ts is not None
        last, last_ref, alerted = state.last, state.last_ref, state.alerted
        state.last, state.last_ref, state.alerted = ts, event.id, None
        if last is None or ts - last <= self.max_gap:
            return None
        if self.active_time(last, ts) <= self.max_gap:
            return None
        # The source is back: the silence's alert (new, or the clock's one updated) spans it.
        return self._alert(entity, last, ts, last_ref, [last_ref, event.id], 1 if alerted else 0, ongoing=False)

    def tick(self, state: SilenceState, entity: str, now: datetime) -> Alert | None:
        """Live runs: alert on a silence still going on (once)."""
        if state.last is None or state.alerted is not None or self.active_time(state.last, now) <= self.max_gap:
            return None
        state.alerted = state.last_ref
        return self._alert(entity, state.last, now, state.last_ref, [state.last_ref], 0, ongoing=True)

    def _alert(self, entity: str, start: datetime, end: datetime, first_ref: str, evidence: list[str],
               revision: int, ongoing: bool) -> Alert:
        hours = self.active_time(start, end).total_seconds() / 3600
        span = f"{hours:.1f}h of active hours ({self.start_hour:02d}-{self.end_hour:02d} UTC)"
        summary = f"no events for {span} so far" if ongoing else f"no events for {span}"
        return Alert(make_alert_id(self.meta.id, entity, first_ref), self.meta.id, self.meta.severity, entity,
                     start, end, 1, f"{self.meta.description}: {summary}", evidence, list(self.meta.tags),
                     revision, self.meta.description)

    def active_time(self, start: datetime, end: datetime) -> timedelta:
        """How much of [start, end) falls within the active hours."""
        total = timedelta(0)
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            lo = max(start, day + timedelta(hours=self.start_hour))
            hi = min(end, day + timedelta(hours=self.end_hour))
            if hi > lo:
                total += hi - lo
            day += timedelta(days=1)
        return total

    def close(self, state: SilenceState, entity: str, watermark: datetime | None) -> Alert | None:
        return None

    def idle(self, state: SilenceState, watermark: datetime) -> bool:
        return False  # a source's last event is the state
