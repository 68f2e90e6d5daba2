"""``match``: a condition on one event. Repeats for the same key within ``window`` update the
same alert instead of raising new ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, BurstState, Params, Predicate, RuleMeta, close_burst, describe, extend_burst
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import evaluate, holds
from logwarden.rules.threshold import Duration


class MatchParams(Params):
    window: Duration = timedelta(minutes=10)


@dataclass
class MatchState(BurstState):
    first: str = ""


@dataclass(frozen=True)
class MatchRule:
    type: ClassVar[str] = "match"
    # Its condition can only become true as events arrive: in a live run it fires on the event
    # that completes it, before the watermark passes (see ``engine``).
    fires_on_arrival: ClassVar[bool] = True
    Params: ClassVar[type[MatchParams]] = MatchParams
    meta: RuleMeta
    where: Predicate
    window: timedelta

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: MatchParams) -> MatchRule:
        return cls(meta, where, params.window)

    def relevant(self, event: Event) -> bool:
        return self.where(event)

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols)

    def init(self) -> MatchState:
        return MatchState()

    def fold(self, state: MatchState, entity: str, event: Event) -> Alert | None:
        if not holds(self, event):
            return None
        assert event.timestamp is not None
        if extend_burst(state, event.timestamp, event.id, self.window):
            return None
        state.first = describe(event)
        state.burst = Burst.open(self.meta, entity, [(event.timestamp, event.id)])
        return state.burst.alert(self.meta, entity, self._summary(state.burst, state.first))

    def close(self, state: MatchState, entity: str, watermark: datetime | None) -> Alert | None:
        return close_burst(state, self.meta, entity, watermark, self.window,
                           lambda b: self._summary(b, state.first))

    def idle(self, state: MatchState, watermark: datetime) -> bool:
        return state.burst is None

    def _summary(self, burst: Burst, first: str) -> str:
        more = f" (+{burst.count - 1} more)" if burst.count > 1 else ""
        return f"{self.meta.description}: {first}{more}"
