"""``temporal``: events matching each of ``all_of`` (two or more conditions), in any order, for
the same key within ``window`` (Sigma's ``temporal`` correlation: a new IAM user, a policy
attached and an access key created, by one principal within an hour)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Burst, BurstState, Params, Predicate, RuleMeta, close_burst, describe, extend_burst
from logwarden.rules.columns import Columns, Mask
from logwarden.rules.conditions import compile_condition, evaluate, holds, needs_of
from logwarden.rules.threshold import Duration


class TemporalParams(Params):
    all_of: list[dict[str, Any]] = Field(min_length=2, max_length=20)
    window: Duration


@dataclass
class TemporalState(BurstState):
    seen: dict[int, tuple[datetime, str]] = field(default_factory=dict)  # condition -> its newest event
    last: str = ""


@dataclass(frozen=True)
class TemporalRule:
    type: ClassVar[str] = "temporal"
    # Its condition needs events of several kinds: in a live run it fires once the watermark its
    # sources learned has passed, as a sequence does (see ``engine``).
    provisional: ClassVar[bool] = True
    Params: ClassVar[type[TemporalParams]] = TemporalParams
    meta: RuleMeta
    where: Predicate
    steps: tuple[Predicate, ...]
    window: timedelta

    @classmethod
    def build(cls, meta: RuleMeta, where: Predicate, params: TemporalParams) -> TemporalRule:
        return cls(meta, where, tuple(compile_condition(c) for c in params.all_of), params.window)

    def relevant(self, event: Event) -> bool:
        return self.where(event) and any(step(event) for step in self.steps)

    def relevant_columns(self, cols: Columns) -> Mask:
        mask = np.zeros(cols.n, dtype=bool)
        for step in self.steps:
            mask = mask | evaluate(step, cols)
        return evaluate(self.where, cols) & mask

    def needs(self) -> tuple[str, frozenset[str]] | None:
        """An event is relevant only if it can match one of the conditions."""
        if needs_of(self.where) is not None:
            return needs_of(self.where)
        each = [needs_of(step) for step in self.steps]
        if all(n is not None for n in each) and len({n[0] for n in each if n is not None}) == 1:
            return each[0][0], frozenset().union(*(n[1] for n in each if n is not None))  # type: ignore[index]
        return None

    def init(self) -> TemporalState:
        return TemporalState()

    def fold(self, state: TemporalState, entity: str, event: Event) -> Alert | None:
        if not holds(self, event):
            return None
        hits = [i for i, step in enumerate(self.steps) if step(event)]
        if not hits:
            return None
        ts = event.timestamp
        assert ts is not None
        if extend_burst(state, ts, event.id, self.window):
            return None
        for i in hits:
            state.seen[i] = (ts, event.id)
        state.seen = {i: seen for i, seen in state.seen.items() if ts - seen[0] <= self.window}
        if len(state.seen) < len(self.steps):
            return None
        state.last = describe(event)
        state.burst = Burst.open(self.meta, entity, sorted(state.seen.values()))
        state.seen.clear()
        return state.burst.alert(self.meta, entity, self._summary(state))

    def close(self, state: TemporalState, entity: str, watermark: datetime | None) -> Alert | None:
        return close_burst(state, self.meta, entity, watermark, self.window, lambda b: self._summary(state))

    def idle(self, state: TemporalState, watermark: datetime) -> bool:
        return state.burst is None and (not state.seen or
                                        watermark - max(t for t, _ in state.seen.values()) > self.window)

    def _summary(self, state: TemporalState) -> str:
        return f"{self.meta.description}: all {len(self.steps)} within {self.window}, the last {state.last}"
