"""``threshold``: at least ``count`` matching events per group key within ``window``.

Fires early, on the event that makes the condition true; while the burst goes on (matching
events keep coming within ``window`` of the last one) the same alert is updated, never re-fired.
State is bounded: the last ``count`` timestamps and one open burst.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, ClassVar

from pydantic import BeforeValidator, Field

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, BurstState, Params, Predicate, RuleMeta, close_burst, extend_burst
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import evaluate, holds
from logwarden.timeutil import parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ThresholdParams(Params):
    count: int = Field(ge=1, le=100_000)
    window: Duration


@dataclass
class ThresholdState(BurstState):
    recent: deque[tuple[datetime, str]] = field(default_factory=deque)


@dataclass(frozen=True)
class ThresholdRule:
    type: ClassVar[str] = "threshold"
    # Its condition can only become true as events arrive: in a live run it fires on the event
    # that completes it, before the watermark passes (see ``engine``).
    fires_on_arrival: ClassVar[bool] = True
    Params: ClassVar[type[ThresholdParams]] = ThresholdParams
    meta: RuleMeta
    where: Predicate
    count: int
    window: timedelta

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: ThresholdParams) -> ThresholdRule:
        return cls(meta, where, params.count, params.window)

    def relevant(self, event: Event) -> bool:
        return self.where(event)

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols)

    def init(self) -> ThresholdState:
        return ThresholdState(recent=deque(maxlen=self.count))

    def fold(self, state: ThresholdState, entity: str, event: Event) -> Alert | None:
        if not holds(self, event):
            return None
        ts, ref = event.timestamp, event.id
        assert ts is not None  # the standard check guarantees a timestamp
        if extend_burst(state, ts, ref, self.window):
            return None
        state.recent.append((ts, ref))
        if len(state.recent) == self.count and ts - state.recent[0][0] <= self.window:
            state.burst = Burst.open(self.meta, entity, list(state.recent))
            state.recent.clear()
            return state.burst.alert(self.meta, entity, self._summary(state.burst))
        return None

    def close(self, state: ThresholdState, entity: str, watermark: datetime | None) -> Alert | None:
        return close_burst(state, self.meta, entity, watermark, self.window, self._summary)

    def idle(self, state: ThresholdState, watermark: datetime) -> bool:
        return state.burst is None and (not state.recent or watermark - state.recent[-1][0] > self.window)

    def _summary(self, burst: Burst) -> str:
        minutes = max((burst.end - burst.start).total_seconds() / 60, 0)
        return f"{burst.count} events ({self.meta.description.lower()}) in {minutes:.1f} min"
