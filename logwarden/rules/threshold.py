"""``threshold``: at least ``count`` matching events per group key within ``window``.

Fires early, on the event that makes the condition true; while the burst goes on (matching
events keep coming within ``window`` of the last one) the same alert is updated, never re-fired.
State is bounded: the last ``count`` timestamps and one open burst.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, Predicate, RuleMeta, window_expired


@dataclass
class ThresholdState:
    recent: deque[tuple[datetime, str]] = field(default_factory=deque)
    burst: Burst | None = None


@dataclass(frozen=True)
class ThresholdRule:
    type: ClassVar[str] = "threshold"
    meta: RuleMeta
    where: Predicate
    count: int
    window: timedelta

    def relevant(self, event: Event) -> bool:
        return self.where(event)

    def init(self) -> ThresholdState:
        return ThresholdState(deque(maxlen=self.count))

    def fold(self, state: ThresholdState, entity: str, event: Event) -> Alert | None:
        if not self.where(event):
            return None
        ts, ref = event.timestamp, event.id
        assert ts is not None  # the standard check guarantees a timestamp
        burst = state.burst
        if burst is not None:
            if ts - burst.end <= self.window:
                burst.add(ts, ref)
                return None
            state.burst = None  # the previous burst ended; its final update came from close()
        state.recent.append((ts, ref))
        if len(state.recent) == self.count and ts - state.recent[0][0] <= self.window:
            state.burst = Burst.open(self.meta, entity, list(state.recent))
            state.recent.clear()
            return state.burst.alert(self.meta, entity, self._summary(state.burst))
        return None

    def close(self, state: ThresholdState, entity: str, watermark: datetime | None) -> Alert | None:
        burst = state.burst
        if burst is None or not window_expired(burst.end, watermark, self.window):
            return None
        state.burst = None
        if burst.count == burst.reported_count:
            return None
        return burst.alert(self.meta, entity, self._summary(burst))

    def idle(self, state: ThresholdState, watermark: datetime) -> bool:
        return state.burst is None and (
            not state.recent or watermark - state.recent[-1][0] > self.window)

    def _summary(self, burst: Burst) -> str:
        minutes = max((burst.end - burst.start).total_seconds() / 60, 0)
        return f"{burst.count} {self.meta.description.lower()} in {minutes:.1f} min"
