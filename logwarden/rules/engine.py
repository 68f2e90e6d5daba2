"""Runs the rules of one group key over its events in event time.

Events are folded in (timestamp, source, line) order, which makes results independent of how
sources interleave and of how many workers run. Two modes:

- live (``lateness`` set): events wait in a small buffer until the key's watermark (the newest
  event time seen minus the allowed lateness) passes them. An event older than the watermark at
  its arrival is *late*: it is reported as a ``late_event`` violation, never silently dropped.
- replay (``lateness`` None): several files read together are not aligned in event time (one
  may be read hours ahead of another), so a key's events are folded only at the end of input,
  exactly as a single time-ordered merge of the files would give. Only events some rule could
  match reach the engine, and ``replay_cap`` bounds a key's buffer: past it the oldest events
  are folded early.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from logwarden.alerts import Alert
from logwarden.event import Event
from logwarden.rules.base import Rule
from logwarden.violation import Violation, excerpt


@dataclass
class KeyState:
    """Everything one key holds; plain values only, so it pickles for snapshots."""

    key: str = ""
    buffer: list[tuple[datetime, str, int, Event]] = field(default_factory=list)
    newest: datetime | None = None
    rule_states: dict[str, Any] = field(default_factory=dict)


class KeyEngine:
    def __init__(self, key: str, rules: list[Rule], lateness: timedelta | None,
                 state: KeyState | None = None, replay_cap: int = 100_000) -> None:
        self.key = key
        self.entity = key.split("=", 1)[1] if "=" in key else key
        self.rules = rules
        self.lateness = lateness
        self.replay_cap = replay_cap
        self.state = state or KeyState(key)

    def on_events(self, events: list[Event]) -> tuple[list[Alert], list[Violation]]:
        st = self.state
        late: list[Violation] = []
        for e in events:
            ts = e.timestamp
            assert ts is not None
            watermark = self._watermark()
            if watermark is not None and ts < watermark:
                late.append(_late(e, watermark))
                continue
            heapq.heappush(st.buffer, (ts, e.source, e.line, e))
            if st.newest is None or ts > st.newest:
                st.newest = ts
        if self.lateness is None and len(st.buffer) > self.replay_cap:
            # Bounded memory: fold the oldest down to half the cap; exact unless one key alone
            # floods the replay with more than replay_cap rule-relevant events.
            cut = heapq.nsmallest(len(st.buffer) - self.replay_cap // 2, st.buffer)[-1][0]
            return self._advance(cut), late
        watermark = self._watermark()
        if watermark is None:
            return [], late
        return self._advance(watermark), late

    def _watermark(self) -> datetime | None:
        if self.lateness is None or self.state.newest is None:
            return None
        return self.state.newest - self.lateness

    def flush(self) -> list[Alert]:
        """End of input: fold everything and close every open burst."""
        return self._advance(None)

    def _advance(self, watermark: datetime | None) -> list[Alert]:
        st = self.state
        alerts: list[Alert] = []
        while st.buffer and (watermark is None or st.buffer[0][0] <= watermark):
            ts, _, _, event = heapq.heappop(st.buffer)
            for rule in self.rules:
                rstate = st.rule_states.get(rule.meta.id)
                if rstate is None:
                    rstate = st.rule_states[rule.meta.id] = rule.init()
                # A gap longer than the rule's window closes what was open before this event.
                closed = rule.close(rstate, self.entity, ts)
                if closed is not None:
                    alerts.append(closed)
                alert = rule.fold(rstate, self.entity, event)
                if alert is not None:
                    if rule.meta.link:
                        alert.related = linked(event, rule.meta.link, self.entity)
                    alerts.append(alert)
        for rule in self.rules:
            rstate = st.rule_states.get(rule.meta.id)
            if rstate is not None:
                closed = rule.close(rstate, self.entity, watermark)
                if closed is not None:
                    alerts.append(closed)
        return alerts

    def tick(self, now: datetime) -> list[Alert]:
        """Live runs: let clock-driven rules (``silence``) see time pass without events."""
        out: list[Alert] = []
        for rule in self.rules:
            if getattr(rule, "clock_driven", False):
                rstate = self.state.rule_states.get(rule.meta.id)
                if rstate is not None:
                    alert = rule.tick(rstate, self.entity, now)  # type: ignore[attr-defined]
                    if alert is not None:
                        out.append(alert)
        return out

    @property
    def clock_driven(self) -> bool:
        return any(getattr(rule, "clock_driven", False) for rule in self.rules)

    def idle(self) -> bool:
        """Nothing buffered and no rule state a later event could need: the key can be freed."""
        st = self.state
        watermark = self._watermark()
        if st.buffer or watermark is None:
            return not st.buffer and not st.rule_states
        return all(rule.idle(st.rule_states[rule.meta.id], watermark)
                   for rule in self.rules if rule.meta.id in st.rule_states)


def _late(e: Event, watermark: datetime) -> Violation:
    lag = watermark - e.timestamp if e.timestamp else timedelta(0)
    return Violation(e.source, e.line, "late_event",
                     f"event arrived {lag.total_seconds():.0f}s behind the watermark of "
                     f"{e.source_ip or e.user_name or 'its key'} (beyond the allowed lateness)",
                     "dropped", excerpt(f"{e.action} {e.user_name or ''} {e.source_ip or ''}"),
                     e.dataset, e.timestamp, e.id)


def linked(event: Event, fields: tuple[str, ...], entity: str) -> list[str]:
    """The entities an alert links to its incident: the values of the rule's ``link`` fields in
    the event that fired it (not the alert's own entity, no empties, no repeats)."""
    out: list[str] = []
    for name in fields:
        value = event.get(name)
        if value not in (None, "") and not isinstance(value, list | dict) and str(value) != entity \
                and str(value) not in out:
            out.append(str(value))
    return out
