"""``sequence``: at least ``count`` events matching ``first``, then one matching ``then``, for
the same key within ``window`` (failed logins, then a success)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, BurstState, Params, Predicate, RuleMeta, close_burst, describe, extend_burst
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import compile_condition, evaluate, holds, needs_of
from logwarden.rules.threshold import Duration


class SequenceParams(Params):
    first: dict[str, Any]
    then: dict[str, Any]
    count: int = Field(1, ge=1, le=10_000)
    window: Duration


@dataclass
class SequenceState(BurstState):
    firsts: deque[tuple[datetime, str]] = field(default_factory=deque)
    last: str = ""


@dataclass(frozen=True)
class SequenceRule:
    type: ClassVar[str] = "sequence"
    # Order matters (the failures must come before the success): in a live run it fires once
    # the watermark its sources learned has passed, not on arrival (see ``engine``).
    provisional: ClassVar[bool] = True
    Params: ClassVar[type[SequenceParams]] = SequenceParams
    meta: RuleMeta
    where: Predicate
    first: Predicate
    then: Predicate
    count: int
    window: timedelta

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: SequenceParams) -> SequenceRule:
        return cls(meta, where, compile_condition(params.first), compile_condition(params.then),
                   params.count, params.window)

    def relevant(self, event: Event) -> bool:
        return self.where(event) and (self.first(event) or self.then(event))

    def relevant_columns(self, cols: Columns) -> Mask:
        return evaluate(self.where, cols) & (evaluate(self.first, cols) | evaluate(self.then, cols))

    def needs(self) -> tuple[str, frozenset[str]] | None:
        """An event is relevant only if it can match ``first`` or ``then``."""
        a, b = needs_of(self.first), needs_of(self.then)
        if needs_of(self.where) is not None:
            return needs_of(self.where)
        if a is not None and b is not None and a[0] == b[0]:
            return a[0], a[1] | b[1]
        return None

    def init(self) -> SequenceState:
        return SequenceState(firsts=deque(maxlen=self.count))

    def fold(self, state: SequenceState, entity: str, event: Event) -> Alert | None:
        if not holds(self, event):
            return None
        ts = event.timestamp
        assert ts is not None
        if self.then(event):
            if extend_burst(state, ts, event.id, self.window):
                return None
            firsts = state.firsts
            if len(firsts) == self.count and ts - firsts[0][0] <= self.window:
                state.last = describe(event)
                state.burst = Burst.open(self.meta, entity, [*firsts, (ts, event.id)])
                firsts.clear()
                return state.burst.alert(self.meta, entity, self._summary(state))
        elif self.first(event):
            state.firsts.append((ts, event.id))
        return None

    def close(self, state: SequenceState, entity: str, watermark: datetime | None) -> Alert | None:
        return close_burst(state, self.meta, entity, watermark, self.window, lambda b: self._summary(state))

    def idle(self, state: SequenceState, watermark: datetime) -> bool:
        return state.burst is None and (not state.firsts or watermark - state.firsts[-1][0] > self.window)

    def _summary(self, state: SequenceState) -> str:
        return f"{self.meta.description}: {self.count}+ preceding events, then {state.last}"
