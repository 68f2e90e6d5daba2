"""``spike``: the key's count in the current ``window`` is at least ``factor`` times its own
average over the previous ``history`` windows (and at least ``min_count``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import Field

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, BurstState, Params, Predicate, RuleMeta, close_burst, extend_burst
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import evaluate, holds
from logwarden.rules.threshold import Duration
from logwarden.timeutil import EPOCH


class SpikeParams(Params):
    factor: float = Field(gt=1)
    window: Duration
    history: int = Field(12, ge=1, le=1000)
    min_history: int = Field(3, ge=1)
    min_count: int = Field(10, ge=1)


@dataclass
class SpikeState(BurstState):
    bucket: int | None = None
    count: int = 0
    previous: deque[int] = field(default_factory=deque)


@dataclass(frozen=True)
class SpikeRule:
    type: ClassVar[str] = "spike"
    # Its upward side (the current window's count reaching the bar) only becomes true as events
    # arrive: in a live run it fires on the event that completes it (see ``engine``).
    fires_on_arrival: ClassVar[bool] = True
    Params: ClassVar[type[SpikeParams]] = SpikeParams
    meta: RuleMeta
    where: Predicate
    factor: float
    window: timedelta
    history: int
    min_history: int
    min_count: int

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: SpikeParams) -> SpikeRule:
        return cls(meta, where, params.factor, params.window, params.history, params.min_history,
                   params.min_count)

    def relevant(self, event: Event) -> bool:
        return self.where(event)

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols)

    def init(self) -> SpikeState:
        return SpikeState(previous=deque(maxlen=self.history))

    def fold(self, state: SpikeState, entity: str, event: Event) -> Alert | None:
        if not holds(self, event):
            return None
        ts = event.timestamp
        assert ts is not None
        bucket = int((ts - EPOCH) / self.window)
        if state.bucket is None:
            state.bucket = bucket
        elif bucket > state.bucket:
            state.previous.append(state.count)
            for _ in range(min(bucket - state.bucket - 1, self.history)):
                state.previous.append(0)
            state.bucket, state.count = bucket, 0
        state.count += 1
        if extend_burst(state, ts, event.id, self.window):
            return None
        if len(state.previous) < self.min_history:
            return None
        usual = sum(state.previous) / len(state.previous)
        if state.count >= max(self.min_count, self.factor * usual):
            state.burst = Burst.open(self.meta, entity, [(ts, event.id)])
            state.burst.count = state.count
            return state.burst.alert(self.meta, entity, self._summary(state, usual))
        return None

    def close(self, state: SpikeState, entity: str, watermark: datetime | None) -> Alert | None:
        usual = sum(state.previous) / len(state.previous) if state.previous else 0.0
        return close_burst(state, self.meta, entity, watermark, self.window,
                           lambda b: self._summary(state, usual))

    def idle(self, state: SpikeState, watermark: datetime) -> bool:
        return False  # the history is the state

    def _summary(self, state: SpikeState, usual: float) -> str:
        return (f"{self.meta.description}: {state.burst.count if state.burst else state.count} events "
                f"in {self.window}, usually {usual:.1f}")
