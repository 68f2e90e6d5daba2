"""``cardinality``: at least ``count`` distinct values of ``field`` per group key within
``window`` (password spray: one address, many user names). Tracked values expire after the
window and are capped at ``max_tracked``, so a key's state stays bounded."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import Field

from logwarden.alerts import MAX_EVIDENCE, Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, BurstState, Params, Predicate, RuleMeta, close_burst, extend_burst
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import evaluate, holds
from logwarden.rules.threshold import Duration


class CardinalityParams(Params):
    field: str
    count: int = Field(ge=2, le=100_000)
    window: Duration
    max_tracked: int = Field(10_000, ge=2)


@dataclass
class CardinalityState(BurstState):
    values: dict[str, datetime] = field(default_factory=dict)  # value -> last seen, oldest first
    recent: deque[tuple[datetime, str]] = field(default_factory=lambda: deque(maxlen=MAX_EVIDENCE))
    distinct: int = 0


@dataclass(frozen=True)
class CardinalityRule:
    type: ClassVar[str] = "cardinality"
    # Its condition can only become true as events arrive: in a live run it fires on the event
    # that completes it, before the watermark passes (see ``engine``).
    fires_on_arrival: ClassVar[bool] = True
    Params: ClassVar[type[CardinalityParams]] = CardinalityParams
    meta: RuleMeta
    where: Predicate
    field: str
    count: int
    window: timedelta
    max_tracked: int

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: CardinalityParams) -> CardinalityRule:
        return cls(meta, where, params.field, params.count, params.window, params.max_tracked)

    def relevant(self, event: Event) -> bool:
        return self.where(event) and event.get(self.field) is not None

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols) & cols.present(self.field)

    def init(self) -> CardinalityState:
        return CardinalityState()

    def fold(self, state: CardinalityState, entity: str, event: Event) -> Alert | None:
        value = event.get(self.field)
        if value is None or not holds(self, event):
            return None
        ts = event.timestamp
        assert ts is not None
        values = state.values
        values.pop(str(value), None)
        values[str(value)] = ts
        while values and (ts - next(iter(values.values())) > self.window or len(values) > self.max_tracked):
            del values[next(iter(values))]
        state.distinct = max(state.distinct, len(values)) if state.burst else len(values)
        if extend_burst(state, ts, event.id, self.window):
            return None
        state.recent.append((ts, event.id))
        if len(values) >= self.count:
            state.burst = Burst.open(self.meta, entity, list(state.recent))
            state.burst.count = len(values)
            return state.burst.alert(self.meta, entity, self._summary(state))
        return None

    def close(self, state: CardinalityState, entity: str, watermark: datetime | None) -> Alert | None:
        return close_burst(state, self.meta, entity, watermark, self.window, lambda b: self._summary(state))

    def idle(self, state: CardinalityState, watermark: datetime) -> bool:
        return state.burst is None and all(watermark - t > self.window for t in state.values.values())

    def _summary(self, state: CardinalityState) -> str:
        return f"{state.distinct} distinct {self.field} ({self.meta.description.lower()})"
